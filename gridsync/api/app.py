"""The REST API (FastAPI; OpenAPI at ``/docs`` and ``/openapi.json``).

Stable entry point::

    create_app(runtime: Runtime | None = None, *, tokens: TokenRegistry | None = None,
               manage_runtime: bool = True, title: str = "GridSync") -> FastAPI

* ``runtime``: the :class:`~gridsync.runtime.runtime.Runtime` the endpoints read and act
  through; ``None`` builds an idle one (in-process bus, in-memory SQLite, no agents).
* ``tokens``: who may call; ``None`` reads :meth:`TokenRegistry.from_env`.
* ``manage_runtime``: start the runtime on application start-up and stop it on shutdown
  (set ``False`` when the caller owns its life cycle).

``app.state.runtime`` and ``app.state.tokens`` hold both, so routers added later (e.g. the
operator console) can use ``request.app.state.runtime`` and the role dependencies from
:mod:`gridsync.api.auth` (``READ``, ``OPERATE``, ``DEVICE``, ``require_role``).
All data endpoints live under ``/api/v1`` and need ``Authorization: Bearer <token>``:
viewers and operators read; operators change plans, approvals, alerts and scenarios;
devices post telemetry. ``/health`` is open.
"""

from __future__ import annotations

from contextlib import asynccontextmanager

from fastapi import FastAPI

from gridsync.api.auth import TokenRegistry
from gridsync.api.routes import router
from gridsync.runtime.runtime import Runtime


def create_app(
    runtime: Runtime | None = None,
    *,
    tokens: TokenRegistry | None = None,
    manage_runtime: bool = True,
    title: str = "GridSync",
) -> FastAPI:
    """Build the API around ``runtime`` (see the module docstring for the contract)."""
    rt = runtime if runtime is not None else Runtime()
    reg = tokens if tokens is not None else TokenRegistry.from_env()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        if manage_runtime and not rt.running:
            await rt.start()
        try:
            yield
        finally:
            if manage_runtime and rt.running:
                await rt.stop()

    app = FastAPI(
        title=title,
        version="1",
        description="Live state, forecasts, plans, setpoints, alerts and history of a "
        "GridSync feeder. Authenticate with `Authorization: Bearer <token>`.",
        lifespan=lifespan,
    )
    app.state.runtime = rt
    app.state.tokens = reg
    app.include_router(router)
    return app
