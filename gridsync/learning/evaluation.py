"""Held-out evaluation of controllers (trained policies and baselines) on the batch simulator.

Every controller runs on the same windows through ``sim.simulator.simulate`` and is scored by
``sim.kpi.compute_kpis``, so RL and the baselines are judged by one yardstick. Added per run:
``violations_caused`` (voltage bus-steps and overloaded branch-steps that are not violated in
the ``uncontrolled`` run of the same window: what the dispatch caused, the plant being the same
seeded plant for every controller) and ``decision_ms_per_step`` (wall time of
``controller.act``, shield included for ``+shield`` variants).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

REPORTED = (
    "total_cost_eur",
    "total_cost_incl_penalties_eur",
    "peak_import_kw",
    "voltage_violation_bus_steps",
    "overload_branch_steps",
    "unmet_ev_kwh",
    "comfort_violation_degree_hours",
    "curtailed_kwh",
)


class Timed:
    """Wraps a controller and accumulates the wall time of its ``act`` calls."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.name = getattr(inner, "name", type(inner).__name__)
        self.seconds, self.calls = 0.0, 0

    def reset(self, scenario) -> None:
        self.inner.reset(scenario)

    def act(self, obs):
        t = time.perf_counter()
        sp = self.inner.act(obs)
        self.seconds += time.perf_counter() - t
        self.calls += 1
        return sp


def _bad(res, scenario) -> tuple[np.ndarray, np.ndarray]:
    lim = scenario.config.limits
    with np.errstate(invalid="ignore"):
        v = (res.vm_pu < lim.voltage_min_pu) | (res.vm_pu > lim.voltage_max_pu)
        v |= np.isnan(res.vm_pu)
        b = (res.branch_loading_pct > lim.loading_max_pct) | np.isnan(res.branch_loading_pct)
    return v, b


def evaluate_window(
    scenario, controllers: list[str], on_run: Callable[[str], None] | None = None
) -> dict[str, dict]:
    """KPIs (``REPORTED``), ``violations_caused`` and decision time of each controller on
    ``scenario``'s window; ``uncontrolled`` is always run as the violation reference."""
    from gridsync.sim.kpi import compute_kpis
    from gridsync.sim.registry import make_controller
    from gridsync.sim.simulator import simulate

    names = ["uncontrolled"] + [c for c in controllers if c != "uncontrolled"]
    out: dict[str, dict] = {}
    ref = None
    for name in names:
        if on_run:
            on_run(name)
        ctrl = Timed(make_controller(name))
        res = simulate(scenario, ctrl)
        k = compute_kpis(res, scenario)
        v, b = _bad(res, scenario)
        if ref is None:
            ref = (v, b)
        row = {key: float(k[key]) for key in REPORTED}
        row["violations"] = int(v.sum() + b.sum())
        row["violations_caused"] = int((v & ~ref[0]).sum() + (b & ~ref[1]).sum())
        row["decision_ms_per_step"] = 1e3 * ctrl.seconds / max(ctrl.calls, 1)
        row["runtime_s"] = float(res.runtime_s)
        summary = getattr(ctrl.inner, "summary", None)
        if callable(summary):
            row["shield"] = summary()
        out[name] = row
    return {n: out[n] for n in names if n in controllers or n == "uncontrolled"}


def mean_over_windows(per_window: dict[str, dict[str, dict]]) -> dict[str, dict]:
    """Per controller: the mean of each numeric metric over the windows (sums for counts)."""
    names = next(iter(per_window.values())).keys()
    out = {}
    for n in names:
        rows = [w[n] for w in per_window.values() if n in w]
        keys = [k for k, v in rows[0].items() if isinstance(v, int | float)]
        agg = {}
        for key in keys:
            vals = [r[key] for r in rows]
            total = key.startswith("violations") or key.endswith("_steps")
            agg[key] = float(np.sum(vals)) if total else float(np.mean(vals))
        out[n] = agg
    return out
