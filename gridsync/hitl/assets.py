"""Asset names, setpoint bounds and per-kind setpoint access for the console."""

from __future__ import annotations

import numpy as np

from gridsync.hitl.approvals import SETPOINT_FIELD
from gridsync.model.assets import Fleet

KIND_LABEL = {
    "pv": "PV",
    "battery": "battery",
    "ev": "EV charger",
    "deferrable": "appliance",
    "thermal": "heat pump",
}


KIND_PLURAL = {
    "pv": "PV systems",
    "battery": "batteries",
    "ev": "EV chargers",
    "deferrable": "appliances",
    "thermal": "heat pumps",
}
#: Why the safety shield changed a setpoint, in words (keys: ``gridsync.safety.shield.REASONS``).
SHIELD_REASON = {
    "asset_limit": "beyond the asset's power rating",
    "soc_bound": "the state of charge (or the energy still needed) does not allow it",
    "ramp": "faster than the asset may ramp",
    "voltage_high": "to keep voltages under the upper limit",
    "voltage_low": "to keep voltages above the lower limit",
    "overload": "to keep a line or the transformer within its loading limit",
}


def fleet_of(fleet: Fleet, kind: str):
    """The fleet dataclass of ``kind`` (one of pv, battery, ev, deferrable, thermal)."""
    if kind not in SETPOINT_FIELD:
        msg = f"asset kind {kind!r} is not one of {', '.join(SETPOINT_FIELD)}"
        raise ValueError(msg)
    return getattr(fleet, kind)


def asset_bounds(fleet: Fleet, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """Lower/upper setpoint per asset (kW, load convention; PV: curtailment 0..peak)."""
    f = fleet_of(fleet, kind)
    if kind == "pv":
        return np.zeros(len(f)), f.peak_kw.astype(float)
    if kind == "battery":
        return -f.power_kw.astype(float), f.power_kw.astype(float)
    if kind == "ev":
        return np.where(f.v2g, -f.max_power_kw, 0.0), f.max_power_kw.astype(float)
    if kind == "deferrable":
        return np.zeros(len(f)), f.power_kw.astype(float)
    return np.zeros(len(f)), f.max_power_kw.astype(float)


def asset_labels(fleet: Fleet, bus_names: np.ndarray, kind: str, index: np.ndarray) -> list[str]:
    """``"EV charger 7 @ LV1.101 Bus 12"`` style names."""
    f = fleet_of(fleet, kind)
    return [f"{KIND_LABEL[kind]} {int(i)} @ {bus_names[int(f.bus[int(i)])]}" for i in index]


def asset_name(fleet: Fleet, bus_names, kind: str, index: int) -> str:
    """One asset's name, ``"PV 13 @ Bus 94"`` (``"PV 13"`` without bus names)."""
    if bus_names is None:
        return f"{KIND_LABEL[kind]} {int(index)}"
    return asset_labels(fleet, np.asarray(bus_names), kind, np.array([index]))[0]


def describe_change(change, fleet: Fleet, bus_names) -> str:
    """A shield change (``gridsync.safety.shield.Change``) in words, with the asset's name."""
    kind = {v: k for k, v in SETPOINT_FIELD.items()}[change.kind]
    why = SHIELD_REASON.get(change.reason, change.reason.replace("_", " "))
    name = asset_name(fleet, bus_names, kind, change.asset)
    return f"{name}: {change.requested_kw:.2f} -> {change.applied_kw:.2f} kW ({why})"


def check_index(fleet: Fleet, kind: str, index: int) -> int:
    n = len(fleet_of(fleet, kind))
    if not 0 <= int(index) < n:
        msg = f"{kind} index {index} is out of range: this fleet has {n} {KIND_PLURAL[kind]} (0..{n - 1})"
        raise ValueError(msg)
    return int(index)
