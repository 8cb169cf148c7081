"""Cold-start forecaster chain for any hourly series: last value -> previous day -> learned.

Works on plain numpy arrays of shape (series, hours observed so far), no DatetimeIndex,
from the very first observation:

- fewer than ``season`` hours of history: every lead repeats the last value;
- fewer than ``min_learn_hours``: seasonal naive, the value one ``season`` earlier;
- afterwards, per series and per lead ``k``: the target hour's profile (mean of the same
  hour over the previous 7 days) plus a ridge regression, refitted every ``refit_every``
  hours on the last ``window`` hours, of the deviation from the profile on the deviations
  now, a day and a week before the target, and optional exogenous columns known for the
  target hour. Forecasting deviations from an hourly profile, not levels, keeps the forecast
  unbiased hour by hour (a level regression shrinks every hour towards the daily mean:
  nights too high, evening peaks too low).

``stage(n)`` says which link a history of ``n`` hours uses, so callers can report it.
All fitting is batched over series with ``einsum`` and one ``np.linalg.solve``.
"""

from __future__ import annotations

import numpy as np

_WEEK = 168


class ColdStartForecaster:
    """Forecast ``horizon`` steps after the last observation of each series."""

    def __init__(
        self,
        horizon: int = 24,
        season: int = 24,
        min_learn_hours: int = 16 * 24,
        refit_every: int = 24,
        window: int = 42 * 24,
        ridge: float = 1e-4,
    ) -> None:
        if min_learn_hours < 2 * _WEEK + season + 24:
            msg = f"min_learn_hours must be >= {2 * _WEEK + season + 24} (two weeks of lags plus a day of samples)"
            raise ValueError(msg)
        self.horizon, self.season = horizon, season
        self.min_learn_hours, self.refit_every = min_learn_hours, refit_every
        self.window, self.ridge = window, ridge
        self._coef: np.ndarray | None = None  # (series, horizon, features)
        self._fitted_at = -1

    def stage(self, n_hours: int) -> str:
        if n_hours < self.season:
            return "last_value"
        if n_hours < self.min_learn_hours:
            return "previous_day"
        return "learned"

    def _profile(self, y: np.ndarray, hours: np.ndarray) -> np.ndarray:
        """Mean of the same hour over the previous 7 seasons (days), for each hour given."""
        back = hours[None, :] - self.season * np.arange(1, 8)[:, None]
        return y[:, back].mean(axis=1)

    def _features(
        self, y: np.ndarray, origins: np.ndarray, targets: np.ndarray, exog: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Profile of each target and the regressors of its deviation (origins/targets 1-D)."""
        profile = self._profile(y, targets)
        yesterday = targets - self.season
        cols = [
            y[:, origins] - self._profile(y, origins),
            y[:, yesterday] - self._profile(y, yesterday),
            y[:, targets - _WEEK] - profile,
        ]
        if exog is not None:
            cols.extend(exog[:, targets, i] for i in range(exog.shape[2]))
        return profile, np.stack(cols, axis=2)

    def _fit(self, y: np.ndarray, exog: np.ndarray | None) -> None:
        n = y.shape[1]
        coefs = []
        for lead in range(1, self.horizon + 1):
            first = max(2 * _WEEK, n - self.window)
            origins = np.arange(first, n - lead)
            profile, x = self._features(y, origins, origins + lead, exog)
            target = y[:, origins + lead] - profile
            xtx = np.einsum("snf,sng->sfg", x, x)
            scale = np.maximum(np.trace(xtx, axis1=1, axis2=2), 1e-9) / x.shape[2]
            xtx += self.ridge * np.eye(x.shape[2]) * scale[:, None, None]
            xty = np.einsum("snf,sn->sf", x, target)
            coefs.append(np.linalg.solve(xtx, xty[..., None])[..., 0])
        self._coef = np.stack(coefs, axis=1)
        self._fitted_at = n

    def forecast(self, history: np.ndarray, exog: np.ndarray | None = None) -> np.ndarray:
        """Values for the ``horizon`` hours after ``history``'s last column.

        ``history`` is (series, n) or (n,); ``exog`` (series, n + horizon, features) holds
        values known for each target hour (only columns up to ``n + horizon - 1`` are read).
        """
        y = np.atleast_2d(np.asarray(history, dtype=float))
        n = y.shape[1]
        if n == 0:
            raise ValueError("history: at least one observation is needed")
        stage = self.stage(n)
        if stage == "last_value":
            return np.repeat(y[:, -1:], self.horizon, axis=1)
        leads = np.arange(1, self.horizon + 1)
        if stage == "previous_day":
            back = n - 1 + leads - self.season * np.ceil(leads / self.season).astype(int)
            return y[:, back]
        if self._coef is None or n - self._fitted_at >= self.refit_every or n < self._fitted_at:
            self._fit(y, exog)
        # every lead at once: origin n-1, targets n .. n+horizon-1
        profile, x = self._features(y, np.full(self.horizon, n - 1), n - 1 + leads, exog)
        return profile + np.einsum("skf,skf->sk", x, self._coef)
