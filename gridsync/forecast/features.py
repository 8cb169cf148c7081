"""Feature rows for direct multi-horizon forecasting: one row per (series, origin, lead).

Every feature is computed from rows ``<= origin`` of the history (lags, recent means) or from
the target time's calendar and supplied exogenous forecasts, never from the target itself:
``build_features`` takes the origin row index explicitly and only indexes backwards from it.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import pandas as pd

FEATURES = (
    "lead_h",
    "hour",
    "dow",
    "holiday",
    "lag_day",
    "lag_week",
    "last",
    "last_vs_lag_day",
    "mean_day",
    "mean_day_vs_week",
    "max_day",
    "min_day",
    "slope",
    "shape_day",
    "shape_week",
    "last_vs_lag_week",
)


@lru_cache(maxsize=16)
def _holiday_set(country: str | None, subdiv: str | None, years: tuple[int, ...]):
    if not country:
        return frozenset()
    import holidays

    try:
        cal = holidays.country_holidays(country, subdiv=subdiv, years=list(years))
    except (NotImplementedError, KeyError) as err:
        raise ValueError(
            f"holidays: unknown country/subdivision {country!r}/{subdiv!r} ({err})"
        ) from None
    return frozenset(np.datetime64(d, "D") for d in cal)


def calendar(
    times: pd.DatetimeIndex, country: str | None = None, subdiv: str | None = None
) -> dict[str, np.ndarray]:
    """Hour of day (fractional), day of week (0 = Monday) and public-holiday flag of ``times``."""
    years = tuple(sorted(set(times.year.tolist())))
    hol = _holiday_set(country, subdiv, years)
    days = times.normalize().tz_localize(None).to_numpy().astype("datetime64[D]")
    flag = (
        np.isin(days, np.array(sorted(hol), dtype="datetime64[D]"))
        if hol
        else np.zeros(len(times), dtype=bool)
    )
    return {
        "hour": (times.hour + times.minute / 60).to_numpy(dtype=float),
        "dow": times.dayofweek.to_numpy(dtype=float),
        "holiday": flag.astype(float),
    }


def window_stats(y: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Trailing mean, max and min over ``window`` rows ending at each row (NaN before)."""
    t = len(y)
    csum = np.vstack([np.zeros((1, y.shape[1])), np.cumsum(y, axis=0)])
    mean = np.full_like(y, np.nan, dtype=float)
    mean[window - 1 :] = (csum[window:] - csum[:-window]) / window
    view = np.lib.stride_tricks.sliding_window_view(y, window, axis=0)  # (t-w+1, n, w)
    mx = np.full_like(y, np.nan, dtype=float)
    mn = np.full_like(y, np.nan, dtype=float)
    if t >= window:
        mx[window - 1 :] = view.max(axis=-1)
        mn[window - 1 :] = view.min(axis=-1)
    return mean, mx, mn


def build_features(
    y_scaled: np.ndarray,
    stats: tuple[np.ndarray, np.ndarray, np.ndarray],
    cal: dict[str, np.ndarray],
    s_day: int,
    s_week: int,
    series: np.ndarray,
    origin: np.ndarray,
    lead: np.ndarray,
    dt_h: float,
    exog: dict[str, np.ndarray] | None = None,
) -> np.ndarray:
    """Feature matrix (rows, n_features) for rows (series[i], origin[i], lead[i]).

    ``y_scaled`` is the (T, n) history divided by each series' scale; ``cal`` and ``exog``
    are indexed by absolute row (origin + lead may run past the history for calendar/exog).
    ``origin`` must be >= s_week + s_day - 1 so every lag exists.
    """
    mean_day, max_day, min_day = stats
    target = origin + lead
    lag_day = y_scaled[target - s_day * np.ceil(lead / s_day).astype(int), series]
    lag_week = y_scaled[target - s_week * np.ceil(lead / s_week).astype(int), series]
    last = y_scaled[origin, series]
    md = mean_day[origin, series]
    cols = [
        lead * dt_h,
        cal["hour"][target],
        cal["dow"][target],
        cal["holiday"][target],
        lag_day,
        lag_week,
        last,
        last - y_scaled[origin - s_day, series],
        md,
        md - mean_day[origin - s_week, series],
        max_day[origin, series],
        min_day[origin, series],
        last - y_scaled[origin - 1, series],
        lag_day - y_scaled[origin - s_day, series],
        lag_week - y_scaled[origin - s_week, series],
        last - y_scaled[origin - s_week, series],
    ]
    for values in (exog or {}).values():
        # exogenous values (temperature, irradiance) at the target time and at the origin
        cols.append(values[target])
        cols.append(values[target] - values[origin])
    return np.column_stack(cols).astype(np.float32)


def exog_names(exog: dict[str, np.ndarray] | None) -> list[str]:
    names: list[str] = []
    for k in exog or {}:
        names += [k, f"{k}_change"]
    return names


HEAT_BASE_C, COOL_BASE_C = 15.5, 22.0


def degree_days(name: str, temp_c: np.ndarray, step_h: float) -> dict[str, np.ndarray]:
    """Heating and cooling degrees from a temperature series (degC, one value per step):
    ``{name}_hdd24`` = max(15.5 - T24, 0) with T24 the exponentially weighted mean of the
    temperature with a 24 h half-life (buildings' thermal inertia: a cold night is felt the
    next day), and ``{name}_cdd6`` = max(T6 - 22, 0) with a 6 h half-life (cooling follows the
    afternoon heat). Each value reads temperatures up to its own time only."""
    t = pd.Series(np.asarray(temp_c, dtype=float))
    t24 = t.ewm(halflife=24.0 / step_h).mean().to_numpy()
    t6 = t.ewm(halflife=6.0 / step_h).mean().to_numpy()
    return {
        f"{name}_hdd24": np.maximum(HEAT_BASE_C - t24, 0.0),
        f"{name}_cdd6": np.maximum(t6 - COOL_BASE_C, 0.0),
    }
