"""Read-only REST view of a fleet's store: which feeders there are and how each is doing.

``create_fleet_app(store)`` serves ``GET /api/v1/fleet/feeders`` (one row per feeder: steps
stored, last step and time, plan status, feeder kW, voltage envelope, highest loading) and
``GET /api/v1/fleet/feeders/{feeder_id}`` (that feeder's latest row and its stored plan
steps). Both need a viewer or operator token (``Authorization: Bearer``), as the main API.
This stands in for the operator console's fleet page, which is not built yet.
"""

from __future__ import annotations

import math
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Path, Request

from gridsync.api.auth import READ, Principal, TokenRegistry
from gridsync.api.models import NOT_FOUND, READ_ERRORS

router = APIRouter()
Reader = Annotated[Principal, Depends(READ)]
FeederId = Annotated[str, Path(pattern=r"^[a-z][a-z0-9_-]{0,39}$")]


def _clean(records: list[dict]) -> list[dict]:
    return [
        {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in r.items()}
        for r in records
    ]


@router.get("/api/v1/fleet/feeders", tags=["fleet"], responses=READ_ERRORS)
def list_feeders(request: Request, _: Reader) -> dict[str, Any]:
    """Every feeder of the fleet with its latest stored state."""
    frame = request.app.state.fleet_store.feeders()
    return {"feeders": _clean(frame.to_dict("records")), "count": len(frame)}


@router.get(
    "/api/v1/fleet/feeders/{feeder_id}",
    tags=["fleet"],
    responses={**READ_ERRORS, **NOT_FOUND},
)
def show_feeder(request: Request, feeder_id: FeederId, _: Reader) -> dict[str, Any]:
    """One feeder: its latest state and the steps whose plans are stored."""
    store = request.app.state.fleet_store
    frame = store.feeders()
    row = frame[frame.feeder_id == feeder_id]
    if row.empty:
        raise HTTPException(404, f"feeder {feeder_id!r} has no stored step")
    plans = store.plan_steps()
    mine = plans[plans.feeder_id == feeder_id]
    return {
        "feeder": _clean(row.to_dict("records"))[0],
        "plans": mine[["step", "status", "replanned"]].to_dict("records"),
    }


def create_fleet_app(store, tokens: TokenRegistry | None = None) -> FastAPI:
    """The fleet view over ``store`` (a ``gridsync.fleet.store.FleetStore``)."""
    app = FastAPI(title="GridSync fleet", version="1", docs_url=None, redoc_url=None)
    app.state.fleet_store = store
    app.state.tokens = tokens if tokens is not None else TokenRegistry.from_env()
    app.include_router(router)
    return app
