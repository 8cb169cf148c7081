"""HTTP endpoints under ``/api/v1`` (plus the open ``/health``)."""

from __future__ import annotations

import asyncio
import time
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, HTTPException, Query, Request

from gridsync.api.auth import DEVICE, OPERATE, READ, Principal
from gridsync.api.models import (
    CONFLICT,
    NOT_FOUND,
    READ_ERRORS,
    TEXT_PATTERN,
    WRITE_ERRORS,
    DecisionIn,
    IsoTime,
    PlanIn,
    ScenarioSelect,
    ScenarioUpload,
    unprocessable,
)
from gridsync.hitl.approvals import ApprovalError
from gridsync.model.scenario_config import ScenarioError
from gridsync.runtime.runtime import Runtime

router = APIRouter()
#: A free-text query filter (device id, quantity, event kind): no NUL or control characters.
Filter = Annotated[str | None, Query(max_length=200, pattern=TEXT_PATTERN)]
Reader = Annotated[Principal, Depends(READ)]
Operator = Annotated[Principal, Depends(OPERATE)]
Device = Annotated[Principal, Depends(DEVICE)]


def _rt(request: Request) -> Runtime:
    return request.app.state.runtime


def _none_404(value: Any, what: str) -> Any:
    if value is None:
        raise HTTPException(404, f"no {what} yet: the runtime has not received one")
    return value


@router.get("/health", tags=["meta"])
async def health(request: Request) -> dict[str, Any]:
    """Liveness, agent and ingestion health (no authentication). ``status`` is ``degraded``
    while an ingestion stage (MQTT bridge, store sink) has stalled: work waiting longer than
    its ``stall_after_s`` with nothing finished."""
    rt = _rt(request)
    ingestion = rt.ingestion()
    status = "stopped" if not rt.running else "ok" if ingestion["status"] == "ok" else "degraded"
    return {
        "status": status,
        "bus": rt.bus.kind,
        "store": rt.store.kind,
        "agents": {n: a.state for n, a in rt.state.agents.items()},
        "ingestion": ingestion,
        "uptime_s": round(time.time() - rt.state.started_s, 1),
    }


@router.get("/api/v1/state", tags=["state"], responses=READ_ERRORS)
async def current_state(request: Request, _: Reader) -> dict[str, Any]:
    """The latest synchronised snapshot (values, ages, staleness), twin summary and counters."""
    st = _rt(request).state
    twin = st.twin or {}
    return {
        "snapshot": st.snapshot,
        "twin": {k: v for k, v in twin.items() if v is None or isinstance(v, str | int | float)},
        "counters": dict(st.counters),
        "scenario": st.scenario,
    }


@router.get("/api/v1/agents", tags=["state"], responses=READ_ERRORS)
async def agents(request: Request, _: Reader) -> dict[str, Any]:
    """Each supervised agent: state, ticks, restarts, last error; plus each ingestion stage
    as ``ingestion:<stage>`` (state ``running`` or ``stalled``, ticks = items finished)."""
    rt = _rt(request)
    out = {n: a.to_dict() for n, a in rt.state.agents.items()}
    for st in rt.ingestion()["stages"]:
        stalled = st["status"] == "stalled"
        why = f"{st['pending']} pending, none finished for {st['waiting_s']:.0f} s"
        out[f"ingestion:{st['stage']}"] = {
            "name": st["stage"],
            "period_s": 0.0,
            "state": "stalled" if stalled else "running",
            "ticks": st["done"],
            "restarts": 0,
            "last_error": why if stalled else "",
            "last_tick_s": st["last_done_s"],
            "next_restart_s": None,
        }
    return out


@router.get("/api/v1/forecasts/latest", tags=["forecasts"], responses={**READ_ERRORS, **NOT_FOUND})
async def latest_forecast(request: Request, _: Reader) -> dict[str, Any]:
    return _none_404(_rt(request).state.forecast, "forecast")


@router.get("/api/v1/plans/current", tags=["plans"], responses={**READ_ERRORS, **NOT_FOUND})
async def current_plan(request: Request, _: Reader) -> dict[str, Any]:
    return _none_404(_rt(request).state.plan, "plan")


@router.get("/api/v1/plans", tags=["plans"], responses=READ_ERRORS)
async def plan_history(
    request: Request,
    _: Reader,
    since: IsoTime | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
) -> list[dict[str, Any]]:
    """Stored plans, newest first."""
    store = _rt(request).store
    return await asyncio.to_thread(store.plans, since.timestamp() if since else None, limit)


@router.post("/api/v1/plans", tags=["plans"], status_code=202, responses=WRITE_ERRORS)
async def submit_plan(request: Request, plan: PlanIn, who: Operator) -> dict[str, Any]:
    """Publish a manual plan; the safety agent checks it before any setpoint is released.
    Each setpoint list must have one value per asset of the running fleet."""
    rt = _rt(request)
    body = plan.to_plan()
    for name, values in body["setpoints"].items():
        want = (rt.fleet_sizes or {}).get(name)
        if want is not None and len(values) != want:
            unprocessable(
                ("body", "setpoints", name),
                f"expected {want} values (one per asset of the fleet), got {len(values)}",
                len(values),
            )
    pid = await rt.submit_plan(body, who.name, who.role)
    return {"plan_id": pid, "status": "published"}


@router.get("/api/v1/setpoints/latest", tags=["plans"], responses={**READ_ERRORS, **NOT_FOUND})
async def latest_setpoints(request: Request, _: Reader) -> dict[str, Any]:
    return _none_404(_rt(request).state.setpoints, "setpoints")


