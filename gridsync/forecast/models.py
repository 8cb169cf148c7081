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
    require_peers: bool = False,
) -> dict[str, Callable[[], Forecaster]]:
    """Factories by name; ``mstl_autoets`` is skipped when statsforecast is not installed,
    or, with ``require_peers`` (the user asked for it by name), an ImportError names the
    missing package.

    ``hybrid`` is sized to the ``train_days`` window (ValueError if it is too short)."""
    table: dict[str, Callable[[], Forecaster]] = {
        "seasonal_naive_day": lambda: SeasonalNaive("1D"),
        "seasonal_naive_week": lambda: SeasonalNaive("7D"),
        "holt_winters": lambda: HoltWinters(horizon_h=horizon_h),
        "lightgbm": lambda: GlobalLightGBM(max_lead_h=horizon_h, country=country, subdiv=subdiv),
        "hybrid": lambda: HybridForecaster.for_history_days(
            train_days, max_lead_h=horizon_h, country=country, subdiv=subdiv
        ),
        "mstl_autoets": MSTLAutoETS,
    }
    unknown = [n for n in names if n not in table]
    if unknown:
        raise ValueError(f"models: unknown {unknown}; choose from {list(MODEL_NAMES)}")
    if require_peers and "mstl_autoets" in names and not statsforecast_available():
        raise ImportError(
            "model mstl_autoets needs the 'statsforecast' package, which is not installed: "
            "pip install 'statsforecast>=2.0' (or 'gridsync[dev]'), or drop --model mstl_autoets"
        )
    if "hybrid" in names:
        HybridForecaster.for_history_days(train_days, max_lead_h=horizon_h)  # fails early
    factories = {n: table[n] for n in names if n != "mstl_autoets" or statsforecast_available()}
    if not factories:
        raise ValueError(f"models: none of {list(names)} can run here")
    return factories
