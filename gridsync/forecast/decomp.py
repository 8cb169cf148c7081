"""A fast MSTL-like decomposition forecast, vectorised over series (a hybrid component).

From the last ``K`` whole weeks before an origin (up to ``max_weeks``): the weekly pattern is
the mean over those weeks of each day's deviation from its week's mean at the same time of day
(like MSTL's wide weekly seasonal window); the daily shape is the tricube-weighted mean of the
last ``days`` de-weeked days, each minus its own mean (like STL's cycle-subseries loess at the
series end); the level is an exponentially weighted mean of the de-seasonalised last two days
(a simple-exponential-smoothing trend). The forecast is weekly pattern + daily shape + level.
Every value reads rows up to the origin only. The level half-life is chosen per fit by the mean
absolute error of forecasts issued inside the history (``fit``).
"""

from __future__ import annotations

import numpy as np

HALF_LIVES_H = (1.0, 3.0, 6.0, 12.0)


def tricube_day_weights(days: int) -> np.ndarray:
    d = np.arange(1, days + 1)
    a = (1 - (d / (days + 1)) ** 3) ** 3
    return a / a.sum()


def decomposition_forecast(
    y: np.ndarray,
    origin: int,
    horizon: int,
    s_day: int,
    half_life_h: float,
    days: int = 11,
    max_weeks: int = 8,
) -> np.ndarray:
    """(horizon, n) forecast from ``y[: origin + 1]`` (y is (T, n)); horizon <= one day."""
    s_week = 7 * s_day
    k = min(max_weeks, (origin + 1) // s_week)
    if k < 2 or horizon > s_day:
        raise ValueError(
            f"decomposition: needs >= 2 weeks before the origin (got {origin + 1} steps) and "
            f"horizon <= {s_day} steps (got {horizon})"
        )
    # weeks and days aligned to the origin's phase: position p is origin + 1 + p mod week
    weeks = y[origin + 1 - k * s_week : origin + 1].reshape(k, 7, s_day, -1)
    weekly = (weeks - weeks.mean(axis=1, keepdims=True)).mean(axis=0)  # (7, s_day, n)
    z = (weeks - weekly[None]).reshape(k * 7, s_day, -1)
    recent = z[::-1][: min(days, len(z))]
    a = tricube_day_weights(len(recent))
    shape = np.einsum("d,dsn->sn", a, recent - recent.mean(axis=1, keepdims=True))
    level_rows = (z[-2:] - shape[None]).reshape(2 * s_day, -1)
    per_hour = max(1.0, s_day / 24)
    decay = 0.5 ** (1 / (half_life_h * per_hour))
    lw = decay ** np.arange(len(level_rows))[::-1]
    level = (lw / lw.sum()) @ level_rows
    lead = np.arange(horizon)  # targets fall on day 0 of the origin-phased week
    return weekly[0, lead] + shape[lead] + level


class Decomposition:
    """``decomposition_forecast`` with the level half-life chosen on in-history origins."""

    def __init__(self, days: int = 11, max_weeks: int = 8, origins_per_day: int = 4) -> None:
        self.days, self.max_weeks, self.origins_per_day = days, max_weeks, origins_per_day
        self.half_life_h = HALF_LIVES_H[0]

    def forecast(self, y: np.ndarray, origins: np.ndarray, horizon: int) -> np.ndarray:
        """(origins, horizon, n) forecasts, each from rows up to its origin."""
        return np.stack(
            [
                decomposition_forecast(
                    y, o, horizon, self.s_day, self.half_life_h, self.days, self.max_weeks
                )
                for o in origins
            ]
        )

    def fit(self, y: np.ndarray, horizon: int, s_day: int, valid_days: float = 7.0):
        self.s_day = s_day
        first = max(len(y) - int(valid_days * s_day), 2 * 7 * s_day) - 1
        origins = np.arange(first, len(y) - horizon, max(1, s_day // self.origins_per_day))
        if len(origins) == 0:
            return self
        scale = np.maximum(np.abs(y).mean(axis=0), 1e-9)
        truth = y[origins[:, None] + np.arange(1, horizon + 1)] / scale
        loss = []
        for hl in HALF_LIVES_H:
            self.half_life_h = hl
            loss.append(np.abs(self.forecast(y, origins, horizon) / scale - truth).mean())
        self.half_life_h = HALF_LIVES_H[int(np.argmin(loss))]
        return self
