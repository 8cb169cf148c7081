"""Reference forecasters every learned model must beat: seasonal-naive and Holt-Winters.

Both give quantiles from their own empirical multi-step errors on the training history (the
same lead, the last ``resid_days`` days), so their intervals are honest about their accuracy.
"""

from __future__ import annotations

import itertools

import numba
import numpy as np
import pandas as pd

from gridsync.forecast.base import DEFAULT_QUANTILES, Forecaster, steps_per


def _seasonal_source(n_hist: int, horizon: int, season: int) -> np.ndarray:
    """Row of the history each lead copies: the most recent step one or more seasons back."""
    lead = np.arange(1, horizon + 1)
    return n_hist - 1 + lead - season * np.ceil(lead / season).astype(int)


class SeasonalNaive(Forecaster):
    """Repeat the last ``period`` ('1D' day or '7D' week); quantiles from past lag errors."""

    def __init__(
        self,
        period: str = "1D",
        quantiles: tuple[float, ...] = DEFAULT_QUANTILES,
        resid_days: float = 28.0,
    ) -> None:
        super().__init__(quantiles)
        self.period = period
        self.resid_days = resid_days
        self.name = {"1D": "seasonal_naive_day", "7D": "seasonal_naive_week"}.get(
            period, f"seasonal_naive_{period}"
        )
        self._err_q: dict[int, np.ndarray] = {}

    def _fit(self, history: pd.DataFrame, exog: pd.DataFrame | None) -> None:
        self._season = steps_per(history, self.period)
        if len(history) <= self._season:
            raise ValueError(
                f"{self.name}: history of {len(history)} steps is shorter than one season "
                f"({self._season} steps)"
            )
        self._err_q = {}

    def _error_quantiles(self, multiple: int) -> np.ndarray:
        if multiple not in self._err_q:
            y = self._history.to_numpy(dtype=float)
            lag = self._season * multiple
            keep = int(self.resid_days * steps_per(self._history, "1D"))
            err = (y[lag:] - y[:-lag])[-keep:]
            if len(err) == 0:
                err = np.zeros((1, y.shape[1]))
            self._err_q[multiple] = np.quantile(err, self.quantiles, axis=0)  # (n_q, n_series)
        return self._err_q[multiple]

    def _predict(self, history, horizon, exog) -> np.ndarray:
        y = history.to_numpy(dtype=float)
        if len(y) < self._season:
            raise ValueError(f"{self.name}: history shorter than one season")
        src = _seasonal_source(len(y), horizon, self._season)
        point = y[src]  # (H, n)
        multiples = np.ceil(np.arange(1, horizon + 1) / self._season).astype(int)
        err = np.stack([self._error_quantiles(int(m)) for m in multiples], axis=1)  # (n_q, H, n)
        med = err[self.quantiles.index(0.5)]
        return point[None] + err - med[None]


@numba.njit(cache=True)
def _hw_filter(y, s1, s2, alpha, delta, omega, level0, day0, week0):
    """Additive double-seasonal exponential smoothing (Taylor 2003) over one series.

    Returns level[t], day[t] and week[t] (the seasonal values updated at t), the one-step
    errors err[t] and their sum of squares over the fitted part.
    """
    n = len(y)
    level = np.empty(n)
    day = np.empty(n)
    week = np.empty(n)
    err = np.zeros(n)
    day[:s2] = day0
    week[:s2] = week0
    level[:s2] = level0
    sse = 0.0
    for t in range(s2, n):
        fc = level[t - 1] + day[t - s1] + week[t - s2]
        e = y[t] - fc
        err[t] = e
        sse += e * e
        level[t] = level[t - 1] + alpha * e
        day[t] = day[t - s1] + delta * e
        week[t] = week[t - s2] + omega * e
    return level, day, week, err, sse


