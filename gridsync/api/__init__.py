"""REST API: ``create_app(runtime, tokens=...)`` (see :mod:`gridsync.api.app`)."""
