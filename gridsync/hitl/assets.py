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


def check_index(fleet: Fleet, kind: str, index: int) -> int:
    n = len(fleet_of(fleet, kind))
    if not 0 <= int(index) < n:
        msg = f"{kind} index {index} is out of range: this fleet has {n} ({KIND_LABEL[kind]}s 0..{n - 1})"
        raise ValueError(msg)
    return int(index)
