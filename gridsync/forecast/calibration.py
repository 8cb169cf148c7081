"""Online band calibration: widen or narrow a conformal band by the model's recent errors.

Split-conformal offsets come from errors on a validation period before the fit. When the
errors after it are larger (a new weather regime, the season turning, a holiday period) the
band covers too little, and the other way round. ``RecentErrors`` keeps, per forecast
origin, the mean absolute standardised error of the combined forecast (the same unit the
conformal offsets are in) and returns the ratio of the last ``days`` days' mean to the
validation mean: the band is multiplied by it (clipped to ``[lo, hi]``). Errors count only
once their whole horizon is observed, and never in-sample: origins before the fit use the
cross-fitted validation errors, origins after it the refitted model's forecasts, computed
once and cached by origin time. (An adaptive-conformal scale in the spirit of Gibbs &
Candes 2021, on the error size instead of the miss rate, so a week of forecasts suffices.)
"""

from __future__ import annotations

import numpy as np
import pandas as pd


class RecentErrors:
    """Mean |z| per origin time, and the recent-to-validation ratio (see module doc)."""

    def __init__(
        self,
        valid_times: pd.DatetimeIndex,
        valid_abs_z: np.ndarray,
        fit_end: pd.Timestamp,
        days: float = 7.0,
        lo: float = 0.8,
        hi: float = 2.5,
    ) -> None:
        self.by_time = dict(zip(valid_times, np.asarray(valid_abs_z, dtype=float), strict=True))
        self.reference = float(np.mean(valid_abs_z))
        self.fit_end = fit_end
        self.days, self.lo, self.hi = days, lo, hi

    def missing(self, times: pd.DatetimeIndex) -> np.ndarray:
        """Positions in ``times`` (origins after the fit) with no cached error yet."""
        return np.array(
            [i for i, t in enumerate(times) if t > self.fit_end and t not in self.by_time],
            dtype=int,
        )

    def add(self, times, abs_z) -> None:
        self.by_time.update(zip(times, np.asarray(abs_z, dtype=float), strict=True))

    def ratio(self, now: pd.Timestamp, horizon: pd.Timedelta) -> float:
        """Band multiplier from the origins whose horizon ended in the last ``days``."""
        end = now - horizon
        start = end - pd.Timedelta(days=self.days)
        recent = [v for t, v in self.by_time.items() if start < t <= end]
        if not recent or self.reference <= 0:
            return 1.0
        return float(np.clip(np.mean(recent) / self.reference, self.lo, self.hi))
