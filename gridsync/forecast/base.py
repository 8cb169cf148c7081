"""The one forecaster interface (``fit`` then ``predict`` -> quantile frame) and shared helpers.

Series are passed as a ``DataFrame`` (time x series) on a regular ``DatetimeIndex``. A forecast
issued at the last row of the history covers the next ``horizon`` steps (lead 1..horizon).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np
import pandas as pd

DEFAULT_QUANTILES: tuple[float, ...] = (0.1, 0.5, 0.9)


@dataclass
class QuantileForecast:
    """Quantile forecasts ``values[q, lead - 1, series]`` for the steps in ``index``.

    Quantiles are sorted and non-crossing along axis 0 (every model sorts before returning).
    """

    index: pd.DatetimeIndex
    series: list[str]
    quantiles: tuple[float, ...]
    values: np.ndarray

    def q(self, quantile: float) -> np.ndarray:
        """(horizon, n_series) array of one quantile."""
        return self.values[self.quantiles.index(quantile)]

    @property
    def p50(self) -> np.ndarray:
        return self.q(0.5)

    def to_frame(self) -> pd.DataFrame:
        """Long frame: one row per (time, series) with ``lead`` and one column per quantile."""
        h, n = self.values.shape[1:]
        frame = pd.DataFrame(
            {
                "time": np.repeat(self.index, n),
                "lead": np.repeat(np.arange(1, h + 1), n),
                "series": np.tile(np.asarray(self.series, dtype=object), h),
            }
        )
        for k, q in enumerate(self.quantiles):
            frame[f"q{q:g}"] = self.values[k].reshape(-1)
        return frame


def future_index(history: pd.DataFrame, horizon: int) -> pd.DatetimeIndex:
    step = history.index[1] - history.index[0]
    return pd.date_range(history.index[-1] + step, periods=horizon, freq=step)


def steps_per(history: pd.DataFrame, period: str) -> int:
    """Whole steps of the history's resolution in ``period`` ('1D', '7D')."""
    step = history.index[1] - history.index[0]
    n = pd.Timedelta(period) / step
    if abs(n - round(n)) > 1e-9:
        raise ValueError(f"resolution {step} does not divide {period}")
    return int(round(n))


def sort_quantiles(values: np.ndarray) -> np.ndarray:
    """Rearrange along the quantile axis so quantiles never cross (keeps each marginal set)."""
    return np.sort(values, axis=0)


def residual_quantiles(errors: np.ndarray, quantiles: tuple[float, ...]) -> np.ndarray:
    """Empirical quantiles of (origins, horizon, series) errors over origins, NaN-aware."""
    return np.nanquantile(errors, quantiles, axis=0)


def as_frame(y: pd.Series | pd.DataFrame) -> pd.DataFrame:
    frame = y.to_frame() if isinstance(y, pd.Series) else y
    if not isinstance(frame.index, pd.DatetimeIndex) or len(frame.index) < 3:
        raise ValueError("history: expected a DataFrame on a DatetimeIndex with >= 3 rows")
    if frame.isna().to_numpy().any():
        raise ValueError("history: contains NaN; clean it first (gridsync.forecast.data)")
    return frame


class Forecaster(ABC):
    """Fit on a history, then issue quantile forecasts from the end of any later history.

    ``predict(horizon, history)`` uses ``history`` (default: the fitted one) only up to its last
    row, so a rolling backtest can refit rarely and still issue from each new origin.
    """

    name: str = "forecaster"

    def __init__(self, quantiles: tuple[float, ...] = DEFAULT_QUANTILES) -> None:
        if 0.5 not in quantiles:
            raise ValueError(f"quantiles: {quantiles} must include 0.5 (the point forecast)")
        if any(not 0 < q < 1 for q in quantiles):
            raise ValueError(f"quantiles: {quantiles} must lie strictly between 0 and 1")
        self.quantiles = tuple(sorted(quantiles))
        self._history: pd.DataFrame | None = None

    def fit(self, history: pd.Series | pd.DataFrame, exog: pd.DataFrame | None = None):
        self._history = as_frame(history)
        self._fit(self._history, exog)
        return self

    def predict(
        self,
        horizon: int,
        history: pd.Series | pd.DataFrame | None = None,
        exog: pd.DataFrame | None = None,
    ) -> QuantileForecast:
        if self._history is None:
            raise RuntimeError(f"{self.name}: call fit() before predict()")
        hist = self._history if history is None else as_frame(history)
        if horizon < 1:
            raise ValueError(f"horizon: {horizon} must be >= 1 step")
        values = sort_quantiles(self._predict(hist, horizon, exog))
        return QuantileForecast(
            index=future_index(hist, horizon),
            series=[str(c) for c in hist.columns],
            quantiles=self.quantiles,
            values=values,
        )

    @abstractmethod
    def _fit(self, history: pd.DataFrame, exog: pd.DataFrame | None) -> None: ...

    @abstractmethod
    def _predict(
        self, history: pd.DataFrame, horizon: int, exog: pd.DataFrame | None
    ) -> np.ndarray: ...
