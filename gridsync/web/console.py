"""The console's routes, mounted on the API app under ``/console``.

:func:`mount_console` adds log-in pages, the dashboard, a Server-Sent-Events stream
(``/console/events``: ``state`` after every twin step, ``approval`` the moment a request is
raised or decided, ``alert``), JSON actions for approvals, overrides and the policy, and the
static assets (plotly.js is served from the installed Python ``plotly`` package, so nothing is
fetched from the network at view time). The console's live loop starts and stops with the
app (its lifespan is wrapped, not replaced).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Body, Depends, FastAPI, Form, HTTPException, Request, status
from fastapi.responses import (
    FileResponse,
    HTMLResponse,
    JSONResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from pydantic import ValidationError

from gridsync.hitl.approvals import ApprovalError
from gridsync.hitl.overrides import OverrideError
from gridsync.hitl.policy import ApprovalPolicy
from gridsync.hitl.session import ConsoleSession
from gridsync.web.auth import Session, SessionSigner, UserStore
from gridsync.web.hub import EventHub, clean
from gridsync.web.throttle import FormTokens, LoginThrottle

log = logging.getLogger(__name__)
HERE = Path(__file__).parent
COOKIE = "gs_session"
LOGIN_COOKIE = "gs_login"
PREFIX = "/console"
OPERATE_ROLES = ("operator", "admin")


def plotly_js_path() -> Path:
    """plotly.min.js as shipped inside the installed ``plotly`` Python package."""
    import plotly

    path = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    if not path.exists():
        msg = f"plotly.min.js not found at {path}; reinstall the 'plotly' package"
        raise FileNotFoundError(msg)
    return path


@dataclass
class Console:
    """What the routes need; stored as ``app.state.console``."""

    session: ConsoleSession
    users: UserStore
    signer: SessionSigner
    step_interval_s: float = 2.0
    demo: bool = False
    hub: EventHub = field(default_factory=EventHub)
    runtime: Any = None
    drill: Any = None  # gridsync.resilience.drill.FeederDrill with --resilience
    task: asyncio.Task | None = None
    first_viewer: asyncio.Event | None = None
    loop: asyncio.AbstractEventLoop | None = None
    cookie_name: str = COOKIE
    throttle: LoginThrottle = field(default_factory=LoginThrottle.from_env)
    forms: FormTokens = field(default_factory=FormTokens)
    #: at most this many password hashes at once, so a log-in flood cannot starve the server
    hashing: anyio.CapacityLimiter = field(default_factory=lambda: anyio.CapacityLimiter(1))
    #: the anomaly monitor's background fit (``gridsync.web.server.AnomalyFit``), if any
    anomaly_fit: Any = None

    def audit(self, actor: str, role: str, action: str, target: str = "", detail=None) -> None:
        sink = self.session.audit_sink
        if sink is not None:
            sink.audit(actor, role, action, target, detail or {})


def _console(request: Request) -> Console:
    return request.app.state.console


def current_session(request: Request) -> Session:
    """The logged-in session, or 401."""
    sess = _console(request).signer.verify(request.cookies.get(COOKIE))
    if sess is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, "log in first (session missing or expired)"
        )
    return sess


SessionDep = Annotated[Session, Depends(current_session)]
JsonBody = Annotated[dict[str, Any], Body()]


def require(*roles: str):
    def check(sess: SessionDep) -> Session:
        if sess.role not in roles:
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                f"role {sess.role!r} may not do this; needs one of {', '.join(roles)}",
            )
        return sess

    return check


def csrf(request: Request, sess: SessionDep) -> Session:
    """Every state-changing JSON call must echo the page's CSRF token in ``X-CSRF-Token``."""
    if not _console(request).signer.check_csrf(sess.sid, request.headers.get("x-csrf-token")):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "missing or wrong CSRF token")
    return sess


_Operator = Annotated[Session, Depends(require(*OPERATE_ROLES))]
_Admin = Annotated[Session, Depends(require("admin"))]


def operator_post(request: Request, sess: _Operator) -> Session:
    return csrf(request, sess)


def admin_post(request: Request, sess: _Admin) -> Session:
    return csrf(request, sess)


OperatorPost = Annotated[Session, Depends(operator_post)]
AdminPost = Annotated[Session, Depends(admin_post)]
FormStr = Annotated[str, Form()]


router = APIRouter(prefix=PREFIX, include_in_schema=False)
templates = Jinja2Templates(directory=str(HERE / "templates"))


