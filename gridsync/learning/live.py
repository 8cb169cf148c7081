"""Drift watch for the runtime's live load forecast: errors checked as actuals arrive, a drift
alert that says why, a retrained candidate in shadow, and audited promotion.

``ForecastWatch`` sits next to a live exogenous forecaster (``gridsync.sim.forecasts``
protocol) in the forecast agent. Each issued forecast leaves its feeder-total P50 at
``lead`` steps ahead; when that step's actual arrives, the residual is checked:

- the first ``warmup`` residuals after a (re)start are the clean reference: their mean and
  standard deviation standardise the stream (so one detector setting serves any feeder),
  and their mean actual is the level a shift is expressed against;
- after that a :class:`~gridsync.learning.drift.DriftMonitor` (river's Page-Hinkley) watches
  the standardised residuals; an alert says by how much demand moved against the forecast,
  since when and in sigmas; ``retrain_after`` values later the shift is measured again over
  everything since the change (the alert's window is short and selected for a large
  deviation) and a candidate is trained;
- the candidate comes from ``retrain(live, change_step, ratio, history)``, the ratio the mean
  actual over the mean forecast since the estimated change (in the runtime
  :meth:`RelevelledHistory.retrain`: the live model on its history with the load before the
  change rescaled to the new level, as ``gridsync.learning.adapt`` does), is registered in
  the :class:`~gridsync.learning.registry.ModelRegistry` when one is given, and forecasts in
  shadow next to the live one for ``shadow_steps`` actuals. It is promoted only when its
  MAPE beats the live model's by ``margin`` (relative), else rejected; either decision is
  an event (and an audit entry through the registry) and restarts the warm-up.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from gridsync.learning.drift import DriftMonitor


class RelevelledHistory:
    """An exogenous forecaster retrained on a history whose inflexible load before
    ``change_step`` is multiplied by ``ratio`` (a step in demand or a meter gain then looks as
    if it had always been there; rows from the change on are as measured). ``base`` reads
    its history from the scenario it is given, so it sees the rescaled copy; chained
    retrainings multiply (``factor`` per scenario row)."""

    def __init__(self, base: Any, factor: np.ndarray) -> None:
        self.base, self.factor = base, np.asarray(factor, dtype=float)
        self._view: tuple[int, Any] | None = None

    @classmethod
    def retrain(cls, live: Any, change_step: int, ratio: float, n_steps: int):
        if not ratio > 0:
            raise ValueError(f"ratio: {ratio} must be > 0 (a demand level multiplier)")
        base, factor = (
            (live.base, live.factor.copy())
            if isinstance(live, cls)
            else (
                live,
                np.ones(n_steps),
            )
        )
        factor[:change_step] *= ratio
        return cls(base, factor)

    def forecast(self, scenario, step: int, horizon: int):
        if self._view is None or self._view[0] != id(scenario):
            f = self.factor[:, None]
            view = dataclasses.replace(
                scenario,
                base_load_kw=scenario.base_load_kw * f,
                base_load_kvar=scenario.base_load_kvar * f,
            )
            self._view = (id(scenario), view)
        return self.base.forecast(self._view[1], step, horizon)

    def __getstate__(self):  # the scenario view is a cache, not part of the model
        return {"base": self.base, "factor": self.factor, "_view": None}


def mean_shift_split(x: np.ndarray) -> int:
    """Where one mean shift most likely starts in ``x`` (least squares: the split that
    maximises ``k (n - k) / n * (mean after - mean before)^2``; at least one value on each
    side). Sharper than Page-Hinkley's own estimate, which its allowance pulls early on
    noisy streams."""
    n = len(x)
    if n < 2:
        return 0
    c = np.cumsum(x)
    k = np.arange(1, n)
    before, after = c[:-1] / k, (c[-1] - c[:-1]) / (n - k)
    return int(k[np.argmax(k * (n - k) / n * (after - before) ** 2)])


class ForecastWatch:
    """Live-error drift check, retraining and shadow promotion for one forecast (module doc)."""

    def __init__(
        self,
        name: str,
        live: Any,
        *,
        lead: int,
        warmup: int = 96,
        shadow_steps: int = 96,
        retrain_after: int = 24,
        margin: float = 0.05,
        monitor_kwargs: dict | None = None,
        retrain: Callable[[Any, int, float, Any], Any],
        registry=None,
    ) -> None:
        if lead < 1 or warmup < 2 or shadow_steps < 1:
            raise ValueError(
                f"lead {lead}, warmup {warmup}, shadow_steps {shadow_steps}: expected lead >= 1, "
                "warmup >= 2 and shadow_steps >= 1 steps"
            )
        self.name, self.live, self.lead = name, live, lead
        self.warmup, self.shadow_steps, self.margin = warmup, shadow_steps, margin
        self.retrain_after = retrain_after
        self.monitor_kwargs = monitor_kwargs or {}
        self.retrain, self.registry = retrain, registry
        self.candidate: Any = None
        self.live_version: int | None = None
        self._cand_version: int | None = None
        self._pending: dict[int, tuple[float, float | None]] = {}  # target -> (live, cand)
        self._shadow: list[tuple[float, float]] = []  # (live, candidate) APE
        self._reason = ""
        self._last_issue: int | None = None
        self.events: list[dict[str, Any]] = []
        self._restart()

    def _restart(self) -> None:
        self.monitor: DriftMonitor | None = None
        self._alert = None  # (alert, values fed when it fired) until the candidate exists
        self._warm: list[tuple[float, float]] = []  # (actual, residual)
        self._fed: list[tuple[int, float, float]] = []  # (step, actual, forecast) per value

    def bootstrap(self, history: pd.Series) -> None:
        """Register and promote the starting model (with a registry)."""
        if self.registry is not None:
            v = self.registry.register(self.name, self.live, history, created_by="bootstrap")
            self.registry.promote(self.name, v, actor="bootstrap")
            self.live_version = v

    def issued(self, step: int, live_total: np.ndarray, cand_total: np.ndarray | None = None):
        """Forecasts issued at ``step`` (feeder totals, lead 1 first): keep the value
        ``lead`` steps ahead for checking."""
        if self._last_issue is not None and step <= self._last_issue:
            self._pending.clear()  # the twin looped back to its first step
        self._last_issue = step
        if len(live_total) < self.lead:
            return
        cand = None if cand_total is None else float(cand_total[self.lead - 1])
        self._pending[step + self.lead - 1] = (float(live_total[self.lead - 1]), cand)

    def observe(self, step: int, actual: float, history: pd.Series | None = None) -> list[dict]:
        """The actual feeder total of ``step`` arrived: check it; returns new events
        (``drift``, ``retrain``, ``promoted``, ``rejected``), each with a ``message`` saying
        why."""
        for old in [t for t in self._pending if t < step]:
            del self._pending[old]
        if step not in self._pending:
            return []
        live, cand = self._pending.pop(step)
        before = len(self.events)
        if self.candidate is not None:
            if cand is not None and abs(actual) > 0:
                self._shadow.append(
                    (abs(actual - live) / abs(actual), abs(actual - cand) / abs(actual))
                )
            if len(self._shadow) >= self.shadow_steps:
                self._decide(step)
            return self.events[before:]
        resid = actual - live
        if self.monitor is None:
            self._warm.append((actual, resid))
            if len(self._warm) >= self.warmup:
                a, r = np.array(self._warm).T
                scale = max(float(r.std()), 1e-6 * max(float(np.abs(a).mean()), 1e-9))
                self.monitor = DriftMonitor(
                    self.name,
                    mean=float(r.mean()),
                    scale=scale,
                    level=float(a.mean()),
                    **self.monitor_kwargs,
                )
            return []
        self._fed.append((step, actual, live))
        if self._alert is None:
            alert = self.monitor.update(resid, ts=step)
            if alert is not None:
                self._alert = (alert, len(self._fed))
                self._event("drift", step, alert, "retraining once it has more data")
        elif len(self._fed) - self._alert[1] >= self.retrain_after:
            self._start_candidate(step, history)
        return self.events[before:]

    def _event(self, kind: str, step: int, alert, then: str) -> None:
        """A drift event: the mean actual over the mean forecast since the estimated change
        (:func:`mean_shift_split` over everything fed since the warm-up)."""
        _, a, f = np.array(self._fed).T
        steps, actual, fc = np.array(self._fed[mean_shift_split(a - f) :]).T
        self._ratio = float(actual.mean() / fc.mean()) if fc.mean() > 0 else 1.0
        self._change = int(steps[0])
        self._reason = (
            f"{self.name}: demand {100 * (self._ratio - 1):+.1f} % against the forecast "
            f"{self.lead} steps ahead since step {self._change} ({alert.shift_sigma:+.1f} sigma "
            f"when {alert.detector} fired); {then}"
        )
        self.events.append(
            {
                "kind": kind,
                "step": step,
                "change_step": self._change,
                "shift_pct": 100 * (self._ratio - 1),
                "shift_sigma": alert.shift_sigma,
                "message": self._reason,
            }
        )

    def _start_candidate(self, step: int, history) -> None:
        """Retrain on the level measured over all values since the change (the alert's own
        window is short and selected for a large deviation, so it overstates the shift)."""
        self._event("retrain", step, self._alert[0], "candidate in shadow")
        self.candidate = self.retrain(self.live, self._change, self._ratio, history)
        if self.registry is not None and history is not None:
            self._cand_version = self.registry.register(
                self.name, self.candidate, history, created_by="drift", reason=self._reason
            )
        self._shadow = []

    def _decide(self, step: int) -> None:
        live_ape, cand_ape = np.array(self._shadow).T
        live_mape, cand_mape = 100 * float(live_ape.mean()), 100 * float(cand_ape.mean())
        promote = cand_mape < (1 - self.margin) * live_mape
        detail = {
            "reason": self._reason,
            "shadow_mape_live": live_mape,
            "shadow_mape_candidate": cand_mape,
            "shadow_steps": len(live_ape),
        }
        if self.registry is not None and self._cand_version is not None:
            if promote:
                self.registry.promote(
                    self.name, self._cand_version, actor="shadow-evaluation", detail=detail
                )
                self.live_version = self._cand_version
            else:
                self.registry.reject(
                    self.name, self._cand_version, actor="shadow-evaluation", detail=detail
                )
        verdict = "promoted" if promote else "rejected"
        self.events.append(
            {
                "kind": verdict,
                "step": step,
                "version": self._cand_version,
                **detail,
                "message": f"{self.name}: retrained model {verdict} after {len(live_ape)} steps "
                f"in shadow (MAPE {cand_mape:.2f} % vs live {live_mape:.2f} %, margin "
                f"{100 * self.margin:g} %)",
            }
        )
        if promote:
            self.live = self.candidate
        self.candidate, self._cand_version, self._shadow = None, None, []
        self._restart()
