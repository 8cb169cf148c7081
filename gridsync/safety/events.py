"""Injected events for the anomaly benchmark, written into time-aligned readings.

Each event changes a copy of one window's aligned readings (rows = the instant described)
and records which steps and plan rows are affected, so the benchmark can score detection,
time to detect and whether the alert named the right measurement. Event types:

``gross_error``    1-3 readings grossly wrong for one step (2-8 % |V|, 3-10 kW, ...)
``frozen``         a sensor repeats its last value for 6-16 steps
``load_jump``      a real, unscheduled 5-12 kW load at a metered bus for 6-16 steps
``fdia``           offsets of 6-15 std on 3-6 SCADA/meter readings (not crafted)
``stealthy_fdia``  a = h(x + c) - h(x) on all SCADA/meter rows for a fake 6-12 kW load held
                   2 h (crafted on the estimator's own model: passes the residual tests);
                   PMUs stay honest
``stealthy_fdia_ramped``  the same attack ramped in over 2-6 h, then held 1 h (no jump)
``stealthy_fdia_all``     abrupt, with the PMUs compromised too
``dropout``        8-15 meters (a data concentrator) silent for 4-12 steps
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gridsync.grid.estimation.measurements import VA, VM, P, Q
from gridsync.grid.estimation.twin import MeasurementPlan, Truth, truth_from_loads
from gridsync.grid.powerflow import PowerFlowModel

EVENT_TYPES = (
    "gross_error",
    "fdia",
    "frozen",
    "load_jump",
    "dropout",
    "stealthy_fdia",
    "stealthy_fdia_ramped",
    "stealthy_fdia_all",
)


@dataclass
class Injected:
    """An event in a window: ``steps`` it covers (reference steps), the plan ``rows`` at
    fault (what a correct alert names) and, for dropouts, the silent devices."""

    kind: str
    steps: np.ndarray
    rows: np.ndarray
    aligned: np.ndarray
    silent_buses: np.ndarray | None = None


def gross_size(kind: np.ndarray, values: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Physically gross errors: 2-8 % on |V|, 0.6-1.7 deg on angles, 3-10 kW/kvar on powers,
    20-50 % on currents (a few std would hide inside normal noise and variation)."""
    u = rng.uniform(0.0, 1.0, len(kind))
    return np.select(
        [kind == VM, kind == VA, (kind == P) | (kind == Q)],
        [0.02 + 0.06 * u, 0.01 + 0.02 * u, 3.0 + 7.0 * u],
        (0.2 + 0.3 * u) * np.abs(values) + 0.01,
    )


class EventInjector:
    """Draws events of each type into the aligned readings of one window."""

    def __init__(
        self,
        pf: PowerFlowModel,
        plan: MeasurementPlan,
        truth: Truth,
        aligned: np.ndarray,
        steps: np.ndarray,
        rng: np.random.Generator,
    ) -> None:
        self.pf, self.plan, self.truth = pf, plan, truth
        self.aligned, self.steps, self.rng = aligned, np.asarray(steps), rng
        self.device = np.isin(plan.source, ("scada", "pmu", "meter"))

    def _window(self, lo: int, hi: int) -> np.ndarray:
        length = int(self.rng.integers(lo, hi + 1))
        start = int(self.rng.choice(self.steps[8 : len(self.steps) - length - 4]))
        return np.arange(start, start + length)

    def _meter_p_row(self, bus: int) -> np.ndarray:
        p = self.plan
        return np.flatnonzero((p.kind == P) & (p.loc == bus) & (p.source == "meter"))

    def _fake_load(self, a: np.ndarray, win: np.ndarray, extra_kw: np.ndarray, rows: np.ndarray):
        """Add to ``rows`` of ``a`` what they would read if ``extra_kw`` (len(win), n_bus) more
        were consumed: h(x + c) - h(x) through the AC power flow (a = H c, non-linearised)."""
        t = self.truth
        new = truth_from_loads(self.pf, t.p_kw[win] + extra_kw, t.q_kvar[win])
        fn = self.plan.fn
        delta = np.array([fn.h(x) - fn.h(y) for x, y in zip(new.v, t.v[win], strict=True)])
        a[np.ix_(win, rows)] += delta[:, rows]

    def draw(self, kind: str) -> Injected:
        plan, rng = self.plan, self.rng
        a = self.aligned.copy()
        n_bus = len(plan.pf.ppc_of_bus)
        if kind in ("gross_error", "fdia"):
            step = int(rng.choice(self.steps[8:-4]))
            present = np.flatnonzero(np.isfinite(a[step]) & self.device)
            if kind == "gross_error":
                bad = rng.choice(present, int(rng.integers(1, 4)), replace=False)
                size = gross_size(plan.kind[bad], a[step, bad], rng)
            else:
                pool = present[plan.source[present] != "pmu"]
                bad = rng.choice(pool, int(rng.integers(3, 7)), replace=False)
                std = plan.device_std(a[step], step, aligned=True)
                size = rng.uniform(6.0, 15.0, len(bad)) * std[bad]
            a[step, bad] += rng.choice([-1.0, 1.0], len(bad)) * size
            return Injected(kind, np.array([step]), np.sort(bad), a)
        if kind == "frozen":
            win = self._window(6, 16)
            rows = np.flatnonzero(self.device & np.isfinite(a[win[0] - 1]))
            row = int(rng.choice(rows))
            a[win, row] = a[win[0] - 1, row]
            return Injected(kind, win, np.array([row]), a)
        if kind == "dropout":
            win = self._window(4, 12)
            buses = rng.choice(plan.meter_buses, int(rng.integers(8, 16)), replace=False)
            rows = np.flatnonzero(np.isin(plan.loc, buses) & (plan.source == "meter"))
            a[np.ix_(win, rows)] = np.nan
            return Injected(kind, win, rows, a, silent_buses=np.sort(buses))
        bus = int(rng.choice(plan.meter_buses))
        if kind == "load_jump":  # a real load: every device sees it, the PMUs included
            win = self._window(6, 16)
            extra = np.zeros((len(win), n_bus))
            extra[:, bus] = rng.uniform(5.0, 12.0)
            self._fake_load(a, win, extra, np.arange(len(plan)))
            return Injected(kind, win, self._meter_p_row(bus), a)
        if kind == "stealthy_fdia_ramped":
            ramp = int(rng.integers(8, 25))
            win = self._window(ramp + 4, ramp + 4)
            shape = np.r_[np.arange(1, ramp + 1) / ramp, np.ones(4)]
        else:
            win = self._window(8, 8)
            shape = np.ones(8)
        extra = np.zeros((len(win), n_bus))
        extra[:, bus] = rng.uniform(6.0, 12.0) * shape
        sources = ("scada", "pmu", "meter") if kind == "stealthy_fdia_all" else ("scada", "meter")
        self._fake_load(a, win, extra, np.flatnonzero(np.isin(plan.source, sources)))
        return Injected(kind, win, self._meter_p_row(bus), a)
