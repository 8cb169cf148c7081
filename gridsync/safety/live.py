"""The anomaly monitor step by step, as a live service runs it.

``LiveAnomalyMonitor.push(step, readings)`` takes what arrived at ``step`` (one value per plan
row, NaN = nothing) and returns the alerts that can be raised now: the readings *of*
``step - latency`` are complete, so the estimator checks that instant; checks that need one
more step (a level shift vs a spike) judge the instant before. Each instant is alerted at most
once. The alerts' ``to_dict()`` is the console's alert (``severity``, ``source``,
``message`` naming the suspects, plus the evidence).
"""

from __future__ import annotations

import numpy as np

from gridsync.grid.estimation.twin import MeasurementPlan
from gridsync.safety.alerts import AnomalyAlert
from gridsync.safety.features import SnapshotFeatures
from gridsync.safety.monitor import AnomalyMonitor, Window


class LiveAnomalyMonitor:
    """Online use of a fitted ``AnomalyMonitor`` over one scenario's steps.

    ``pseudo_p_kw``/``pseudo_q_kvar`` (T, n_bus) are the forecasts per step (issued before
    the step), ``tod`` (T,) each step's time-of-day class (``detectors.tod_block``);
    ``memory_steps`` is how much history the temporal checks look at.
    """

    def __init__(
        self,
        monitor: AnomalyMonitor,
        plan: MeasurementPlan,
        pseudo_p_kw: np.ndarray,
        pseudo_q_kvar: np.ndarray,
        tod: np.ndarray,
        memory_steps: int = 96,
    ) -> None:
        if not hasattr(monitor, "fitted"):
            msg = "LiveAnomalyMonitor: fit the AnomalyMonitor on clean history first"
            raise ValueError(msg)
        self.monitor, self.plan = monitor, plan
        self.pseudo_p_kw, self.pseudo_q_kvar, self.tod = pseudo_p_kw, pseudo_q_kvar, tod
        n_t = len(pseudo_p_kw)
        self.readings = np.full((n_t, len(plan)), np.nan)
        self.feats = SnapshotFeatures.empty(n_t, len(plan), len(monitor.analyzer.pmu_rows))
        self.latency = int(plan.latency.max())
        self.memory = memory_steps
        self._alerted: set[int] = set()
        self._first: int | None = None

    def push(self, step: int, readings: np.ndarray) -> list[AnomalyAlert]:
        row = np.asarray(readings, dtype=float)
        if row.shape != (len(self.plan),):
            msg = f"readings: expected {len(self.plan)} values (one per plan row), got {row.shape}"
            raise ValueError(msg)
        self.readings[step] = row
        if self._first is None:
            self._first = step
        ref = step - self.latency
        if ref < self._first:  # some readings of that instant came before the monitor started
            return []
        lo = max(ref - self.memory, self._first)
        aligned = np.full((step + 1 - lo, len(self.plan)), np.nan)
        aligned[:] = self.plan.align(self.readings[lo : step + 1])
        mon = self.monitor
        mon.analyzer.plan = self.plan
        sl = slice(lo, step + 1)
        sub_feats = SnapshotFeatures(
            self.feats.chi2_z[sl], self.feats.rn[sl], self.feats.pmu_z[sl], self.feats.converged[sl]
        )  # views: the new evidence lands in self.feats
        mon.analyzer.analyze(
            aligned, self.pseudo_p_kw[sl], self.pseudo_q_kvar[sl], [ref - lo], out=sub_feats
        )
        w = Window(
            self.plan,
            aligned,
            self.pseudo_p_kw[sl],
            self.pseudo_q_kvar[sl],
            self.tod[sl],
            sub_feats,
        )
        scores = mon.scores(w)
        alarms = mon.alarms(scores)
        out = []
        for t, lookahead in ((ref - 1, 1), (ref, 0)):
            if t < lo or t in self._alerted:
                continue
            ready = {
                n: a if scores[n].lookahead == lookahead else np.zeros_like(a)
                for n, a in alarms.items()
            }
            if any(a[t - lo] for a in ready.values()):
                self._alerted.add(t)
                alert = mon.alert_at(w, scores, ready, t - lo)
                alert.step += lo
                alert.raised_step = step
                out.append(alert)
        return out
