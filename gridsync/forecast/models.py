"""Named model factories for the backtest CLI and the benchmark."""

from __future__ import annotations

from collections.abc import Callable

from gridsync.forecast.base import Forecaster
from gridsync.forecast.baselines import HoltWinters, SeasonalNaive
from gridsync.forecast.gbm import GlobalLightGBM
from gridsync.forecast.hybrid import HybridForecaster
from gridsync.forecast.peers import MSTLAutoETS, statsforecast_available

MODEL_NAMES = (
    "seasonal_naive_day",
    "seasonal_naive_week",
    "holt_winters",
    "lightgbm",
    "hybrid",
    "mstl_autoets",
)


def model_factories(
    names: tuple[str, ...] | list[str] = MODEL_NAMES,
    *,
    horizon_h: float = 24.0,
    country: str | None = None,
    subdiv: str | None = None,
    train_days: float = 56.0,
) -> dict[str, Callable[[], Forecaster]]:
    """Factories by name; ``mstl_autoets`` is skipped when statsforecast is not installed.

    ``hybrid`` is sized to the ``train_days`` window (ValueError if it is too short)."""
    table: dict[str, Callable[[], Forecaster]] = {
        "seasonal_naive_day": lambda: SeasonalNaive("1D"),
        "seasonal_naive_week": lambda: SeasonalNaive("7D"),
        "holt_winters": HoltWinters,
        "lightgbm": lambda: GlobalLightGBM(max_lead_h=horizon_h, country=country, subdiv=subdiv),
        "hybrid": lambda: HybridForecaster.for_history_days(
            train_days, max_lead_h=horizon_h, country=country, subdiv=subdiv
        ),
        "mstl_autoets": MSTLAutoETS,
    }
    unknown = [n for n in names if n not in table]
    if unknown:
        raise ValueError(f"models: unknown {unknown}; choose from {list(MODEL_NAMES)}")
    if "hybrid" in names:
        HybridForecaster.for_history_days(train_days, max_lead_h=horizon_h)  # fails early
    return {n: table[n] for n in names if n != "mstl_autoets" or statsforecast_available()}
