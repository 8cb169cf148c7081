"""Scale-out: many feeders on Ray, one subject tree, one store (``gridsync fleet``).

``replicas`` (varied copies of a scenario), ``forecast`` (the shared model), ``feeder`` (one
feeder's loop and its checkpoints), ``shard`` (a worker's feeders), ``coordinator`` (VPP bid,
substation limit), ``bus`` and ``store`` (subject tree and partitioned store), ``runner``
(Ray or in-process) and ``cli``.
"""
