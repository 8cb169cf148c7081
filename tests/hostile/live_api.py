"""A live ``gridsync serve`` service (uvicorn on a free port, in a thread with its own event
loop) for the hostile-input tests, on the embedded default (in-process bus, SQLite file) or
the production path (NATS JetStream + PostgreSQL, unique stream prefix and schema)."""

from __future__ import annotations

import asyncio
import socket
import threading
import uuid
from pathlib import Path

import uvicorn

from gridsync.api.auth import TokenRegistry
from gridsync.runtime.service import start_service, stop_service

NATS_URL = "nats://127.0.0.1:4222"
PG_URL = "postgresql://postgres@127.0.0.1:5432/test"


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LiveService:
    """``with LiveService(backend, tmp) as live:`` serves on ``live.base``; ``live.token``
    is an operator token, ``live.viewer`` a viewer token, ``live.svc`` the service."""

    def __init__(self, backend: str, tmp: Path, **options) -> None:
        self.backend, self.tmp, self.options = backend, tmp, options
        self.tokens = TokenRegistry()
        self.token = self.tokens.issue("hostile-operator", "operator")
        self.viewer = self.tokens.issue("hostile-viewer", "viewer")
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.prefix = "hx" + uuid.uuid4().hex[:10]
        self.schema = "hx_" + uuid.uuid4().hex[:12]
        self.svc = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self._server: uvicorn.Server | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def kwargs(self) -> dict:
        if self.backend == "embedded":
            return {"bus_url": "inprocess", "store_url": f"sqlite:///{self.tmp / 'serve.db'}"}
        return {
            "bus_url": NATS_URL,
            "store_url": PG_URL,
            "bus_options": {"prefix": self.prefix},
            "store_options": {"schema": self.schema},
        }

    def _run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        self.loop = asyncio.get_running_loop()
        try:
            self.svc = await start_service(
                tokens=self.tokens,
                demo=True,
                days=1,
                step_interval_s=3600.0,
                approval_timeout_s=600.0,
                mqtt_url=None,
                buffer_step_s=0.5,
                **self.kwargs(),
                **self.options,
            )
            config = uvicorn.Config(
                self.svc.app, host="127.0.0.1", port=self.port, log_level="error"
            )
            self._server = uvicorn.Server(config)
            serving = asyncio.create_task(self._server.serve())
            while not self._server.started and not serving.done():
                await asyncio.sleep(0.05)
            self._ready.set()
            await serving
        except BaseException as err:  # reported to the test thread
            self._error = err
            self._ready.set()
        finally:
            if self.svc is not None:
                await stop_service(self.svc)
            await self._cleanup()

    async def _cleanup(self) -> None:
        if self.backend == "embedded":
            return
        from gridsync.bus.nats import NatsBus
        from gridsync.store.postgres import PostgresStore

        bus = NatsBus(NATS_URL, prefix=self.prefix)
        await bus.connect()
        await bus.delete_streams()
        await bus.close()
        PostgresStore(PG_URL, schema=self.schema).drop_schema()

    def run(self, coro, timeout: float = 30.0):
        """Run ``coro`` on the service's event loop and return its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def __enter__(self) -> LiveService:
        self._thread.start()
        if not self._ready.wait(120):
            raise TimeoutError("the live service did not start within 120 s")
        if self._error is not None:
            raise self._error
        return self

    def __exit__(self, *exc) -> None:
        if self._server is not None:
            self._server.should_exit = True
        self._thread.join(60)
