"""Pluggable parts of the agent loop, by name (import paths, loaded on first use).

* dispatchers: every controller in ``gridsync.sim.registry.CONTROLLERS`` (MPC and others
  register there for ``gridsync simulate`` and appear here automatically);
* ``FORECASTERS``: ``ExogenousForecaster`` implementations;
* ``SAFETY_FILTERS``: ``filter(scenario, setpoints, twin_state) -> (setpoints, notes)``,
  raising ``ValueError`` to reject a plan (a shield can register here).
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

import numpy as np

from gridsync.sim.controller import Setpoints

FORECASTERS: dict[str, str] = {
    "naive": "gridsync.sim.forecasts:NaiveForecaster",
    "perfect": "gridsync.sim.forecasts:PerfectForecaster",
}

SAFETY_FILTERS: dict[str, str] = {
    "limits": "gridsync.runtime.registry:limits_filter",
}


def _load(path: str) -> Any:
    module, _, attr = path.partition(":")
    return getattr(import_module(module), attr)


def _pick(table: dict[str, str], kind: str, name: str) -> Any:
    if name not in table:
        msg = f"unknown {kind} {name!r}; choose from {', '.join(sorted(table))}"
        raise ValueError(msg)
    return _load(table[name])


def make_dispatcher(name: str):
    from gridsync.sim.registry import make_controller

    return make_controller(name)


def make_forecaster(name: str):
    return _pick(FORECASTERS, "forecaster", name)()


def make_safety_filter(name: str):
    return _pick(SAFETY_FILTERS, "safety filter", name)


def limits_filter(scenario, sp: Setpoints, twin_state: dict | None) -> tuple[Setpoints, list[str]]:
    """Clip every request to the asset's power rating (and curtailment to >= 0); report
    what was clipped. Energy, session and comfort limits are enforced by the twin's physics."""
    f = scenario.fleet
    bounds = {
        "battery_kw": (-f.battery.power_kw, f.battery.power_kw),
        "ev_kw": (np.where(f.ev.v2g, -f.ev.max_power_kw, 0.0), f.ev.max_power_kw),
        "deferrable_kw": (np.zeros(len(f.deferrable)), f.deferrable.power_kw),
        "thermal_kw": (np.zeros(len(f.thermal)), f.thermal.max_power_kw),
        "pv_curtail_kw": (np.zeros(len(f.pv)), f.pv.peak_kw),
    }
    notes: list[str] = []
    out = {}
    for name, (lo, hi) in bounds.items():
        req = np.asarray(getattr(sp, name), float)
        clipped = np.clip(req, lo, hi)
        n = int((np.abs(clipped - req) > 1e-9).sum())
        if n:
            notes.append(f"{name}: {n} request(s) clipped to rating")
        out[name] = clipped
    return Setpoints(**out), notes
