"""Drift-triggered retraining with shadow evaluation, and its evaluation on a stream.

``run_stream`` replays a demand series as it would arrive: a live forecaster (fitted on the
first ``train_days``) issues a day-ahead forecast every ``issue_every_h`` hours from the data
up to the issue time; each arriving value is scored against the forecast issued about
``monitor_lead_h`` hours before it (default a day: the hybrid re-levels itself within hours,
so short-lead residuals show a level step only briefly) and its standardised residual
``(y - P50) / sigma`` (sigma = that forecast's own P10-P90 half-width / 1.2816) feeds a
:class:`~gridsync.learning.drift.DriftMonitor`. On an alert (or
every ``refit_every_h`` hours, if set) a candidate is trained on the history up to now, in
which the values before the estimated change are rescaled by the ratio of the level
measured since the change to the level the live model forecast (a meter recalibration or a
step in demand then looks as if it had always been there). The candidate runs in shadow for
``shadow_h`` hours next to the live model and is promoted only when its MAPE there beats the
live model's by ``margin`` (relative); monitoring pauses meanwhile and restarts from the
decision. Promotions and rejections go through the
:class:`~gridsync.learning.registry.ModelRegistry` (audited, reversible).

The result lists every alert (when, estimated start, size), every decision, and the
day-ahead MAPE of what was live per issue day, so detection delay, false alarms and the
error before and after a retraining can be read off.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from gridsync.forecast.base import Forecaster
from gridsync.learning.drift import DriftMonitor
from gridsync.learning.registry import ModelRegistry

Z90 = 1.2815515655446004  # standard normal 90 % quantile


@dataclass
class StreamResult:
    """What happened on one replayed stream (times are the series' index values)."""

    alerts: list[dict] = field(default_factory=list)
    decisions: list[dict] = field(default_factory=list)
    daily_mape: pd.Series | None = None  # day-ahead MAPE % per issue day of the live model
    n_days: float = 0.0

    def mape_between(self, start, end) -> float:
        d = self.daily_mape
        sel = d[(d.index >= pd.Timestamp(start).normalize()) & (d.index < pd.Timestamp(end))]
        return float(sel.mean()) if len(sel) else float("nan")


def _rescale_before(y: pd.Series, change: int, ratio: float) -> pd.Series:
    out = y.copy()
    out.iloc[:change] = out.iloc[:change] * ratio
    return out


def run_stream(
    y: pd.Series,
    factory: Callable[[], Forecaster],
    *,
    train_days: float = 56.0,
    issue_every_h: float = 6.0,
    horizon_h: float = 24.0,
    retrain_on_drift: bool = True,
    refit_every_h: float | None = None,
    shadow_h: float = 24.0,
    margin: float = 0.05,
    monitor_lead_h: float = 24.0,
    monitor_kwargs: dict | None = None,
    registry: ModelRegistry | None = None,
    name: str = "load",
) -> StreamResult:
    """Replay ``y`` after its first ``train_days`` (see module doc)."""
    step_h = (y.index[1] - y.index[0]) / pd.Timedelta(hours=1)
    train = int(round(train_days * 24 / step_h))
    issue = max(1, int(round(issue_every_h / step_h)))
    horizon = int(round(horizon_h / step_h))
    lead = min(horizon, max(issue, int(round(monitor_lead_h / step_h))))
    values = y.to_numpy(dtype=float)

    def fit(hist: pd.Series) -> Forecaster:
        return factory().fit(hist)

    live = fit(y.iloc[:train])
    live_v = None
    if registry is not None:
        live_v = registry.register(name, live, y.iloc[:train], created_by="bootstrap")
        registry.promote(name, live_v, actor="bootstrap")
    monitor = DriftMonitor(name, **(monitor_kwargs or {}))
    result = StreamResult(n_days=(len(y) - train) * step_h / 24)
    p50 = np.full(len(y), np.nan)  # newest live forecast per row (leads 1..issue)
    ref = np.full(len(y), np.nan)  # forecast about ``monitor_lead_h`` ahead, and its sigma
    sig = np.full(len(y), np.nan)
    day_rows: dict[pd.Timestamp, list[float]] = {}
    cand = None  # (model, version, start row, ape lists live/cand)
    fed: list[int] = []  # row of each value the monitor saw
    last_fit = train - 1
    for o in range(train - 1, len(y) - 1, issue):
        hist = y.iloc[: o + 1]
        fc = live.predict(horizon, hist)
        q = fc.values[:, :, 0]  # (n_q, H)
        p50[o + 1 : o + 1 + issue] = q[fc.quantiles.index(0.5), :issue][: len(y) - o - 1]
        half = np.maximum((q[-1] - q[0]) / 2 / Z90, 1e-9)
        rows = np.arange(o + 1 + lead - issue, o + 1 + lead)
        keep = rows < len(y)
        ref[rows[keep]] = q[fc.quantiles.index(0.5), lead - issue : lead][keep]
        sig[rows[keep]] = half[lead - issue : lead][keep]
        h = min(horizon, len(y) - o - 1)
        truth = values[o + 1 : o + 1 + h]
        ape = np.abs(truth - q[fc.quantiles.index(0.5), :h]) / np.abs(truth)
        day_rows.setdefault(y.index[o].normalize(), []).append(100 * float(ape.mean()))
        if cand is not None:
            c_fc = cand["model"].predict(horizon, hist).p50[: min(issue, h), 0]
            t_ = values[o + 1 : o + 1 + len(c_fc)]
            cand["live"].extend(np.abs(t_ - p50[o + 1 : o + 1 + len(c_fc)]) / np.abs(t_))
            cand["cand"].extend(np.abs(t_ - c_fc) / np.abs(t_))
        for t in range(o + 1, min(o + 1 + issue, len(y))):
            alert, record = None, None
            if cand is None and np.isfinite(ref[t]):  # paused while a candidate is in shadow
                fed.append(t)
                alert = monitor.update((values[t] - ref[t]) / sig[t], ts=y.index[t])
            if alert is not None:
                c = fed[alert.change_index]
                shift_pct = float(100 * np.mean(values[c : t + 1] / ref[c : t + 1] - 1))
                record = {
                    "ts": y.index[t],
                    "change_ts": y.index[c],
                    "shift_pct": shift_pct,
                    "shift_sigma": alert.shift_sigma,
                    "message": f"{name}: demand {shift_pct:+.1f} % against the forecast "
                    f"{monitor_lead_h:g} h ahead since {y.index[c]} "
                    f"({alert.shift_sigma:+.1f} sigma, {alert.detector})",
                }
                result.alerts.append(record)
            due = refit_every_h is not None and (t - last_fit) * step_h >= refit_every_h
            if cand is None and ((record is not None and retrain_on_drift) or due):
                change = y.index.get_loc(record["change_ts"]) if record is not None else t
                ratio = 1.0 + record["shift_pct"] / 100 if record is not None else 1.0
                hist_t = y.iloc[: t + 1]
                cand = {
                    "model": fit(_rescale_before(hist_t, change, ratio)),
                    "row": t,
                    "live": [],
                    "cand": [],
                    "reason": record["message"] if record is not None else "periodic refit",
                    "ratio": ratio,
                }
                last_fit = t
                if registry is not None:
                    cand["version"] = registry.register(
                        name,
                        cand["model"],
                        hist_t,
                        created_by="drift" if record is not None else "schedule",
                        reason=cand["reason"],
                    )
        if cand is not None and len(cand["live"]) * step_h >= shadow_h:
            live_mape = 100 * float(np.mean(cand["live"]))
            cand_mape = 100 * float(np.mean(cand["cand"]))
            promote = cand_mape < (1 - margin) * live_mape
            decision = {
                "ts": y.index[o],
                "trained_at": y.index[cand["row"]],
                "reason": cand["reason"],
                "level_ratio": cand["ratio"],
                "shadow_mape_live": live_mape,
                "shadow_mape_candidate": cand_mape,
                "promoted": bool(promote),
            }
            if registry is not None:
                detail = {k: v for k, v in decision.items() if k not in ("ts", "trained_at")}
                if promote:
                    registry.promote(
                        name, cand["version"], actor="shadow-evaluation", detail=detail
                    )
                else:
                    registry.reject(name, cand["version"], actor="shadow-evaluation", detail=detail)
            if promote:
                live = cand["model"]
            monitor.rebase()  # a fresh reference either way: the level was judged
            result.decisions.append(decision)
            cand = None
    result.daily_mape = pd.Series({d: float(np.mean(v)) for d, v in day_rows.items()})
    return result
