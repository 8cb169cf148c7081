"""The default learned load model: a stacked combination of forecasters with a conformal band.

Components (``components``; default profile, gbm and decomposition), each issued from the same
origin:

- ``profile`` (``ProfileAR``): the weighted mean of the same time of week over the last
  ``weeks`` weeks, plus a per-lead least-squares model of the anomaly from it (the current
  anomaly, yesterday's at the same time, the last day's mean, and the drift of the daily shape
  over the last two weeks);
- ``holt_winters``: double-seasonal Holt-Winters with AR(1) error correction (Taylor 2003);
- ``ProfileGBM``: the global LightGBM median model on the residual from ``profile``, with the
  recent lags, calendar, holidays and exogenous forecasts of ``GlobalLightGBM``;
- ``decomposition``: a fast MSTL-like weekly pattern + recent daily shape + smoothed level
  (``gridsync.forecast.decomp``), one forecast per level half-life.

Holt-Winters is off by default: the decomposition covers the same structure (level, daily and
weekly seasonality), and with it the stacking weights swung with the validation length on a
development period (Victoria Feb-May 2012: 4.59 -> 4.87 % MAPE from 14 to 21 validation
days, 4.62 -> 4.63 % without it).

Fitting uses the history only. The components are first fitted on all but its last
``valid_days`` and issue forecasts from origins every few steps inside those days (each origin
reads rows up to itself). Per lead, non-negative least squares on those forecasts at the
leads within +-3 h (at most +-half the lead: the best mix changes fastest at short leads)
gives the weights. The combined forecast's errors (cross-fitted: each half of the origins
combined with weights stacked on the other half), in units of each series' mean day-on-day
change over the week before each origin (so the band follows the level and the season's
volatility), give the band: a time-of-day error scale, and per-lead empirical quantiles of
the absolute errors divided by it (symmetric: P10/P90 = -/+ the 80th percentile, so a run of
one-signed errors in the validation days does not tilt the band), both smoothed over
neighbouring hours (split-conformal calibration). Then the components are refitted on the
whole history. A forecast is the weighted sum of the components plus the scaled offsets,
times a per-lead multiplier from ``gridsync.forecast.calibration.RollingConformal``: a
conformal quantile of the errors of the last week's origins (validation origins at first,
then the refitted model's own), at a level that follows the misses of the bands it issued
(adaptive conformal inference), so coverage holds when the error regime moves after the fit.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.optimize import nnls

from gridsync.forecast.base import DEFAULT_QUANTILES, Forecaster, steps_per
from gridsync.forecast.baselines import HoltWinters
from gridsync.forecast.calibration import RollingConformal
from gridsync.forecast.decomp import HALF_LIVES_H, decomposition_forecasts
from gridsync.forecast.gbm import GlobalLightGBM

COMPONENTS = ("profile", "holt_winters", "gbm", "decomposition")
DEFAULT_COMPONENTS = ("profile", "gbm", "decomposition")


def profile_weights(weeks: int, decay: float) -> np.ndarray:
    w = decay ** np.arange(weeks)
    return w / w.sum()


def weekly_profile(y: np.ndarray, rows: np.ndarray, s_week: int, w: np.ndarray) -> np.ndarray:
    """Weighted mean of ``y`` one, two, ... weeks before ``rows`` (any shape; y is (T, n))."""
    return sum(wk * y[rows - (k + 1) * s_week] for k, wk in enumerate(w))


def anomaly_means(y: np.ndarray, s_week: int, w: np.ndarray, windows: tuple[int, ...]):
    """Trailing means of ``y - weekly_profile`` over each window (rows before the first full
    window are NaN); every value at row t reads rows <= t only."""
    t, n = y.shape
    first = len(w) * s_week
    resid = np.zeros((t, n))
    resid[first:] = y[first:] - weekly_profile(y, np.arange(first, t), s_week, w)
    csum = np.vstack([np.zeros((1, n)), np.cumsum(resid, axis=0)])
    out = []
    for win in windows:
        mean = np.full((t, n), np.nan)
        mean[first + win - 1 :] = (csum[first + win :] - csum[first:-win]) / win
        out.append(mean)
    return out


def daily_shape_drift(
    y: np.ndarray, rows: np.ndarray, s_day: int, s_week: int, w: np.ndarray, days: int
) -> np.ndarray:
    """How the same time of day moved lately: its mean over the ``days`` days before each row
    minus the weekly-profile-weighted means before the same rows 1, 2, ... weeks earlier
    (e.g. the evening peak following sunset). Days before the history start are skipped."""

    def daily_mean(r):
        total, count = 0.0, 0
        for k in range(1, days + 1):
            ok = (r - k * s_day >= 0)[..., None]
            total = total + np.where(ok, y[np.maximum(r - k * s_day, 0)], 0.0)
            count = count + ok
        return total / np.maximum(count, 1)

    past = sum(wk * daily_mean(rows - (k + 1) * s_week) for k, wk in enumerate(w))
    return daily_mean(rows) - past


def _profile_design(y, origins, horizon, s_day, s_week, w, hour, drift_days=14):
    """Profile and regressors of the anomaly at origin + lead, for (origins, horizon, n):
    the last hour's and day's mean anomaly at the origin, the anomaly one day before the
    target (the newest same time of day) and the daily-shape drift; all read rows <= origin
    (horizon <= one day)."""
    last = origins.max() + 1
    a_all, a_hour, a_day = anomaly_means(y[:last], s_week, w, (1, hour, s_day))
    lead = np.arange(1, horizon + 1)
    target = origins[:, None] + lead
    prof = weekly_profile(y, target, s_week, w)
    same_time = target - s_day * np.ceil(lead / s_day).astype(int)
    o = origins[:, None]
    x = np.stack(
        [
            np.broadcast_to(a_hour[o], prof.shape),
            a_all[same_time],
            np.broadcast_to(a_day[o], prof.shape),
            daily_shape_drift(y, target, s_day, s_week, w, drift_days),
        ]
    )
    return prof, x  # (O, H, n), (4, O, H, n)


class ProfileAR:
    """Weekly profile plus a per-lead linear model of the anomaly from it (least squares on
    the history, pooled over series in units of each series' scale)."""

    def __init__(self, weeks: int = 4, decay: float = 0.8, max_rows: int = 100_000) -> None:
        self.w = profile_weights(weeks, decay)
        self.max_rows = max_rows

    def fit(self, y: np.ndarray, horizon: int, s_day: int, s_week: int, hour: int):
        self.s_day, self.s_week, self.hour = s_day, s_week, hour
        first = len(self.w) * s_week + s_day
        origins = np.arange(first, len(y) - horizon)
        if len(origins) < 2:
            raise ValueError(f"profile: history of {len(y)} steps too short")
        stride = max(1, int(np.ceil(len(origins) * y.shape[1] / self.max_rows)))
        origins = origins[::-1][::stride][::-1]
        scale = np.maximum(np.abs(y).mean(axis=0), 1e-9)
        ys = y / scale
        prof, x = _profile_design(ys, origins, horizon, s_day, s_week, self.w, hour)
        target = ys[origins[:, None] + np.arange(1, horizon + 1)] - prof
        xx = np.einsum("aohn,bohn->hab", x, x) + 1e-6 * np.eye(x.shape[0])
        xy = np.einsum("aohn,ohn->ha", x, target)
        self.coef = np.linalg.solve(xx, xy[..., None])[..., 0]  # (H, regressors)
        return self

    def forecast(self, y: np.ndarray, origins: np.ndarray, horizon: int) -> np.ndarray:
        prof, x = _profile_design(y, origins, horizon, self.s_day, self.s_week, self.w, self.hour)
        return prof + np.einsum("ha,aohn->ohn", self.coef[:horizon], x)


class ProfileGBM(GlobalLightGBM):
    """``GlobalLightGBM`` whose trees correct the profile forecast instead of seasonal-naive.

    Extra features: the target's weekly profile and the origin's anomaly from the profile
    (last value, last hour's and last day's mean). Needs ``weeks`` weeks plus a day of lags.
    """

    name = "profile_gbm"
    EXTRA = ("profile", "anomaly_last", "anomaly_hour", "anomaly_day")

    def __init__(self, *args, weeks: int = 4, decay: float = 0.8, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if weeks < 1:
            raise ValueError(f"weeks: {weeks} must be >= 1")
        if not 0 < decay <= 1:
            raise ValueError(f"decay: {decay} must lie in (0, 1]")
        self.weeks, self.decay = weeks, decay

    def _first_origin(self) -> int:
        return max(self._s_week, self.weeks * self._s_week) + self._s_day

    def _extra_names(self) -> list[str]:
        return list(self.EXTRA)

    def _features(self, ys, cal, ex, series, origin, lead) -> np.ndarray:
        if self._max_lead > self._s_week:
            raise ValueError(f"{self.name}: max lead beyond one week is not supported")
        x = super()._features(ys, cal, ex, series, origin, lead)
        w = profile_weights(self.weeks, self.decay)
        hour = max(1, int(round(1 / self._dt_h)))
        a_last, a_hour, a_day = anomaly_means(ys, self._s_week, w, (1, hour, self._s_day))
        target = origin + lead
        prof = sum(wk * ys[target - (k + 1) * self._s_week, series] for k, wk in enumerate(w))
        extra = np.column_stack(
            [prof, a_last[origin, series], a_hour[origin, series], a_day[origin, series]]
        ).astype(np.float32)
        return np.hstack([x, extra])

    def _baseline(self, x: np.ndarray, lead: np.ndarray) -> np.ndarray:
        k = x.shape[1] - len(self.EXTRA)
        return x[:, k] + x[:, k + 2]  # profile + last hour's anomaly


class HybridForecaster(Forecaster):
    """Stacked profile + ProfileGBM + decomposition (+ Holt-Winters), conformal quantiles."""

    name = "hybrid"
    SHRINK = 50  # pseudo-samples of the pooled error quantiles in each series' own
    SMOOTH_H = 1.0
    STACK_H: float | None = 3.0  # stacking window around each lead (None: one for all leads)
    MAX_VALID_DAYS = 21.0  # sized windows: the weights were stable from 14 to 21 days  # band: half-width of the smoothing over leads and times of day
    VALID_ROWS = 300_000

    def __init__(
        self,
        quantiles: tuple[float, ...] = DEFAULT_QUANTILES,
        max_lead_h: float = 24.0,
        valid_days: float = 14.0,
        weeks: int = 4,
        decay: float = 0.8,
        max_rows: int = 100_000,
        n_estimators: int = 100,
        learning_rate: float = 0.05,
        num_leaves: int = 15,
        country: str | None = None,
        subdiv: str | None = None,
        num_threads: int = 1,
        seed: int = 0,
        max_valid_series: int = 128,
        components: tuple[str, ...] = DEFAULT_COMPONENTS,
    ) -> None:
        super().__init__(quantiles)
        if valid_days <= 0:
            raise ValueError(f"valid_days: {valid_days} must be > 0")
        if not 0 < max_lead_h <= 24:
            raise ValueError(
                f"max_lead_h: {max_lead_h} must be in (0, 24] h (the profile regressors read "
                "the same time of day one day back)"
            )
        self.max_lead_h = max_lead_h
        self.valid_days = valid_days
        self.weeks, self.decay = weeks, decay
        self.gbm_params = dict(
            max_lead_h=max_lead_h,
            max_rows=max_rows,
            n_estimators=n_estimators,
            learning_rate=learning_rate,
            num_leaves=num_leaves,
            country=country,
            subdiv=subdiv,
            num_threads=num_threads,
            seed=seed,
            weeks=weeks,
            decay=decay,
        )
        self.seed = seed
        unknown = [c for c in components if c not in COMPONENTS]
        if unknown or not components:
            raise ValueError(f"components: {components} must be a non-empty subset of {COMPONENTS}")
        self.components = tuple(c for c in COMPONENTS if c in components)
        self.max_valid_series = max_valid_series

    @staticmethod
    def min_days(max_lead_h: float = 24.0, weeks: int = 2, valid_days: float = 3.0) -> float:
        """Days of history the model needs (lags, validation, horizon, 2 days of training)."""
        return 7 * max(weeks, 2) + 1 + max_lead_h / 24 + 2 + valid_days

    @classmethod
    def for_history_days(cls, days: float, max_lead_h: float = 24.0, **kwargs):
        """The default model shrunk to fit a training window of ``days``: 4 profile weeks and
        14 validation days, else 3 weeks and 7-14 days, else 2 weeks and 3-14 days; a
        ValueError if none fits."""
        for weeks, min_valid in ((4, 14.0), (3, 7.0), (2, 3.0)):
            valid = min(14.0, days - cls.min_days(max_lead_h, weeks, 0.0))
            if valid >= min_valid:
                return cls(max_lead_h=max_lead_h, weeks=weeks, valid_days=valid, **kwargs)
        raise ValueError(
            f"hybrid: a {days:g}-day training window is too short; it needs >= "
            f"{cls.min_days(max_lead_h):g} days"
        )

    # -- components ------------------------------------------------------------------------
    def _fit_components(self, history: pd.DataFrame, exog) -> dict:
        fitted = {}
        if "profile" in self.components:
            fitted["profile"] = ProfileAR(self.weeks, self.decay).fit(
                history.to_numpy(dtype=float), self._horizon, self._s_day, self._s_week, self._hour
            )
        if "holt_winters" in self.components:
            fitted["holt_winters"] = HoltWinters(horizon_h=self.max_lead_h).fit(history)
        if "gbm" in self.components:
            fitted["gbm"] = ProfileGBM((0.5,), **self.gbm_params).fit(history, exog)
        return fitted

    def _component_forecasts(self, fitted, history, origins, horizon, exog) -> np.ndarray:
        """(k, origins, horizon, n) point forecasts of the components, in ``COMPONENTS`` order;
        ``decomposition`` gives one per level half-life (``HALF_LIVES_H``)."""
        y = history.to_numpy(dtype=float)
        out = []
        if "profile" in fitted:
            out.append(fitted["profile"].forecast(y, origins, horizon)[None])
        if "holt_winters" in fitted:
            out.append(fitted["holt_winters"].forecast_origins(y, origins, horizon)[None])
        if "gbm" in fitted:
            out.append(fitted["gbm"].predict_origins(history, origins, horizon, exog)[0][None])
        if "decomposition" in self.components:
            out.append(decomposition_forecasts(y, origins, horizon, self._s_day, HALF_LIVES_H))
        return np.concatenate(out)

    def _min_history(self) -> int:
        """Steps the components need before the first origin (profile/GBM lags, HW 2 weeks)."""
        return max(self.weeks, 2) * self._s_week + self._s_day

    # -- Forecaster ------------------------------------------------------------------------
    def _fit(self, history: pd.DataFrame, exog: pd.DataFrame | None) -> None:
        self._s_day, self._s_week = steps_per(history, "1D"), steps_per(history, "7D")
        dt_h = (history.index[1] - history.index[0]) / pd.Timedelta(hours=1)
        self._hour = max(1, int(round(1 / dt_h)))
        horizon = self._horizon = max(1, int(round(self.max_lead_h / dt_h)))
        valid = int(round(self.valid_days * self._s_day))
        need = int(
            np.ceil(self.min_days(self.max_lead_h, self.weeks, self.valid_days) * self._s_day)
        )
        if len(history) < need:
            raise ValueError(
                f"{self.name}: history of {len(history)} steps too short: need >= {need} "
                f"({max(self.weeks, 2)} weeks of lags, {self.valid_days:g} validation days, "
                f"a {self.max_lead_h:g} h horizon and 2 days of training)"
            )
        n = history.shape[1]
        self._sigma = self._error_scale(history)  # floor for the recent scale
        cols = np.arange(n)
        if n > self.max_valid_series:
            rng = np.random.default_rng(self.seed)
            cols = np.sort(rng.choice(n, self.max_valid_series, replace=False))
        sub = history.iloc[:, cols]
        fitted = self._fit_components(sub.iloc[:-valid], exog)
        t = len(sub)
        # origins every 1/16 day, thinned so validation stays under VALID_ROWS forecast values
        stride = max(1, self._s_day // 16)
        count = len(range(t - valid - 1, t - horizon, stride))
        stride *= max(1, int(np.ceil(count * horizon * len(cols) / self.VALID_ROWS)))
        origins = np.arange(t - valid - 1, t - horizon, stride)
        comps = self._component_forecasts(fitted, sub, origins, horizon, exog)
        target = origins[:, None] + np.arange(1, horizon + 1)
        truth = sub.to_numpy(dtype=float)[target]
        recent = self._recent_scale(sub.to_numpy(dtype=float), origins, self._sigma[cols])
        sigma = np.broadcast_to(recent[:, None, :], truth.shape)
        self._weights = self._fit_weights(comps, truth, sigma, dt_h)
        err = self._cross_fitted_errors(comps, truth, sigma, dt_h)
        slots = (self._slot(sub.index[origins])[:, None] + np.arange(1, horizon + 1)) % self._s_day
        self._offsets = self._conformal(err, slots, cols, n)
        self._fitted = self._fit_components(history, exog)
        self._cols = cols
        # calibration scores at origins about SCORE_EVERY_H apart, as after the fit
        spacing = origins[1] - origins[0] if len(origins) > 1 else 1
        every = max(1, int(round(self.SCORE_EVERY_H * self._hour / spacing)))
        keep = np.arange(len(origins) - 1, -1, -every)[::-1]
        self._calib = RollingConformal(
            sub.index[origins[keep]],
            self._scores(err[keep], slots[keep]),
            history.index[-1],
            coverage=self.quantiles[-1] - self.quantiles[0],
            days=self.CALIB_DAYS,
            smooth=max(1, int(round(self.SMOOTH_H * self._hour))),
        )

    RECENT_DAYS = 7
    CALIB_DAYS = 7.0  # rolling calibration window of the band (days of origins)
    SCORE_EVERY_H = 6.0  # spacing of the scored origins (the common issue spacing)

    def _scores(self, err: np.ndarray, slots: np.ndarray) -> np.ndarray:
        """Conformal scores of scaled errors (origins, H, validated series): |error| in units
        of the outer band offset at its lead, series and time of day."""
        edge = np.abs(self._offsets[[0, -1]]).max(axis=0)[:, self._cols]  # (H, n_valid)
        z = err / self._tod_scale[slots][..., None]
        return np.abs(z) / np.maximum(edge[: err.shape[1]], 1e-9)

    def _recent_scale(self, y: np.ndarray, origins: np.ndarray, floor: np.ndarray) -> np.ndarray:
        """(origins, n) error scale known at each origin: the mean absolute day-on-day change
        over the ``RECENT_DAYS`` days up to it (reads rows <= origin). Band offsets are
        quantiles of errors in this unit, so the band follows the level and the season's
        volatility (a cold spell, the summer holidays) instead of the training window's
        average. At least a quarter of the training window's scale ``floor``."""
        d = self._s_day
        change = np.abs(y[d:] - y[:-d])
        csum = np.vstack([np.zeros((1, y.shape[1])), np.cumsum(change, axis=0)])
        end = origins - d + 1  # change rows up to the origin
        start = np.maximum(end - self.RECENT_DAYS * d, 0)
        mean = (csum[end] - csum[start]) / np.maximum(end - start, 1)[:, None]
        return np.maximum(mean, 0.25 * floor)

    def _error_scale(self, history: pd.DataFrame) -> np.ndarray:
        """(n,) typical error size per series: the mean absolute day-on-day change, so band
        widths follow each series' own variability (a feeder head vs a household)."""
        y = history.to_numpy(dtype=float)
        change = np.abs(y[self._s_day :] - y[: -self._s_day]).mean(axis=0)
        return np.maximum(change, 1e-6 * np.maximum(np.abs(y).mean(axis=0), 1e-9))

    def _fit_weights(self, comps, truth, scale, dt_h) -> np.ndarray:
        """(horizon, k) weights: per lead, non-negative least squares stacking of the
        components on the leads within +-``STACK_H`` hours and at most +-half the lead (all
        origins and series, in units of
        ``scale`` (origins, H, n)), normalised to sum to one. Neighbouring leads share most of
        their rows, so the weights vary smoothly with the lead."""
        x = comps / scale[None]
        t = truth / scale
        gram = np.einsum("cohn,dohn->hcd", x, x)
        cross = np.einsum("cohn,ohn->hc", x, t)
        horizon, k = truth.shape[1], len(comps)
        half = int(round(self.STACK_H / dt_h)) if self.STACK_H is not None else horizon
        weights = np.empty((horizon, k))
        for h in range(horizon):
            # at short leads the best mix changes fastest: the window is at most half the lead
            width = min(half, h // 2)
            rows = slice(h - width, h + width + 1)
            g, c = gram[rows].sum(axis=0), cross[rows].sum(axis=0)
            g = g + 1e-9 * np.trace(g) / k * np.eye(k)
            r = np.linalg.cholesky(g).T  # |x w - t|^2 = |r w - r^-T c|^2 + const
            w, _ = nnls(r, np.linalg.solve(r.T, c))
            weights[h] = w / w.sum() if w.sum() > 0 else 1 / k
        return weights

    def _cross_fitted_errors(self, comps, truth, scale, dt_h) -> np.ndarray:
        """Scaled errors (origins, H, n) of the combination, each half of the origins weighted
        by the other half's weights, so the band does not inherit the optimism of errors the
        weights were chosen on."""
        half = len(truth) // 2
        first, second = slice(0, half), slice(half, None)
        err = np.empty_like(truth)
        for fit_on, score_on in ((first, second), (second, first)):
            w = self._fit_weights(comps[:, fit_on], truth[fit_on], scale[fit_on], dt_h)
            combined = np.einsum("hc,cohn->ohn", w, comps[:, score_on])
            err[score_on] = (truth[score_on] - combined) / scale[score_on]
        return err

    def _slot(self, times: pd.DatetimeIndex) -> np.ndarray:
        """Time-of-day slot (0 .. steps per day - 1) of each time."""
        step = pd.Timedelta(hours=24 / self._s_day)
        return ((times - times.normalize()) / step).to_numpy().round().astype(int) % self._s_day

    def _smooth(self, values: np.ndarray, axis: int, circular: bool) -> np.ndarray:
        """Moving mean over +-``SMOOTH_H`` hours along ``axis`` (wrapping for time of day, else
        narrowed near the ends)."""
        k = max(1, int(round(self.SMOOTH_H * self._hour)))
        v = np.moveaxis(values, axis, 0)
        n = len(v)
        out = np.zeros_like(v)
        for i in range(n):
            half = k if circular else min(k, i, n - 1 - i)  # symmetric: no bias at the ends
            idx = np.arange(i - half, i + half + 1) % n
            out[i] = v[idx].mean(axis=0)
        return np.moveaxis(out, 0, axis)

    SYMMETRIC = True

    def _error_quantiles(self, z: np.ndarray, axis) -> np.ndarray:
        """Band offsets (n_q, ...) from scaled errors ``z``: with ``SYMMETRIC``, quantile q is
        sign(q - 0.5) times the |2q - 1| quantile of |z| (P10/P90 = -/+ the 80th percentile
        of |z|), so a run of errors of one sign in the validation days (a mild fortnight)
        does not shift the band for the days after it; else the plain quantiles of z."""
        if not self.SYMMETRIC:
            return np.quantile(z, self.quantiles, axis=axis)
        q = np.asarray(self.quantiles)
        mag = np.quantile(np.abs(z), np.abs(2 * q - 1), axis=axis)
        return np.sign(q - 0.5).reshape((-1,) + (1,) * (mag.ndim - 1)) * mag

    def _conformal(self, err, slots, cols, n):
        """Band model from the cross-fitted scaled errors ``err`` (origins, H, n) whose targets
        fall in time-of-day ``slots`` (origins, H).

        ``_tod_scale`` (s_day,): the mean absolute error per time of day, smoothed over
        neighbouring slots and normalised to mean 1 (a local volatility estimate: errors are
        larger on the morning ramp than at night). ``_offsets`` (n_q, H, n): per-lead empirical
        quantiles of the errors divided by that scale, smoothed over neighbouring leads; a
        validated series gets its own quantiles shrunk towards the pooled ones (weight
        samples / (samples + SHRINK)), the others the pooled ones. 0 for the median."""
        size = np.abs(err).mean(axis=2)
        per_slot = np.bincount(slots.ravel(), size.ravel(), self._s_day)
        count = np.bincount(slots.ravel(), minlength=self._s_day)
        per_slot = per_slot / np.maximum(count, 1)
        per_slot[count == 0] = per_slot[count > 0].mean()
        tod = self._smooth(per_slot, 0, circular=True)
        self._tod_scale = tod / tod.mean()
        z = err / self._tod_scale[slots][..., None]
        pooled = self._smooth(self._error_quantiles(z, axis=(0, 2)), 1, circular=False)
        own = self._smooth(self._error_quantiles(z, axis=0), 1, circular=False)
        m = err.shape[0] * (2 * max(1, int(round(self.SMOOTH_H * self._hour))) + 1)
        out = np.repeat(pooled[..., None], n, axis=2)
        out[:, :, cols] = (m * own + self.SHRINK * pooled[..., None]) / (m + self.SHRINK)
        out[self.quantiles.index(0.5)] = 0.0
        return out

    def _predict(self, history, horizon, exog) -> np.ndarray:
        if horizon > len(self._weights):
            raise ValueError(
                f"horizon: {horizon} steps exceeds the trained max lead ({len(self._weights)})"
            )
        if len(history) < self._min_history() + 1:
            raise ValueError(
                f"{self.name}: history needs >= {self._min_history() + 1} steps, got {len(history)}"
            )
        origin = np.array([len(history) - 1])
        comps = self._component_forecasts(self._fitted, history, origin, horizon, exog)
        point = np.einsum("hc,chn->hn", self._weights[:horizon], comps[:, 0])
        slots = (self._slot(history.index[-1:])[0] + np.arange(1, horizon + 1)) % self._s_day
        band = self._offsets[:, :horizon] * self._tod_scale[slots][None, :, None]
        sigma = self._recent_scale(history.to_numpy(dtype=float), origin, self._sigma)[0]
        self._score_recent(history, exog)
        self._calib.observe(history)
        step = history.index[1] - history.index[0]
        mult = self._calib.multiplier(history.index[-1], len(self._weights) * step)
        out = point[None] + band * sigma * mult[:horizon, None]
        if horizon == len(self._weights):
            self._calib.issued(history.index[-1], out[0], out[-1])
        return out

    def _score_recent(self, history: pd.DataFrame, exog) -> None:
        """Conformal scores of the combined forecast after the fit
        (``gridsync.forecast.calibration``): origins every ``SCORE_EVERY_H`` whose whole
        horizon is in ``history``, forecast once with the fitted components and cached."""
        horizon = len(self._weights)
        every = max(1, int(round(self.SCORE_EVERY_H * self._hour)))
        last = len(history) - 1 - horizon
        first = max(self._min_history(), last - int(self._calib.days * self._s_day))
        rows = np.arange(last, first - 1, -every)[::-1]
        todo = rows[self._calib.missing(history.index[rows])] if len(rows) else rows
        if len(todo):
            comps = self._component_forecasts(self._fitted, history, todo, horizon, exog)
            point = np.einsum("hc,cohn->ohn", self._weights, comps)[..., self._cols]
            y = history.to_numpy(dtype=float)
            truth = y[todo[:, None] + np.arange(1, horizon + 1)][..., self._cols]
            scale = self._recent_scale(y, todo, self._sigma)[:, None, self._cols]
            slots = (self._slot(history.index[todo])[:, None] + np.arange(1, horizon + 1)) % (
                self._s_day
            )
            self._calib.add(history.index[todo], self._scores((truth - point) / scale, slots))
