"""OCPP payload pieces shared by the CSMS and the charger simulator (2.0.1 and 1.6J).

* charging profiles in both versions' shapes (snake_case, as the ``ocpp`` package expects),
  limits in W with one decimal (both schemas allow at most one fraction digit);
* the profile's limit at a given time (the schedule a charger runs);
* meter values -> GridSync readings (``p`` in W, load convention: import positive;
  ``energy`` in Wh; ``soc`` in %).

A negative ``limit`` asks a V2G-capable charger to discharge. OCPP 2.0.1 and 1.6 define no
discharge limit (2.1 adds one); their schemas accept the negative number and the simulator
honours it only when built with ``v2g=True``; a real 2.0.1 charger would reject it.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import jsonschema_rs
from ocpp import messages as ocpp_messages

# Validate payloads on the event loop: the package's default hands every message to a thread
# pool, which costs a thread hop per message and still serialises on the GIL.
ocpp_messages.ASYNC_VALIDATION = False


class _CompiledValidator:
    """The package's JSON-schema check of one message type, compiled (``jsonschema_rs``):
    a valid payload costs ~20 us instead of ~1-2 ms of pure-Python ``jsonschema``, which
    dominated both the CSMS's and a simulated charger's CPU per message. A payload the
    compiled check refuses goes to the package's own validator, so what is refused and the
    OCPP error it maps to stay the package's (formats are not checked, as in the package)."""

    def __init__(self, slow) -> None:
        self.slow = slow
        self.schema = slow.schema
        self._fast = jsonschema_rs.Draft4Validator(slow.schema, validate_formats=False)

    def validate(self, payload) -> None:
        if not self._fast.is_valid(payload):
            self.slow.validate(payload)


_package_validator = ocpp_messages.get_validator
_compiled: dict[int, _CompiledValidator] = {}


def _validator(message_type_id: int, action: str, ocpp_version: str, parse_float=float):
    slow = _package_validator(message_type_id, action, ocpp_version, parse_float=parse_float)
    if parse_float is not float:  # 1.6 schedules are checked on Decimal values: the package's
        return slow
    fast = _compiled.get(id(slow))
    if fast is None:
        fast = _compiled[id(slow)] = _CompiledValidator(slow)
    return fast


ocpp_messages.get_validator = _validator

SUBPROTOCOLS = ("ocpp2.0.1", "ocpp1.6")
VERSION_OF = {"ocpp2.0.1": "2.0.1", "ocpp1.6": "1.6"}

#: measurand -> (quantity, sign): GridSync's load convention (consumption positive)
MEASURANDS = {
    "Power.Active.Import": ("p", 1.0),
    "Power.Active.Export": ("p", -1.0),
    "Energy.Active.Import.Register": ("energy", 1.0),
    "SoC": ("soc", 1.0),
}
_UNITS = {"W": "W", "kW": "kW", "Wh": "Wh", "kWh": "kWh", "Percent": "%"}


def message_ids() -> Callable[[], str]:
    """Unique ids for a connection's CALLs: a random prefix and a counter (``uuid4`` per
    message reads the OS random source each time)."""
    prefix, counter = os.urandom(6).hex(), itertools.count(1)
    return lambda: f"{prefix}-{next(counter)}"


def iso(ts_s: float) -> str:
    """UNIX seconds as the ISO-8601 UTC time OCPP carries."""
    return datetime.fromtimestamp(ts_s, UTC).isoformat().replace("+00:00", "Z")


