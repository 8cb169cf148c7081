"""Forecasting agent: load, net load and PV per node and at the feeder head, with quantiles.

- ``base``: the ``Forecaster`` interface (``fit`` / ``predict`` -> ``QuantileForecast``).
- ``baselines``: seasonal-naive (day, week) and double-seasonal Holt-Winters.
- ``gbm``: the global LightGBM quantile model (the one that beats the baselines).
- ``peers``: statsforecast MSTL + AutoETS for comparison (optional dependency).
- ``backtest``: rolling-origin backtest with per-lead metrics.
- ``data``: validation and documented repair of user CSVs.
- ``pv`` and ``scenario``: PV physics + learned correction, and ``LearnedForecaster``, the
  ``ExogenousForecaster`` the dispatch uses.
"""

from gridsync.forecast.backtest import BacktestResult, run_backtest
from gridsync.forecast.base import DEFAULT_QUANTILES, Forecaster, QuantileForecast
from gridsync.forecast.baselines import HoltWinters, SeasonalNaive
from gridsync.forecast.data import CleanSeries, SeriesError, clean_series, load_series_csv
from gridsync.forecast.gbm import GlobalLightGBM

__all__ = [
    "DEFAULT_QUANTILES",
    "BacktestResult",
    "CleanSeries",
    "Forecaster",
    "GlobalLightGBM",
    "HoltWinters",
    "QuantileForecast",
    "SeasonalNaive",
    "SeriesError",
    "clean_series",
    "load_series_csv",
    "run_backtest",
]