@router.get("/vendor/plotly.min.js")
def plotly_js() -> FileResponse:
    return FileResponse(plotly_js_path(), media_type="application/javascript")


@router.get("/", response_class=HTMLResponse)
def dashboard(request: Request) -> Response:
    con = _console(request)
    sess = con.signer.verify(request.cookies.get(COOKIE))
    if sess is None:
        return RedirectResponse(f"{PREFIX}/login", status_code=status.HTTP_303_SEE_OTHER)
    return templates.TemplateResponse(
        request,
        "dashboard.html",
        {
            "user": sess.user,
            "role": sess.role,
            "can_operate": sess.role in OPERATE_ROLES,
            "is_admin": sess.role == "admin",
            "csrf_token": con.signer.csrf_token(sess.sid),
            "prefix": PREFIX,
            "scenario": con.session.scenario.config.name,
            "feeder": con.session.scenario.feeder.name,
            "step_interval_s": con.step_interval_s,
            "timeout_s": con.session.policy.timeout_s,
            "drill": con.drill is not None,
        },
    )


@router.get("/api/me")
def me(request: Request, sess: SessionDep) -> dict[str, Any]:
    return {
        "user": sess.user,
        "role": sess.role,
        "expires_s": sess.expires_s,
        "csrf_token": _console(request).signer.csrf_token(sess.sid),
    }


@router.get("/api/state")
def state(request: Request, _: SessionDep) -> JSONResponse:
    return JSONResponse(clean(_console(request).session.snapshot))


@router.get("/api/topology")
def topology(request: Request, _: SessionDep) -> JSONResponse:
    return JSONResponse(clean(_console(request).session.topology()))


@router.get("/events")
async def events(request: Request, sess: SessionDep) -> Response:
    con = _console(request)
    queue = con.hub.subscribe()
    if con.first_viewer is not None:
        con.first_viewer.set()
    cookie = request.cookies.get(COOKIE)

    async def stream():
        try:
            yield con.hub.frame("hello", {"user": sess.user, "role": sess.role})
            if con.session.snapshot:
                yield con.hub.frame("state", con.session.snapshot)
            while True:
                try:
                    text = await asyncio.wait_for(queue.get(), timeout=15.0)
                except TimeoutError:
                    text = ": keep-alive\n\n"
                if con.signer.verify(cookie) is None:
                    yield con.hub.frame("expired", {"message": "session expired; log in again"})
                    return
                yield text
        finally:
            con.hub.unsubscribe(queue)

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


def _fail(err: Exception) -> HTTPException:
    code = getattr(err, "status_code", 422)
    return HTTPException(code, str(err))


@router.post("/api/approvals/{request_id}/{decision}")
def decide(
    request: Request,
    request_id: str,
    decision: str,
    sess: OperatorPost,
    body: Annotated[dict[str, Any] | None, Body()] = None,
) -> JSONResponse:
    mgr = _console(request).session.approvals
    body = body or {}
    note = str(body.get("note", ""))[:500]
    try:
        if decision == "approve":
            req = mgr.approve(request_id, sess.user, sess.role, note)
        elif decision == "reject":
            req = mgr.reject(request_id, sess.user, sess.role, note)
        elif decision == "edit":
            values = body.get("values_kw")
            if not isinstance(values, list):
                raise HTTPException(422, "edit needs 'values_kw': a list of kW, one per asset")
            req = mgr.edit(request_id, sess.user, sess.role, values, note)
        else:
            raise HTTPException(404, f"unknown decision {decision!r}; use approve, reject or edit")
    except ApprovalError as err:
        raise _fail(err) from err
    return JSONResponse(clean(req.to_dict()))


@router.get("/api/overrides")
def overrides(request: Request, _: SessionDep) -> list[dict[str, Any]]:
    return [o.to_dict() for o in _console(request).session.overrides.list()]


@router.post("/api/overrides")
def set_override(
    request: Request,
    body: JsonBody,
    sess: OperatorPost,
) -> JSONResponse:
    table = _console(request).session.overrides
    kind, mode = str(body.get("asset_kind", "")), str(body.get("mode", ""))
    try:
        index = int(body.get("index", -1))
        reason = str(body.get("reason", ""))[:300]
        if mode == "pin":
            raw = body.get("setpoint_kw")
            try:
                value = float(raw)
            except (TypeError, ValueError):
                value = raw
            ov = table.pin(kind, index, value, sess.user, sess.role, reason)
        elif mode == "manual":
            ov = table.take_out_of_control(kind, index, sess.user, sess.role, reason)
        elif mode == "clear":
            ov = table.clear(kind, index, sess.user, sess.role)
        else:
            raise OverrideError(f"mode must be pin, manual or clear, got {mode!r}")
    except (OverrideError, ApprovalError, ValueError) as err:
        raise _fail(err) from err
    return JSONResponse(clean(ov.to_dict()))