def unix(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def periods_w(periods_kw: Sequence[tuple[float, float]]) -> list[dict[str, Any]]:
    """``[(start offset s, limit kW), ...]`` as schedule periods in W (one decimal)."""
    if not periods_kw:
        msg = "a charging schedule needs at least one period"
        raise ValueError(msg)
    starts = [int(s) for s, _ in periods_kw]
    if starts[0] != 0 or any(b <= a for a, b in zip(starts, starts[1:], strict=False)):
        msg = f"schedule periods must start at 0 s and increase, got {starts}"
        raise ValueError(msg)
    return [
        {"start_period": s, "limit": round(kw * 1000.0, 1)}
        for s, (_, kw) in zip(starts, periods_kw, strict=True)
    ]


def charging_profile(
    version: str,
    profile_id: int,
    purpose: str,
    periods_kw: Sequence[tuple[float, float]],
    start_s: float | None = None,
    transaction_id: str | int | None = None,
    stack_level: int = 0,
) -> dict[str, Any]:
    """A ``TxProfile`` / ``TxDefaultProfile`` in ``version``'s shape. With ``start_s`` the
    profile is Absolute (periods from that time), otherwise Relative (from the session start)."""
    schedule: dict[str, Any] = {
        "charging_rate_unit": "W",
        "charging_schedule_period": periods_w(periods_kw),
    }
    if start_s is not None:
        schedule["start_schedule"] = iso(start_s)
    profile: dict[str, Any] = {
        "stack_level": stack_level,
        "charging_profile_purpose": purpose,
        "charging_profile_kind": "Absolute" if start_s is not None else "Relative",
    }
    if transaction_id is not None:
        profile["transaction_id"] = transaction_id
    if version == "2.0.1":
        schedule["id"] = profile_id
        return {"id": profile_id, **profile, "charging_schedule": [schedule]}
    return {"charging_profile_id": profile_id, **profile, "charging_schedule": schedule}


def profile_schedule(profile: dict[str, Any]) -> dict[str, Any]:
    """The (first) charging schedule of a profile in either version's shape."""
    sch = profile["charging_schedule"]
    return sch[0] if isinstance(sch, list) else sch


def limit_w_at(
    profile: dict[str, Any], now_s: float, session_start_s: float | None
) -> float | None:
    """The limit (W) ``profile`` sets at ``now_s``; None before its start or without one."""
    sch = profile_schedule(profile)
    if "start_schedule" in sch:
        t0 = unix(sch["start_schedule"])
    elif session_start_s is not None:
        t0 = session_start_s
    else:
        return None
    elapsed = now_s - t0
    if elapsed < 0:
        return None
    if "duration" in sch and elapsed >= sch["duration"]:
        return None
    limit = None
    for p in sch["charging_schedule_period"]:
        if p["start_period"] <= elapsed:
            limit = float(p["limit"])
    return limit


def sampled_values(
    version: str, power_w: float, energy_wh: float, soc_pct: float | None
) -> list[dict[str, Any]]:
    """One meter reading's sampled values (1.6 carries values as strings)."""
    rows = [
        ("Power.Active.Import" if power_w >= 0 else "Power.Active.Export", abs(power_w), "W"),
        ("Energy.Active.Import.Register", energy_wh, "Wh"),
    ]
    if soc_pct is not None:
        rows.append(("SoC", soc_pct, "Percent"))
    out = []
    for measurand, value, unit in rows:
        if version == "2.0.1":
            out.append(
                {
                    "value": round(value, 1),
                    "measurand": measurand,
                    "unit_of_measure": {"unit": unit},
                }
            )
        else:
            out.append({"value": f"{value:.1f}", "measurand": measurand, "unit": unit})
    return out


def readings_from_meter_values(
    device_id: str, meter_value: list[dict[str, Any]]
) -> list[tuple[str, str, str, float, float]]:
    """GridSync readings ``(device_id, quantity, unit, value, ts)`` from an OCPP
    ``meterValue`` list (snake_case keys, either version). Unknown measurands are skipped; a
    value that is not a number raises ValueError naming it."""
    out = []
    for mv in meter_value:
        ts = unix(mv["timestamp"])
        for sv in mv.get("sampled_value", []):
            measurand = sv.get("measurand", "Energy.Active.Import.Register")
            if measurand not in MEASURANDS:
                continue
            quantity, sign = MEASURANDS[measurand]
            uom = sv.get("unit_of_measure") or {}
            unit_name = uom.get("unit") or sv.get("unit") or ("Wh" if quantity == "energy" else "W")
            unit = _UNITS.get(unit_name, unit_name)
            try:
                value = float(sv["value"]) * 10.0 ** int(uom.get("multiplier", 0))
            except (TypeError, ValueError):
                msg = f"meterValue {measurand}: value {sv.get('value')!r} is not a number"
                raise ValueError(msg) from None
            out.append((device_id, quantity, unit, sign * value, ts))
    return out
