"""Peer model for comparison: statsforecast's MSTL with an AutoETS trend (optional dependency).

This is what a forecasting practitioner reaches for on multi-seasonal load, so the benchmark
and the CLI backtest include it when ``statsforecast`` is installed (a dev dependency).
MSTL has no cheap way to re-issue from a new origin, so it refits on every ``predict``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from gridsync.forecast.base import DEFAULT_QUANTILES, Forecaster, steps_per


def statsforecast_available() -> bool:
    try:
        import statsforecast  # noqa: F401
    except ImportError:
        return False
    return True


class MSTLAutoETS(Forecaster):
    """statsforecast ``MSTL(season_length=[day, week], trend_forecaster=AutoETS("ZZN"))``."""

    name = "mstl_autoets"

    def __init__(self, quantiles: tuple[float, ...] = DEFAULT_QUANTILES) -> None:
        super().__init__(quantiles)
        if not statsforecast_available():
            raise ImportError("statsforecast is not installed: pip install 'gridsync[dev]'")

    def _fit(self, history: pd.DataFrame, exog: pd.DataFrame | None) -> None:
        self._seasons = [steps_per(history, "1D"), steps_per(history, "7D")]
        if len(history) < 2 * self._seasons[1]:
            raise ValueError(f"{self.name}: needs >= 14 days of history")

    def _predict(self, history, horizon, exog) -> np.ndarray:
        from statsforecast.models import MSTL, AutoETS

        levels = sorted({round(100 * (1 - 2 * min(q, 1 - q))) for q in self.quantiles if q != 0.5})
        y = history.to_numpy(dtype=float)
        out = np.empty((len(self.quantiles), horizon, y.shape[1]))
        for j in range(y.shape[1]):
            model = MSTL(season_length=self._seasons, trend_forecaster=AutoETS(model="ZZN"))
            fc = model.forecast(y=y[:, j], h=horizon, level=levels)
            for k, q in enumerate(self.quantiles):
                if q == 0.5:
                    out[k, :, j] = fc["mean"]
                else:
                    level = round(100 * (1 - 2 * min(q, 1 - q)))
                    out[k, :, j] = fc[f"lo-{level}"] if q < 0.5 else fc[f"hi-{level}"]
        return out
