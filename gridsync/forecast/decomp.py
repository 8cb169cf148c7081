"""A fast MSTL-like decomposition forecast, vectorised over series (a hybrid component).

From the last ``K`` whole weeks before an origin (up to ``max_weeks``): the weekly pattern is,
per day of week and time of day, the mean deviation of the days from the centred 7-day moving
average (a classical additive decomposition: a trend cancels; like MSTL's wide weekly window); the daily shape is the tricube-weighted mean of the
last ``days`` de-weeked days, each minus its own mean (like STL's cycle-subseries loess at the
series end); the level is an exponentially weighted mean of the de-seasonalised last two days
(a simple-exponential-smoothing trend). The forecast is weekly pattern + daily shape + level.
Every value reads rows up to the origin only. The hybrid stacks the forecasts of several level
half-lives (``HALF_LIVES_H``) instead of choosing one.
"""

from __future__ import annotations

import numpy as np

HALF_LIVES_H = (0.25, 1.0, 3.0, 6.0, 12.0)


def tricube_day_weights(days: int) -> np.ndarray:
    d = np.arange(1, days + 1)
    a = (1 - (d / (days + 1)) ** 3) ** 3
    return a / a.sum()


def decomposition_forecast(
    y: np.ndarray,
    origin: int,
    horizon: int,
    s_day: int,
    half_lives_h: tuple[float, ...] = HALF_LIVES_H,
    days: int = 11,
    max_weeks: int = 8,
) -> np.ndarray:
    """(half-lives, horizon, n) forecasts from ``y[: origin + 1]`` (y is (T, n)), one per level
    half-life; horizon <= one day."""
    s_week = 7 * s_day
    k = min(max_weeks, (origin + 1) // s_week)
    if k < 2 or horizon > s_day:
        raise ValueError(
            f"decomposition: needs >= 2 weeks before the origin (got {origin + 1} steps) and "
            f"horizon <= {s_day} steps (got {horizon})"
        )
    # weeks and days aligned to the origin's phase: position p is origin + 1 + p mod week
    days_ = y[origin + 1 - k * s_week : origin + 1].reshape(k * 7, s_day, -1)
    csum = np.concatenate([np.zeros((1,) + days_.shape[1:]), np.cumsum(days_, axis=0)])
    centred = (csum[7:] - csum[:-7]) / 7  # 7-day mean centred on days 3 .. 7k - 4
    dev = days_[3:-3] - centred
    dow = np.arange(3, 7 * k - 3) % 7
    weekly = np.stack([dev[dow == d].mean(axis=0) for d in range(7)])  # (7, s_day, n)
    weekly -= weekly.mean(axis=0)
    z = days_ - weekly[np.arange(7 * k) % 7]
    recent = z[::-1][: min(days, len(z))]
    a = tricube_day_weights(len(recent))
    shape = np.einsum("d,dsn->sn", a, recent - recent.mean(axis=1, keepdims=True))
    level_rows = (z[-2:] - shape[None]).reshape(2 * s_day, -1)
    age_h = np.arange(len(level_rows))[::-1] * 24 / s_day
    lw = 0.5 ** (age_h[None, :] / np.asarray(half_lives_h)[:, None])
    level = (lw / lw.sum(axis=1, keepdims=True)) @ level_rows  # (half-lives, n)
    lead = np.arange(horizon)  # targets fall on day 0 of the origin-phased week
    return (weekly[0, lead] + shape[lead])[None] + level[:, None, :]


def decomposition_forecasts(
    y: np.ndarray,
    origins: np.ndarray,
    horizon: int,
    s_day: int,
    half_lives_h: tuple[float, ...] = HALF_LIVES_H,
) -> np.ndarray:
    """(half-lives, origins, horizon, n) forecasts, each from rows up to its origin."""
    return np.stack(
        [decomposition_forecast(y, o, horizon, s_day, half_lives_h) for o in origins], axis=1
    )
