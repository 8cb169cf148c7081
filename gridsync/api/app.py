"""The REST API (FastAPI; OpenAPI at ``/docs`` and ``/openapi.json``).

Stable entry point::

    create_app(runtime: Runtime | None = None, *, tokens: TokenRegistry | None = None,
               manage_runtime: bool = True, title: str = "GridSync") -> FastAPI

* ``runtime``: the :class:`~gridsync.runtime.runtime.Runtime` the endpoints read and act
  through; ``None`` builds an idle one (in-process bus, in-memory SQLite, no agents).
* ``tokens``: who may call; ``None`` reads :meth:`TokenRegistry.from_env`.
* ``manage_runtime``: start the runtime on application start-up and stop it on shutdown
  (set ``False`` when the caller owns its life cycle).

* ``max_body_bytes``: largest request body accepted (413 above it); ``None`` reads
  ``GRIDSYNC_MAX_BODY_BYTES`` (default 2 MiB).

A state-changing request is authenticated from its headers before its body is read
(:mod:`gridsync.api.middleware`), every response carries security headers (CSP,
X-Frame-Options, nosniff, Referrer-Policy), ``/docs`` is served locally
(:mod:`gridsync.api.docs`), and the OpenAPI document fixes each setpoint list of
``POST /api/v1/plans`` to the running fleet's size.

``app.state.runtime`` and ``app.state.tokens`` hold both, so routers added later (e.g. the
operator console) can use ``request.app.state.runtime`` and the role dependencies from
:mod:`gridsync.api.auth` (``READ``, ``OPERATE``, ``DEVICE``, ``require_role``).
All data endpoints live under ``/api/v1`` and need ``Authorization: Bearer <token>``:
viewers and operators read; operators change plans, approvals, alerts and scenarios;
devices post telemetry. ``/health`` is open.
"""

from __future__ import annotations

from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from starlette.routing import Match

from gridsync.api.auth import TokenRegistry
from gridsync.api.docs import add_docs
from gridsync.api.middleware import RequestGuard, api_and_console_auth, max_body_bytes_from_env
from gridsync.api.models import validation_errors
from gridsync.api.routes import router
from gridsync.runtime.runtime import Runtime
from gridsync.store import StoreError


def create_app(
    runtime: Runtime | None = None,
    *,
    tokens: TokenRegistry | None = None,
    manage_runtime: bool = True,
    title: str = "GridSync",
    max_body_bytes: int | None = None,
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
        docs_url=None,
        redoc_url=None,
    )
    app.state.runtime = rt
    app.state.tokens = reg
    app.include_router(router)
    add_docs(app)
    limit = max_body_bytes if max_body_bytes is not None else max_body_bytes_from_env()
    app.add_middleware(RequestGuard, max_body_bytes=limit, authorized=api_and_console_auth(app))

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, err: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": validation_errors(err.errors())}, status_code=422)

    @app.exception_handler(405)
    async def method_not_allowed(request: Request, err: Exception) -> JSONResponse:
        """``Allow`` lists the methods of every route on the path (Starlette lists only the
        first route's, e.g. ``GET`` for a path that also takes ``POST``)."""
        allowed = set()
        for route in app.router.routes:
            match, _ = route.matches(request.scope)
            if match != Match.NONE:
                allowed |= set(getattr(route, "methods", None) or ())
        headers = {"Allow": ", ".join(sorted(allowed))}
        return JSONResponse({"detail": "Method Not Allowed"}, status_code=405, headers=headers)

    @app.exception_handler(StoreError)
    async def store_unavailable(request: Request, err: StoreError) -> JSONResponse:
        return JSONResponse({"detail": f"history store unavailable: {err}"}, status_code=503)

    cache: dict[Any, dict[str, Any]] = {}

    def openapi() -> dict[str, Any]:
        sizes = rt.fleet_sizes
        key = tuple(sorted(sizes.items())) if sizes else None
        if key not in cache:
            doc = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            fix_setpoint_lengths(doc, sizes or {})
            cache[key] = doc
        return cache[key]

    app.openapi = openapi  # type: ignore[method-assign]
    return app


def fix_setpoint_lengths(doc: dict[str, Any], sizes: dict[str, int]) -> None:
    """Set ``minItems = maxItems = n`` on each setpoint list of ``PlanSetpoints``."""
    props = doc.get("components", {}).get("schemas", {}).get("PlanSetpoints", {})
    for name, schema in props.get("properties", {}).items():
        if name not in sizes:
            continue
        for variant in schema.get("anyOf", [schema]):
            if variant.get("type") == "array":
                variant["minItems"] = variant["maxItems"] = int(sizes[name])