@router.get("/api/policy")
def get_policy(request: Request, _: SessionDep) -> dict[str, Any]:
    return _console(request).session.policy.model_dump()


@router.post("/api/policy")
def set_policy(request: Request, body: JsonBody, sess: AdminPost) -> dict[str, Any]:
    con = _console(request)
    old = con.session.policy
    try:
        new = ApprovalPolicy.model_validate({**old.model_dump(), **body})
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(map(str, first["loc"]))
        raise HTTPException(
            422, f"policy.{where}: {first['msg']} (got {first.get('input')!r})"
        ) from err
    for name in ApprovalPolicy.model_fields:
        setattr(old, name, getattr(new, name))
    con.audit(sess.user, sess.role, "policy.update", "approval-policy", body)
    return old.model_dump()


@router.get("/api/audit")
def audit_log(request: Request, _: _Admin, limit: int = 50) -> list[dict[str, Any]]:
    sink = _console(request).session.audit_sink
    return [] if sink is None else sink.audit_log(limit=min(max(limit, 1), 500))


def mount_console(
    app: FastAPI,
    session: ConsoleSession,
    users: UserStore,
    *,
    signer: SessionSigner | None = None,
    step_interval_s: float = 2.0,
    demo: bool = False,
    run_loop: bool = True,
) -> Console:
    """Add the console to ``app`` (usually ``gridsync.api.app.create_app(...)``).

    ``run_loop`` starts the session's live loop with the app (in ``demo`` mode it waits for
    the first browser to connect); approval events and alerts are mirrored on the runtime's
    bus (``app.state.runtime``) when there is one.
    """
    con = Console(session, users, signer or SessionSigner(), step_interval_s, demo)
    con.runtime = getattr(app.state, "runtime", None)
    app.state.console = con
    from gridsync.web.login import router as login_router
    from gridsync.web.resilience import router as resilience_router

    app.include_router(login_router)
    app.include_router(router)
    app.include_router(resilience_router)
    app.mount(
        f"{PREFIX}/static", StaticFiles(directory=str(HERE / "static")), name="console-static"
    )
    session.add_listener(con.hub.publish)
    session.add_listener(lambda event, payload: _to_bus(con, event, payload))

    if not any(getattr(r, "path", None) == "/" for r in app.router.routes):
        app.add_api_route("/", lambda: RedirectResponse(f"{PREFIX}/"), include_in_schema=False)

    outer = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(a: FastAPI):
        async with outer(a) as st:
            con.loop = asyncio.get_running_loop()
            con.hub.bind(con.loop)
            if run_loop:
                con.first_viewer = asyncio.Event() if demo else None
                con.task = asyncio.create_task(
                    session.run(con.step_interval_s, start=con.first_viewer), name="console:twin"
                )
            try:
                yield st
            finally:
                if con.task is not None:
                    con.task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await con.task

    app.router.lifespan_context = lifespan
    return con


def _to_bus(con: Console, event: str, payload: dict[str, Any]) -> None:
    """Mirror approvals and alerts onto the runtime's bus (best effort, never blocks)."""
    bus = getattr(con.runtime, "bus", None)
    loop = con.loop
    if bus is None or loop is None or event not in ("approval", "alert"):
        return
    if event == "approval":
        req = payload["request"]
        data = {
            "kind": "approval_request",
            "event": payload["event"],
            "id": req["id"],
            "title": req["title"],
            "status": req["status"],
            "action_kind": req["kind"],
            "by": req["decided_by"],
            "ts_s": time.time(),
        }
        topic = "approvals"
    else:
        topic, data = "alerts", {**payload, "kind": "console"}
    loop.call_soon_threadsafe(lambda: loop.create_task(_publish(bus, topic, data)))


async def _publish(bus, topic: str, data: dict[str, Any]) -> None:
    try:
        await bus.publish(topic, clean(data))
    except Exception:
        log.exception("could not publish console %s on the bus", topic)
