"""The console's FLISR drill and outage-risk map (``gridsync serve --resilience``).

:func:`attach_drill` runs the CIGRE MV study feeder (:class:`gridsync.resilience.drill.FeederDrill`)
with the console's twin: every step its state goes out in the snapshot under ``flisr``. The
routes let any logged-in user read the drill feeder and the day's risk map, and operators
inject a drill fault or report it repaired (CSRF-checked, audited); the restoration plan goes
through the console's normal approval queue.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, HTTPException, Query, Request
from fastapi.responses import JSONResponse

from gridsync.resilience.drill import DrillError, FeederDrill
from gridsync.web.console import PREFIX, Console, OperatorPost, SessionDep
from gridsync.web.hub import clean

router = APIRouter(prefix=f"{PREFIX}/api", include_in_schema=False)
NO_DRILL = ("this console runs without the FLISR drill feeder; start it with "
            "`gridsync serve --resilience`")


def attach_drill(con: Console, feeder=None) -> FeederDrill:
    """Step a FLISR drill feeder (default: the bundled CIGRE MV study) with ``con``'s twin."""
    from gridsync.resilience.feeder import load_feeder_study

    drill = FeederDrill(feeder or load_feeder_study(), con.session.approvals)

    def step(step: int, when) -> dict[str, Any]:
        out = drill.step(step, when)
        for event in drill.fresh_events:  # what FLISR did goes to the console's alerts too
            con.session.alert("critical" if "located" in event else "info", "flisr", event)
        return out

    con.session.companions["flisr"] = step
    con.drill = drill
    return drill


def _drill(request: Request) -> tuple[Console, FeederDrill]:
    con: Console = request.app.state.console
    if con.drill is None:
        raise HTTPException(404, NO_DRILL)
    return con, con.drill


def _fail(err: DrillError) -> HTTPException:
    return HTTPException(err.status_code, str(err))


@router.get("/flisr")
def flisr_state(request: Request, _: SessionDep) -> JSONResponse:
    return JSONResponse(clean(_drill(request)[1].view()))


@router.post("/flisr/fault")
def inject_fault(request: Request, sess: OperatorPost,
                 body: Annotated[dict[str, Any], Body()]) -> JSONResponse:
    """A drill fault on ``body["line"]``: it happens in the next twin step."""
    con, drill = _drill(request)
    try:
        out = drill.inject(str(body.get("line", "")), sess.user)
    except DrillError as err:
        raise _fail(err) from err
    con.audit(sess.user, sess.role, "drill.fault", out["line"], {"drill": True, **out})
    return JSONResponse(out)


@router.post("/flisr/repair")
def repair(request: Request, sess: OperatorPost) -> JSONResponse:
    con, drill = _drill(request)
    try:
        out = drill.repair(sess.user)
    except DrillError as err:
        raise _fail(err) from err
    con.audit(sess.user, sess.role, "drill.repair", out["repaired"], {"drill": True})
    return JSONResponse(out)


@router.get("/risk")
def risk_map(request: Request, _: SessionDep,
             day: Annotated[int | None, Query(description="day of the year, 0 = Jan 1")] = None,
             peak_gust_m_s: Annotated[float | None, Query(description="what-if storm")] = None,
             ) -> JSONResponse:
    """The day's outage risk per line (default: the twin's current day)."""
    con, drill = _drill(request)
    if day is None:
        t = con.session.scenario.index[min(con.session.twin.step, len(con.session.scenario.index) - 1)]
        day = min(t.dayofyear - 1, 364)
    try:
        return JSONResponse(clean(drill.risk_map(day, peak_gust_m_s)))
    except DrillError as err:
        raise _fail(err) from err
