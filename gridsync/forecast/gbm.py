"""A global LightGBM quantile forecaster: one model per quantile shared by every series.

Direct multi-horizon: each training row is (series, origin, lead) with features known at the
origin (lags, recent level and range, see ``features.py``) plus the target time's calendar,
holidays and exogenous forecasts. The target is the change from the most recent same time of
day, in units of the series' scale (mean absolute value), so one model serves feeders and
single households alike.

Calibration: the quantile models are first fitted on rows whose target lies before the last
``calib_days``, each non-median quantile is shifted per lead bucket so that its empirical
level on those held-out days matches its nominal level, and then the models are refitted on
all rows with the shifts kept. Quantiles are sorted before they are returned (no crossing).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from gridsync.forecast.base import DEFAULT_QUANTILES, Forecaster, future_index, steps_per
from gridsync.forecast.features import (
    FEATURES,
    build_features,
    calendar,
    degree_days,
    exog_names,
    window_stats,
)


class GlobalLightGBM(Forecaster):
    """Global gradient-boosted quantile model over many series (see module doc)."""

    name = "lightgbm"

    def __init__(
        self,
        quantiles: tuple[float, ...] = DEFAULT_QUANTILES,
        max_lead_h: float = 24.0,
        max_rows: int = 150_000,
        n_estimators: int = 200,
        learning_rate: float = 0.06,
        num_leaves: int = 31,
        calib_days: float = 7.0,
        lead_buckets: int = 6,
        country: str | None = None,
        subdiv: str | None = None,
        num_threads: int = 1,
        seed: int = 0,
        ar_offset: bool = True,
        season: str = "day",
    ) -> None:
        super().__init__(quantiles)
        if season not in ("day", "week"):
            raise ValueError(f"season: {season!r}; expected 'day' or 'week'")
        self.ar_offset = ar_offset
        self.season = season
        self.max_lead_h = max_lead_h
        self.max_rows = max_rows
        self.params = {
            "n_estimators": n_estimators,
            "learning_rate": learning_rate,
            "num_leaves": num_leaves,
            "min_data_in_leaf": 40,
            "bagging_fraction": 0.8,
            "bagging_freq": 1,
            "feature_fraction": 0.9,
            "num_threads": num_threads,
            "seed": seed,
            "verbose": -1,
        }
        self.calib_days = calib_days
        self.lead_buckets = lead_buckets
        self.country, self.subdiv = country, subdiv
        self.seed = seed

    # -- helpers ---------------------------------------------------------------------------
    def _exog_arrays(self, exog: pd.DataFrame | None, index: pd.DatetimeIndex):
        if exog is None:
            if self._exog_cols:
                raise ValueError(f"exog: model was fitted with {self._exog_cols}; pass them")
            return None
        missing = [c for c in self._exog_cols if c not in exog.columns]
        if missing:
            raise ValueError(f"exog: missing column(s) {missing}")
        aligned = exog[self._exog_cols].reindex(index)
        if aligned.isna().to_numpy().any():
            first = aligned.index[aligned.isna().any(axis=1)][0]
            raise ValueError(f"exog: no value at {first}; exog must cover history and horizon")
        out = {c: aligned[c].to_numpy(dtype=float) for c in self._exog_cols}
        step_h = (index[1] - index[0]) / pd.Timedelta(hours=1) if len(index) > 1 else 1.0
        for c in self._exog_cols:
            if "temp" in c.lower():  # heating/cooling degrees of a temperature column (degC)
                out.update(degree_days(c, out[c], step_h))
        return out

    def _first_origin(self) -> int:
        """Earliest origin row with every lag the features read."""
        return self._s_week + self._s_day

    def _features(self, ys, cal, ex, series, origin, lead) -> np.ndarray:
        stats = window_stats(ys, self._s_day)
        return build_features(
            ys, stats, cal, self._s_day, self._s_week, series, origin, lead, self._dt_h, ex
        )

    def _extra_names(self) -> list[str]:
        return []

    def _bucket(self, lead: np.ndarray) -> np.ndarray:
        return np.minimum((lead - 1) * self.lead_buckets // self._max_lead, self.lead_buckets - 1)

    def _baseline(self, x: np.ndarray, lead: np.ndarray) -> np.ndarray:
        """Seasonal naive (day or week) plus the current anomaly decayed as AR(1): the offset
        the trees correct."""
        anomaly = x[:, FEATURES.index(f"last_vs_lag_{self.season}")]
        return (
            x[:, FEATURES.index(f"lag_{self.season}")] + self._rho**lead * anomaly * self.ar_offset
        )

    def _train(self, x: np.ndarray, target: np.ndarray, quantiles=None) -> list:
        import lightgbm as lgb

        data = lgb.Dataset(x, target, params={"verbose": -1}, free_raw_data=False)
        rounds = self.params["n_estimators"]
        booster_params = {k: v for k, v in self.params.items() if k != "n_estimators"}
        return [
            lgb.train({**booster_params, "objective": "quantile", "alpha": q}, data, rounds)
            for q in quantiles or self.quantiles
        ]

    # -- Forecaster ------------------------------------------------------------------------
    def _fit(self, history: pd.DataFrame, exog: pd.DataFrame | None) -> None:
        self._s_day, self._s_week = steps_per(history, "1D"), steps_per(history, "7D")
        step_h = (history.index[1] - history.index[0]) / pd.Timedelta(hours=1)
        self._dt_h = step_h
        self._max_lead = max(1, int(round(self.max_lead_h / step_h)))
        self._exog_cols = [] if exog is None else list(exog.columns)
        self._columns = list(history.columns)
        y = history.to_numpy(dtype=float)
        self._scale = np.maximum(np.abs(y).mean(axis=0), 1e-9)
        ys = y / self._scale
        t, n = ys.shape
        o_min = self._first_origin()
        if t - 1 - self._max_lead <= o_min:
            raise ValueError(
                f"{self.name}: history of {t} steps too short: need > {o_min + self._max_lead} "
                f"steps ({o_min} steps of lags plus a {self.max_lead_h:g} h horizon)"
            )
        rng = np.random.default_rng(self.seed)
        rows = min(self.max_rows, n * (t - o_min) * self._max_lead)
        series = rng.integers(0, n, rows)
        lead = rng.integers(1, self._max_lead + 1, rows)
        origin = o_min + (rng.random(rows) * (t - lead - o_min)).astype(int)
        cal = calendar(history.index, self.country, self.subdiv)
        ex = self._exog_arrays(exog, history.index)
        x = self._features(ys, cal, ex, series, origin, lead)
        lag = self._s_day if self.season == "day" else self._s_week
        diff = ys[lag:] - ys[:-lag]
        self._rho = float(np.clip(np.corrcoef(diff[1:].ravel(), diff[:-1].ravel())[0, 1], 0, 0.999))
        base = self._baseline(x, lead)
        target = ys[origin + lead, series] - base
        calib = origin + lead >= t - int(self.calib_days * self._s_day)
        self._shift = np.zeros((len(self.quantiles), self.lead_buckets))
        tails = [q for q in self.quantiles if q != 0.5]
        if tails and calib.any() and (~calib).sum() > 1000:
            early = self._train(x[~calib], target[~calib], tails)
            bucket = self._bucket(lead[calib])
            for q, model in zip(tails, early, strict=True):
                k = self.quantiles.index(q)
                resid = target[calib] - model.predict(x[calib])
                for b in range(self.lead_buckets):
                    sel = bucket == b
                    if sel.sum() >= 50:
                        self._shift[k, b] = np.quantile(resid[sel], q)
        self._models = self._train(x, target)
        self.feature_names = list(FEATURES) + exog_names(ex) + self._extra_names()

    def _predict(self, history, horizon, exog) -> np.ndarray:
        keep = self._first_origin() + 1
        if len(history) < keep:
            raise ValueError(f"{self.name}: history needs >= {keep} steps, got {len(history)}")
        recent = history.iloc[-keep:]
        return self.predict_origins(recent, np.array([keep - 1]), horizon, exog)[:, 0]

    def predict_origins(
        self, history: pd.DataFrame, origins: np.ndarray, horizon: int, exog=None
    ) -> np.ndarray:
        """(n_q, origins, horizon, n) forecasts issued at each row in ``origins`` of ``history``
        (each uses rows <= its origin only; ``exog`` must cover history and horizon)."""
        if list(history.columns) != self._columns:
            raise ValueError(f"{self.name}: history columns differ from the fitted ones")
        if horizon > self._max_lead:
            raise ValueError(
                f"horizon: {horizon} steps exceeds the trained max lead ({self._max_lead} steps); "
                "raise max_lead_h"
            )
        if origins.min() < self._first_origin():
            raise ValueError(f"{self.name}: origin row {origins.min()} has too little history")
        ys = history.to_numpy(dtype=float) / self._scale
        n = ys.shape[1]
        beyond = int(origins.max()) + horizon - (len(history) - 1)  # steps past the history
        full_index = history.index
        if beyond > 0:
            full_index = full_index.append(future_index(history, beyond))
        cal = calendar(full_index, self.country, self.subdiv)
        ex = self._exog_arrays(exog, full_index)
        o_grid, l_grid, s_grid = np.meshgrid(
            origins, np.arange(1, horizon + 1), np.arange(n), indexing="ij"
        )
        origin, lead, series = o_grid.ravel(), l_grid.ravel(), s_grid.ravel()
        x = self._features(ys, cal, ex, series, origin, lead)
        base = self._baseline(x, lead)
        bucket = self._bucket(lead)
        out = np.empty((len(self.quantiles), len(origins), horizon, n))
        for k, model in enumerate(self._models):
            pred = base + model.predict(x) + self._shift[k, bucket]
            out[k] = pred.reshape(len(origins), horizon, n) * self._scale
        return out