def _hw_init(y: np.ndarray, s1: int, s2: int):
    """Level, daily and weekly indices from the first week (weekly index net of the daily)."""
    first = y[:s2]
    level0 = first.mean()
    dev = first - level0
    daily = dev.reshape(-1, s1).mean(axis=0)
    day0 = np.tile(daily, s2 // s1)
    week0 = dev - day0
    return level0, day0, week0


class HoltWinters(Forecaster):
    """Double-seasonal (day + week) additive Holt-Winters with an AR(1) error correction.

    Smoothing constants come from a grid search on the error of the forecasts the model is
    used for: issued every ``SCORE_EVERY_H`` hours over the history after its first week, at
    every lead up to ``horizon_h`` (mean squared error). Constants chosen on the one-step
    error track noise (alpha at the grid's top) and drift at 24 h. The AR(1) coefficient of
    the one-step errors decays the latest error into the forecast. Needs at least two weeks
    of history (one to initialise, one to learn).
    """

    name = "holt_winters"
    GRID = (0.001, 0.005, 0.02, 0.08, 0.25)
    SCORE_EVERY_H = 3.0

    def __init__(
        self,
        quantiles: tuple[float, ...] = DEFAULT_QUANTILES,
        resid_days: float = 21.0,
        horizon_h: float = 24.0,
    ) -> None:
        super().__init__(quantiles)
        if horizon_h <= 0:
            raise ValueError(f"horizon_h: {horizon_h} must be > 0")
        self.resid_days = resid_days
        self.horizon_h = horizon_h

    def _horizon_error(self, col, s1, s2, params, init, horizon, origins) -> float:
        """Mean squared error of the forecasts from ``origins`` at leads 1..``horizon``."""
        level, day, week, err, _ = _hw_filter(col, s1, s2, *params, *init)
        e = err[s2 + 1 :]
        phi = float(np.clip(np.corrcoef(e[1:], e[:-1])[0, 1], 0.0, 0.99)) if e.std() > 0 else 0
        fc = self._forecast_from_states((level, day, week, err), phi, origins, horizon)
        truth = col[origins[:, None] + np.arange(1, horizon + 1)]
        return float(np.mean((truth - fc) ** 2)), phi

    def _fit(self, history: pd.DataFrame, exog: pd.DataFrame | None) -> None:
        s1, s2 = steps_per(history, "1D"), steps_per(history, "7D")
        y = history.to_numpy(dtype=float)
        if len(y) < 2 * s2:
            raise ValueError(
                f"{self.name}: needs >= 14 days of history ({2 * s2} steps), got {len(y)}"
            )
        self._s = (s1, s2)
        dt_h = 24.0 / s1
        horizon = min(max(1, int(round(self.horizon_h / dt_h))), len(y) - s2 - 2)
        every = max(1, int(round(self.SCORE_EVERY_H / dt_h)))
        origins = np.arange(s2 + 1, len(y) - horizon, every)
        self._params = []
        for j in range(y.shape[1]):
            col = y[:, j]
            init = _hw_init(col, s1, s2)
            scored = [
                (self._horizon_error(col, s1, s2, p, init, horizon, origins), p)
                for p in itertools.product(self.GRID, repeat=3)
            ]
            (_, phi), best = min(scored, key=lambda item: item[0][0])
            self._params.append((best, phi))
        self._resid_q = None  # computed on the first predict (combinations never need it)

    def _forecast_from_states(self, states, phi, origins, horizon):
        level, day, week, err = states
        s1, s2 = self._s
        lead = np.arange(1, horizon + 1)
        o = origins[:, None]
        d_src = o + lead - s1 * np.ceil(lead / s1).astype(int)
        w_src = o + lead - s2 * np.ceil(lead / s2).astype(int)
        return level[o] + day[d_src] + week[w_src] + phi**lead * err[o]

    def forecast_origins(self, y: np.ndarray, origins: np.ndarray, horizon: int) -> np.ndarray:
        """(origins, horizon, n) point forecasts issued at each row in ``origins`` of the
        (T, n) history ``y`` (states filtered with the fitted constants; causal)."""
        return np.stack(
            [
                self._forecast_from_states(
                    self._states(y[:, j], j), self._params[j][1], origins, horizon
                )
                for j in range(y.shape[1])
            ],
            axis=-1,
        )

    def _states(self, col: np.ndarray, j: int):
        s1, s2 = self._s
        (alpha, delta, omega), _ = self._params[j]
        level, day, week, err, _ = _hw_filter(
            col, s1, s2, alpha, delta, omega, *_hw_init(col, s1, s2)
        )
        return level, day, week, err

    def _in_sample_error_quantiles(self, y: np.ndarray) -> np.ndarray:
        """(n_q, s1, n) quantiles of multi-step errors from every origin of the last days."""
        s1, s2 = self._s
        horizon = s1
        n = len(y)
        first = max(s2, n - horizon - int(self.resid_days * s1))
        origins = np.arange(first, n - horizon)
        out = np.zeros((len(self.quantiles), horizon, y.shape[1]))
        for j in range(y.shape[1]):
            fc = self._forecast_from_states(
                self._states(y[:, j], j), self._params[j][1], origins, horizon
            )
            truth = y[origins[:, None] + np.arange(1, horizon + 1), j]
            out[:, :, j] = np.quantile(truth - fc, self.quantiles, axis=0)
        return out

    def _predict(self, history, horizon, exog) -> np.ndarray:
        y = history.to_numpy(dtype=float)
        s1, s2 = self._s
        if len(y) < 2 * s2:
            raise ValueError(f"{self.name}: history shorter than two weeks")
        point = np.empty((horizon, y.shape[1]))
        for j in range(y.shape[1]):
            origin = np.array([len(y) - 1])
            point[:, j] = self._forecast_from_states(
                self._states(y[:, j], j), self._params[j][1], origin, horizon
            )[0]
        if self._resid_q is None:
            self._resid_q = self._in_sample_error_quantiles(self._history.to_numpy(dtype=float))
        lead_bucket = np.minimum(np.arange(horizon), s1 - 1)
        err = self._resid_q[:, lead_bucket, :]
        med = err[self.quantiles.index(0.5)]
        return point[None] + err - med[None]
