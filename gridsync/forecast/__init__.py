"""Forecasting agent: load, net load and PV per node and at the feeder head, with quantiles.

- ``base``: the ``Forecaster`` interface (``fit`` / ``predict`` -> ``QuantileForecast``).
- ``baselines``: seasonal-naive (day, week) and double-seasonal Holt-Winters.
- ``gbm``: the global LightGBM quantile model.
- ``hybrid``: per-lead weighted profile-AR + Holt-Winters + profile-residual LightGBM with a
  conformal band (beats the baselines at every lead on the bundled real demand).
- ``peers``: statsforecast MSTL + AutoETS for comparison (optional dependency).
- ``backtest``: rolling-origin backtest with per-lead metrics.
- ``data``: validation and documented repair of user CSVs; ``datasets``: the bundled real
  demand series (Victoria hourly, England & Wales half-hourly).
- ``pv`` and ``scenario``: PV physics + learned correction, and ``LearnedForecaster``, the
  ``ExogenousForecaster`` the dispatch uses.
"""

from gridsync.forecast.backtest import BacktestResult, run_backtest
from gridsync.forecast.base import DEFAULT_QUANTILES, Forecaster, QuantileForecast
from gridsync.forecast.baselines import HoltWinters, SeasonalNaive
from gridsync.forecast.data import CleanSeries, SeriesError, clean_series, load_series_csv
from gridsync.forecast.gbm import GlobalLightGBM
from gridsync.forecast.hybrid import HybridForecaster

__all__ = [
    "DEFAULT_QUANTILES",
    "BacktestResult",
    "CleanSeries",
    "Forecaster",
    "GlobalLightGBM",
    "HoltWinters",
    "HybridForecaster",
    "QuantileForecast",
    "SeasonalNaive",
    "SeriesError",
    "clean_series",
    "load_series_csv",
    "run_backtest",
]