@router.get("/api/v1/alerts", tags=["alerts"], responses=READ_ERRORS)
async def alerts(
    request: Request,
    _: Reader,
    unacknowledged: bool = False,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[dict[str, Any]]:
    """Recent alerts, newest first."""
    items = list(_rt(request).state.alerts)[::-1]
    if unacknowledged:
        items = [a for a in items if a["acknowledged_by"] is None]
    return items[:limit]


@router.post(
    "/api/v1/alerts/{alert_id}/ack", tags=["alerts"], responses={**WRITE_ERRORS, **NOT_FOUND}
)
async def ack_alert(request: Request, alert_id: int, who: Operator) -> dict[str, Any]:
    return _none_404(
        await _rt(request).ack_alert(alert_id, who.name, who.role), f"alert {alert_id}"
    )


@router.get("/api/v1/approvals", tags=["plans"], responses=READ_ERRORS)
async def approvals(request: Request, _: Reader) -> list[dict[str, Any]]:
    return list(_rt(request).state.approvals)[::-1]


@router.post(
    "/api/v1/approvals",
    tags=["plans"],
    status_code=202,
    responses={**WRITE_ERRORS, **NOT_FOUND, **CONFLICT},
)
async def decide(request: Request, body: DecisionIn, who: Operator) -> dict[str, Any]:
    """Approve or reject a plan or a pending console approval request (published on the
    ``approvals`` topic and audited): 404 for an unknown id, 409 when already decided."""
    try:
        return await _rt(request).decide(
            body.plan_id, body.decision, body.comment, who.name, who.role
        )
    except ApprovalError as err:
        raise HTTPException(err.status_code, str(err)) from None


@router.get("/api/v1/history/readings", tags=["history"], responses=READ_ERRORS)
async def history_readings(
    request: Request,
    _: Reader,
    device_id: Filter = None,
    quantity: Filter = None,
    start: IsoTime | None = None,
    end: IsoTime | None = None,
    limit: Annotated[int, Query(ge=1, le=100_000)] = 10_000,
) -> dict[str, Any]:
    """Stored readings with ``start <= ts < end`` (columnar JSON, canonical units)."""
    store = _rt(request).store
    df = await asyncio.to_thread(
        store.query_readings,
        device_id,
        quantity,
        start.timestamp() if start else None,
        end.timestamp() if end else None,
        limit,
    )
    return {
        "n": len(df),
        "ts": [t.isoformat() for t in df.ts],
        "device_id": df.device_id.tolist(),
        "quantity": df.quantity.tolist(),
        "unit": df.unit.tolist(),
        "value": [None if v != v else v for v in df.value.tolist()],
    }


@router.get("/api/v1/history/events", tags=["history"], responses=READ_ERRORS)
async def history_events(
    request: Request,
    _: Reader,
    kind: Filter = None,
    since: IsoTime | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[dict[str, Any]]:
    store = _rt(request).store
    return await asyncio.to_thread(store.events, kind, since.timestamp() if since else None, limit)


@router.get("/api/v1/audit", tags=["history"], responses=READ_ERRORS)
async def audit_log(
    request: Request, _: Operator, limit: Annotated[int, Query(ge=1, le=1000)] = 100
) -> list[dict[str, Any]]:
    """Who did what (operators only)."""
    return await asyncio.to_thread(_rt(request).store.audit_log, None, limit)


@router.get("/api/v1/scenarios", tags=["scenarios"], responses=READ_ERRORS)
async def scenarios(request: Request, _: Reader) -> list[dict[str, Any]]:
    return await asyncio.to_thread(_rt(request).catalog.list)


@router.post("/api/v1/scenarios", tags=["scenarios"], status_code=201, responses=WRITE_ERRORS)
async def upload_scenario(request: Request, body: ScenarioUpload, who: Operator) -> dict[str, Any]:
    """Validate and store a TOML scenario (same schema as ``gridsync simulate``)."""
    rt = _rt(request)
    try:
        info = rt.catalog.upload(body.name, body.toml)
    except ScenarioError as err:
        unprocessable(("body", "toml"), str(err))
    await asyncio.to_thread(rt.store.audit, who.name, who.role, "scenario.upload", body.name, info)
    return info


@router.post(
    "/api/v1/scenarios/select", tags=["scenarios"], responses={**WRITE_ERRORS, **NOT_FOUND}
)
async def select_scenario(request: Request, body: ScenarioSelect, who: Operator) -> dict[str, Any]:
    """Switch the twin to another scenario (agents restart on it)."""
    try:
        return await _rt(request).select_scenario(body.name, body.days, who.name, who.role)
    except KeyError as err:
        raise HTTPException(404, err.args[0]) from None


@router.post("/api/v1/telemetry", tags=["telemetry"], status_code=202, responses=WRITE_ERRORS)
async def post_telemetry(
    request: Request, who: Device, payload: Annotated[dict[str, Any], Body()]
) -> dict[str, Any]:
    """Ingest one telemetry message (same schema and checks as the MQTT bridge): readings as
    objects or a columnar batch, whose bad rows are dead-lettered and counted in
    ``rejected_rows`` while the good ones are accepted."""
    raw = await request.body()
    res = await _rt(request).ingestor.submit(raw, origin=f"http:{who.name}")
    if not res.accepted:
        unprocessable(("body",), res.reason)
    return {
        "accepted": True,
        "readings": res.n_readings,
        "rejected_rows": res.rejected_rows,
        "bus_seq": res.bus_seq,
    }
