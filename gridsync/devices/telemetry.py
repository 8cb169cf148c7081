"""Device readings into GridSync's ingestion path (validated, dead-lettered on refusal).

Both protocol front-ends (OCPP meter values, Modbus polls) turn what a device reported into
the standard telemetry message of :mod:`gridsync.data.ingest` and hand it to an ``ingest``
coroutine, normally :meth:`gridsync.data.ingest.Ingestor.submit`, with the device id as the
transport-authenticated source. So a device's readings pass the same checks as a smart meter's
(units, physical ranges, timestamps, duplicates) and a bad one lands on ``deadletter``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

#: ``ingest(raw, origin, source)`` -> result with an ``accepted`` attribute (``Ingestor.submit``)
Ingest = Callable[..., Awaitable[Any]]

Reading = tuple[str, str, str, float, float]  # device_id, quantity, unit, value, ts (UNIX s)


@dataclass
class ReadingSink:
    """Numbers each source's messages and forwards them; counts what was accepted."""

    ingest: Ingest | None = None
    origin: str = "devices"
    accepted: int = 0
    rejected: int = 0
    readings: int = 0
    last_reason: str = ""
    _seq: dict[str, int] = field(default_factory=dict)
    _seq0: int = field(default_factory=lambda: int(time.time() * 1000))

    async def submit(self, source: str, readings: Sequence[Reading]) -> bool:
        """Send one source's readings as one message; True when ingestion accepted it."""
        if self.ingest is None or not readings:
            return False
        seq = self._seq.get(source, self._seq0) + 1
        self._seq[source] = seq
        body = {
            "source": source,
            "seq": seq,
            "readings": [
                {"device_id": d, "quantity": q, "unit": u, "value": v, "ts": t}
                for d, q, u, v, t in readings
            ],
        }
        res = await self.ingest(json.dumps(body).encode(), self.origin, source)
        ok = bool(getattr(res, "accepted", res))
        if ok:
            self.accepted += 1
            self.readings += len(readings)
        else:
            self.rejected += 1
            self.last_reason = str(getattr(res, "reason", ""))
        return ok
