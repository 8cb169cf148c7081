"""Rolling-origin backtest: issue forecasts every N hours, score them per lead time.

At each origin a model sees only ``y[:origin + 1]`` (a copy sliced before the call, so no model
can read later rows), is refitted every ``refit_every_h`` hours on the trailing
``train_days`` window and otherwise only re-issued from the new origin. Scores per lead:
MAPE, MAE, RMSE, pinball loss (mean over quantiles) and P10-P90 interval coverage.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from gridsync.forecast.base import Forecaster, QuantileForecast


@dataclass
class BacktestResult:
    """Forecasts ``pred[model]`` (origins, n_q, H, n) against ``truth`` (origins, H, n)."""

    origins: pd.DatetimeIndex
    dt_h: float
    quantiles: tuple[float, ...]
    truth: np.ndarray
    pred: dict[str, np.ndarray]
    fit_s: dict[str, float] = field(default_factory=dict)
    predict_s: dict[str, float] = field(default_factory=dict)

    def metrics(self, model: str) -> pd.DataFrame:
        """Per-lead metrics (index: lead in steps) for one model, pooled over origins/series."""
        return lead_metrics(self.truth, self.pred[model], self.quantiles)

    def by_lead_hour(self, model: str) -> pd.DataFrame:
        """Metrics averaged over the steps of each whole lead hour (1 = first hour)."""
        per_lead = self.metrics(model)
        hour = np.ceil(np.arange(1, len(per_lead) + 1) * self.dt_h - 1e-9).astype(int)
        return per_lead.groupby(hour).mean().rename_axis("lead_h")

    def summary(self, model: str) -> dict[str, float]:
        m = self.metrics(model)
        return {
            "mape_mean": float(m["mape"].mean()),
            "mae_mean": float(m["mae"].mean()),
            "rmse_mean": float(np.sqrt((m["rmse"] ** 2).mean())),
            "pinball_mean": float(m["pinball"].mean()),
            "coverage_p10_p90": float(m["coverage_p10_p90"].mean()),
        }

    def to_json(self) -> dict:
        """``{"models": {name: {"mape_by_lead_h": {"1": x, ...}, ...summary}}}``."""
        out = {}
        for name in self.pred:
            by_h = self.by_lead_hour(name)
            out[name] = {
                "mape_by_lead_h": {str(h): float(v) for h, v in by_h["mape"].items()},
                "mae_by_lead_h": {str(h): float(v) for h, v in by_h["mae"].items()},
                "coverage_by_lead_h": {
                    str(h): float(v) for h, v in by_h["coverage_p10_p90"].items()
                },
                **self.summary(name),
                "fit_s_total": self.fit_s.get(name, 0.0),
                "predict_s_total": self.predict_s.get(name, 0.0),
            }
        return {"n_origins": len(self.origins), "models": out}


def pinball(truth: np.ndarray, pred_q: np.ndarray, quantiles: tuple[float, ...]) -> np.ndarray:
    """Mean pinball loss over quantiles, same shape as ``truth``; ``pred_q`` has quantiles first."""
    q = np.asarray(quantiles).reshape((-1,) + (1,) * truth.ndim)
    diff = truth[None] - pred_q
    return np.maximum(q * diff, (q - 1) * diff).mean(axis=0)


def lead_metrics(truth: np.ndarray, pred: np.ndarray, quantiles: tuple[float, ...]):
    """Per-lead metrics from truth (origins, H, n) and pred (origins, n_q, H, n).

    MAPE skips |truth| below 1e-6 of the series' mean level (zeros make it undefined).
    Coverage is the share of truths inside [lowest quantile, highest quantile].
    """
    p50 = pred[:, quantiles.index(0.5)]
    err = truth - p50
    level = np.abs(truth).mean(axis=(0, 1), keepdims=True)
    valid = np.abs(truth) > 1e-6 * np.maximum(level, 1e-12)
    ape = np.where(valid, np.abs(err) / np.where(valid, np.abs(truth), 1.0), np.nan)
    lo, hi = pred[:, 0], pred[:, -1]
    inside = (truth >= lo) & (truth <= hi)
    pin = pinball(truth, np.moveaxis(pred, 1, 0), quantiles)
    axes = (0, 2)
    return pd.DataFrame(
        {
            "mape": 100 * np.nanmean(ape, axis=axes),
            "mae": np.abs(err).mean(axis=axes),
            "rmse": np.sqrt((err**2).mean(axis=axes)),
            "pinball": pin.mean(axis=axes),
            "coverage_p10_p90": 100 * inside.mean(axis=axes),
        },
        index=pd.RangeIndex(1, truth.shape[1] + 1, name="lead"),
    )


def origins_for(
    index: pd.DatetimeIndex, train_steps: int, horizon: int, issue_every: int, max_origins: int
) -> np.ndarray:
    """Origin rows: the first after ``train_steps`` rows, then every ``issue_every``, last ones."""
    first, last = train_steps - 1, len(index) - 1 - horizon
    if last < first:
        raise ValueError(
            f"series of {len(index)} steps is too short for {train_steps} training steps plus "
            f"a {horizon}-step horizon"
        )
    rows = np.arange(first, last + 1, issue_every)
    return rows[-max_origins:] if max_origins else rows


def run_backtest(
    y: pd.Series | pd.DataFrame,
    models: dict[str, Callable[[], Forecaster]],
    *,
    horizon_h: float = 24.0,
    train_days: float = 28.0,
    issue_every_h: float = 24.0,
    refit_every_h: float = 24.0,
    max_origins: int = 0,
    exog: pd.DataFrame | None = None,
    progress: Callable[[Iterator], Iterator] | None = None,
) -> BacktestResult:
    """Rolling-origin backtest of every model factory in ``models`` (see module doc).

    ``exog`` (optional) must cover the whole series; at each origin models get only rows up to
    the end of the horizon, as a stand-in for a weather forecast issued at the origin.
    """
    import time

    frame = y.to_frame() if isinstance(y, pd.Series) else y
    step = frame.index[1] - frame.index[0]
    dt_h = step / pd.Timedelta(hours=1)
    horizon = int(round(horizon_h / dt_h))
    train = int(round(train_days * 24 / dt_h))
    issue = max(1, int(round(issue_every_h / dt_h)))
    refit = max(1, int(round(refit_every_h / dt_h)))
    rows = origins_for(frame.index, train, horizon, issue, max_origins)
    values = frame.to_numpy(dtype=float)
    truth = np.stack([values[o + 1 : o + 1 + horizon] for o in rows])
    pred: dict[str, np.ndarray] = {}
    fit_s: dict[str, float] = {}
    predict_s: dict[str, float] = {}
    quantiles: tuple[float, ...] | None = None
    for name, factory in models.items():
        out = []
        fit_s[name] = predict_s[name] = 0.0
        model, fitted_at = None, None
        iterator = progress(iter(rows)) if progress else rows
        for o in iterator:
            history = frame.iloc[o + 1 - train : o + 1].copy()
            ex = None if exog is None else exog.iloc[o + 1 - train : o + 1 + horizon].copy()
            if model is None or o - fitted_at >= refit:
                t0 = time.perf_counter()
                model = factory().fit(history, ex)
                fit_s[name] += time.perf_counter() - t0
                fitted_at = o
            t0 = time.perf_counter()
            fc: QuantileForecast = model.predict(horizon, history, ex)
            predict_s[name] += time.perf_counter() - t0
            out.append(fc.values)
        pred[name] = np.stack(out)
        if quantiles is None:
            quantiles = model.quantiles
        elif model.quantiles != quantiles:
            raise ValueError(f"{name}: quantiles {model.quantiles} differ from {quantiles}")
    return BacktestResult(
        origins=frame.index[rows],
        dt_h=dt_h,
        quantiles=quantiles or (),
        truth=truth,
        pred=pred,
        fit_s=fit_s,
        predict_s=predict_s,
    )
