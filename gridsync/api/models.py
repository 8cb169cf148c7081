"""Request bodies, query types and documented error responses of the REST API.

Everything a caller sends is checked here, at the boundary, so nothing unstorable reaches the
bus or the store: text fields refuse NUL characters (PostgreSQL text cannot hold them),
numbers must be finite and within physical bounds, timestamps must be ISO 8601 in a sane
range. Errors are 422 responses in FastAPI's documented ``HTTPValidationError`` shape (a list
of ``{loc, msg, type}``) naming the field; :func:`unprocessable` raises one from a handler.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi.exceptions import RequestValidationError
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field

#: No NUL and no other C0 control character except tab, newline and carriage return.
TEXT_PATTERN = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f]*$"
_SURROGATE = re.compile("[\ud800-\udfff]")

#: Earliest and latest plan timestamps accepted (UNIX s): 2000-01-01 to 2100-01-01 UTC.
MIN_TS_S, MAX_TS_S = 946_684_800.0, 4_102_444_800.0
#: Largest setpoint magnitude accepted (kW); far beyond any distribution-grid asset.
MAX_SETPOINT_KW = 1.0e5


def _no_surrogates(text: str) -> str:
    """Lone UTF-16 surrogates (``"\\ud800"`` in JSON) cannot be encoded as UTF-8."""
    if _SURROGATE.search(text):
        msg = "contains an unpaired UTF-16 surrogate"
        raise ValueError(msg)
    return text


def Text(max_length: int, min_length: int = 0) -> Any:  # noqa: N802 (a type factory)
    """A string of at most ``max_length`` characters without NUL/control characters."""
    return Annotated[
        str,
        Field(min_length=min_length, max_length=max_length, pattern=TEXT_PATTERN),
        AfterValidator(_no_surrogates),
    ]


def _iso_only(value: Any) -> Any:
    """Timestamps are ISO 8601 strings; a bare number (``0.5``) is refused, not read as
    UNIX seconds, as the schema (``format: date-time``) says."""
    number = isinstance(value, int | float)
    if isinstance(value, str):
        try:
            float(value)
            number = True
        except ValueError:
            pass
    if number:
        msg = "expected an ISO 8601 date-time such as 2026-06-10T10:00:00Z"
        raise ValueError(msg)
    return value


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


IsoTime = Annotated[datetime, BeforeValidator(_iso_only), AfterValidator(_utc)]
Kw = Annotated[float, Field(ge=-MAX_SETPOINT_KW, le=MAX_SETPOINT_KW, allow_inf_nan=False)]
TimestampS = Annotated[float, Field(ge=MIN_TS_S, le=MAX_TS_S, allow_inf_nan=False)]
#: Fleet sizes are not known when the schema is written; the app's OpenAPI document fixes
#: each list's length to the running fleet (see ``gridsync.api.app``).
KwList = Annotated[list[Kw], Field(max_length=100_000)]


class PlanSetpoints(BaseModel):
    """Setpoints per asset kind (kW, load convention), one value per asset of the fleet;
    a kind left out keeps its assets at 0 kW."""

    model_config = ConfigDict(extra="forbid")
    battery_kw: KwList | None = None
    ev_kw: KwList | None = None
    deferrable_kw: KwList | None = None
    thermal_kw: KwList | None = None
    pv_curtail_kw: KwList | None = None


class PlanIn(BaseModel):
    """A manual plan. Timestamps are UNIX seconds between 2000 and 2100."""

    model_config = ConfigDict(extra="forbid")
    plan_id: Annotated[str | None, Field(pattern=r"^[A-Za-z0-9_.:-]{1,64}$")] = None
    setpoints: PlanSetpoints
    valid_from_s: TimestampS | None = None
    valid_to_s: TimestampS | None = None
    note: Text(500) = ""

    def to_plan(self) -> dict[str, Any]:
        out = self.model_dump(exclude={"setpoints"})
        out["setpoints"] = self.setpoints.model_dump(exclude_none=True)
        return out


class DecisionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    plan_id: Text(64, min_length=1)
    decision: Literal["approve", "reject"]
    comment: Text(1000) = ""


class ScenarioSelect(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Text(100, min_length=1)
    days: Annotated[int | None, Field(ge=1, le=366)] = None


class ScenarioUpload(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Text(100, min_length=1)
    toml: Text(100_000)


class ErrorOut(BaseModel):
    """Every error other than a validation error: a human-readable ``detail``."""

    detail: str


def _err(description: str) -> dict[str, Any]:
    return {"model": ErrorOut, "description": description}


UNAUTHORIZED = {401: _err("Missing or unknown bearer token")}
FORBIDDEN = {403: _err("The token's role may not do this")}
NOT_FOUND = {404: _err("No such object (or none yet)")}
CONFLICT = {409: _err("The object is not in a state that allows this (e.g. already decided)")}
TOO_LARGE = {413: _err("Request body larger than the configured limit")}
BAD_BODY = {400: _err("The body is not UTF-8 JSON")}
READ_ERRORS = {**UNAUTHORIZED, **FORBIDDEN}
WRITE_ERRORS = {**BAD_BODY, **UNAUTHORIZED, **FORBIDDEN, **TOO_LARGE}


def unprocessable(loc: tuple[str | int, ...], msg: str, value: Any = None) -> None:
    """Raise a 422 in the documented validation-error shape for field ``loc``."""
    raise RequestValidationError([{"loc": loc, "msg": msg, "type": "value_error", "input": value}])


def validation_errors(errors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Errors in the documented ``ValidationError`` shape, JSON-safe: the offending value is
    echoed only when it is a short scalar (a NaN becomes the string ``"nan"``)."""
    out = []
    for e in errors:
        item = {
            "loc": [p if isinstance(p, int) else str(p) for p in e.get("loc", ())],
            "msg": str(e.get("msg", "")),
            "type": str(e.get("type", "value_error")),
        }
        value = e.get("input")
        if isinstance(value, float) and not math.isfinite(value):
            item["input"] = str(value)
        elif (
            isinstance(value, bool | int | float)
            or value is None
            or isinstance(value, str)
            and len(value) <= 200
        ):
            item["input"] = value
        out.append(item)
    return out
