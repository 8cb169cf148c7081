"""Online band calibration: rolling normalised conformal with adaptive coverage.

Split-conformal offsets come from errors on a validation period before the fit, in units of
a local scale (the hybrid's: recent day-on-day change times a time-of-day factor). When the
errors after it are smaller or larger (a new weather regime, the season turning, a holiday
period) the band covers too much or too little. ``RollingConformal`` rescales the offsets
per lead by a conformal quantile of recent scores instead:

- a *score* is an error in the offsets' unit divided by the outer offset at its lead and
  series (1 = on the validation band's edge); scores are kept per origin time, and count
  once the origin's whole horizon is observed: validation origins (cross-fitted, out of
  sample) from the fit, origins after it from the refitted model's forecasts;
- the multiplier at lead h is the ``1 - alpha`` quantile of the scores of the origins in the
  last ``days`` days, at leads within ``+-smooth`` steps of h, over all series (normalised
  conformal on a rolling calibration window);
- ``alpha`` starts at the band's nominal miss rate (P10-P90: 0.2) and follows the misses of
  the bands this object actually issued (adaptive conformal inference, Gibbs & Candes 2021):
  after each issued forecast whose horizon is observed, ``alpha += gamma * (target - miss)``
  with ``miss`` its share of values outside the band. Under any distribution shift the long
  run miss rate then tends to the target.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


class RollingConformal:
    """Per-lead band multipliers from recent scores, with an adaptive level (module doc)."""

    def __init__(
        self,
        valid_times: pd.DatetimeIndex,
        valid_scores: np.ndarray,
        fit_end: pd.Timestamp,
        coverage: float,
        days: float = 7.0,
        smooth: int = 1,
        gamma: float = 0.05,
    ) -> None:
        if not 0 < coverage < 1:
            raise ValueError(f"coverage: {coverage} must lie in (0, 1)")
        scores = np.asarray(valid_scores, dtype=float)
        if scores.ndim != 3 or len(scores) != len(valid_times) or not len(scores):
            raise ValueError(
                f"valid_scores: shape {scores.shape} must be (origins, horizon, series) with "
                f"one origin per valid time ({len(valid_times)})"
            )
        self.scores: dict[pd.Timestamp, np.ndarray] = dict(zip(valid_times, scores, strict=True))
        self.fit_end = fit_end
        self.target = 1.0 - coverage
        self.alpha = self.target
        self.days, self.smooth, self.gamma = days, smooth, gamma
        self.horizon = scores.shape[1]
        self._issued: dict[pd.Timestamp, tuple[np.ndarray, np.ndarray]] = {}

    def missing(self, times: pd.DatetimeIndex) -> np.ndarray:
        """Positions in ``times`` (origins after the fit) with no score yet."""
        return np.array(
            [i for i, t in enumerate(times) if t > self.fit_end and t not in self.scores],
            dtype=int,
        )

    def add(self, times, scores) -> None:
        self.scores.update(zip(times, np.asarray(scores, dtype=float), strict=True))

    def multiplier(self, now: pd.Timestamp, horizon: pd.Timedelta) -> np.ndarray:
        """(horizon steps,) multipliers of the offsets for a forecast issued at ``now``: the
        ``1 - alpha`` quantile of the scores of origins whose horizon ended in the last
        ``days`` (all known scores if none did)."""
        end = now - horizon
        start = end - pd.Timedelta(days=self.days)
        recent = [v for t, v in self.scores.items() if start < t <= end]
        s = np.stack(recent or list(self.scores.values()))  # (origins, H, n)
        level = float(np.clip(1.0 - self.alpha, 0.5, 0.99))
        out = np.empty(self.horizon)
        for h in range(self.horizon):
            lo, hi = max(0, h - self.smooth), min(self.horizon, h + self.smooth + 1)
            out[h] = np.quantile(s[:, lo:hi], level)
        return out

    def issued(self, origin: pd.Timestamp, lo: np.ndarray, hi: np.ndarray) -> None:
        """Remember a band (horizon, n) issued at ``origin``, to learn from its misses."""
        self._issued[origin] = (np.asarray(lo, float), np.asarray(hi, float))

    def observe(self, history: pd.DataFrame) -> None:
        """Update ``alpha`` with every issued band whose horizon ``history`` now covers."""
        last = history.index[-1]
        step = history.index[1] - history.index[0]
        done = [t for t in self._issued if t + len(self._issued[t][0]) * step <= last]
        for t in sorted(done):
            lo, hi = self._issued.pop(t)
            at = history.index.get_indexer([t])[0]
            if at < 0:
                continue  # the origin is not in this history (another series' window)
            truth = history.to_numpy(dtype=float)[at + 1 : at + 1 + len(lo)]
            miss = float(np.mean((truth < lo) | (truth > hi)))
            self.alpha += self.gamma * (self.target - miss)
