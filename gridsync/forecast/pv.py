"""PV forecasts: pvlib clear-sky physics times a learned clear-sky-index correction.

Physics: the clear-sky output per kWp of every PV orientation comes from pvlib's
simplified-Solis clear sky pushed through the same transposition / cell-temperature / PVWatts
chain the twin uses (``gridsync.data.weather.pv_output_per_kwp``). Learned part: a LightGBM
quantile model of the clear-sky index ``k = pv / pv_clear`` at the target time from the lead,
time of day, the index over the last two hours, yesterday's daily index and (when a weather
forecast is supplied) the forecast GHI clear-sky index, trained on the residual from that
forecast index (or from yesterday's index without one) so trees need not extrapolate. PV = clear-sky x k, so night is zero
and output never exceeds what the physics allows (k is capped at 1.3).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from gridsync.forecast.base import DEFAULT_QUANTILES

K_MAX = 1.3
MIN_CLEAR_FRACTION = 0.03  # steps with clear-sky output below 3 % of peak count as night


def orientations(scenario) -> np.ndarray:
    """(n_orientations, 2) tilt/azimuth in the order of ``scenario.pv_per_kwp`` columns."""
    if getattr(scenario, "pv_orientations_deg", None) is not None:
        return scenario.pv_orientations_deg
    pv = scenario.fleet.pv
    return np.unique(np.c_[pv.tilt_deg, pv.azimuth_deg], axis=0)


def clear_sky(scenario) -> tuple[np.ndarray, np.ndarray]:
    """Clear-sky PV per kWp (T, n_orient) and clear-sky GHI (T,) on ``scenario.index``.

    Cell temperature uses the air temperature measured a day earlier at the same time, so a
    forecast issued at step t reads no realised temperature at or after t for 24 h ahead."""
    import pvlib

    from gridsync.data.weather import Weather, pv_output_per_kwp, read_weather

    site = read_weather(scenario.config.weather.tmy, scenario.index[:2])
    idx = scenario.index
    step = idx[1] - idx[0]
    day = min(scenario.steps_per_day, len(idx))
    tz = f"Etc/GMT{int(-site.utc_offset_h):+d}"
    times = (idx + step / 2).tz_localize(tz)
    sun = pvlib.solarposition.get_solarposition(
        times, site.latitude, site.longitude, altitude=site.altitude_m
    )
    elevation = np.maximum(sun["apparent_elevation"].to_numpy(), 0.0)
    cs = pvlib.clearsky.simplified_solis(elevation)
    frame = pd.DataFrame(
        {
            "ghi_w_m2": np.nan_to_num(np.asarray(cs["ghi"], dtype=float)),
            "dni_w_m2": np.nan_to_num(np.asarray(cs["dni"], dtype=float)),
            "dhi_w_m2": np.nan_to_num(np.asarray(cs["dhi"], dtype=float)),
            "temp_air_c": np.r_[
                scenario.outdoor_temp_c[:day], scenario.outdoor_temp_c[: len(idx) - day]
            ],
            "wind_speed_m_s": np.full(len(idx), 2.0),
        },
        index=idx,
    )
    weather = Weather(
        frame=frame,
        latitude=site.latitude,
        longitude=site.longitude,
        altitude_m=site.altitude_m,
        utc_offset_h=site.utc_offset_h,
        station=site.station,
    )
    orient = orientations(scenario)
    per_kwp = pv_output_per_kwp(weather, orient[:, 0], orient[:, 1])
    return per_kwp, frame["ghi_w_m2"].to_numpy()


def _nanmean(rows: list[np.ndarray]) -> np.ndarray:
    """Mean over the non-NaN rows (NaN where all are NaN, e.g. at night), without warnings."""
    stack = np.stack(rows)
    valid = ~np.isnan(stack)
    count = valid.sum(axis=0)
    total = np.where(valid, stack, 0.0).sum(axis=0)
    return np.where(count > 0, total / np.maximum(count, 1), np.nan)


class PVCorrection:
    """Clear-sky-index quantile model pooled over orientations (see module doc)."""

    def __init__(
        self,
        quantiles: tuple[float, ...] = DEFAULT_QUANTILES,
        max_rows: int = 60_000,
        n_estimators: int = 150,
        seed: int = 0,
    ) -> None:
        self.quantiles = quantiles
        self.max_rows = max_rows
        self.n_estimators = n_estimators
        self.seed = seed

    @staticmethod
    def _index(pv: np.ndarray, clear: np.ndarray) -> np.ndarray:
        day = clear > MIN_CLEAR_FRACTION * max(clear.max(), 1e-9)
        return np.where(day, np.clip(pv / np.where(day, clear, 1.0), 0.0, K_MAX), np.nan)

    def _base(self, x: np.ndarray) -> np.ndarray:
        """The physics-side guess the trees correct: the forecast GHI clear-sky index when a
        weather forecast is given (so cloudier-than-ever days extrapolate), else yesterday's."""
        guess = x[:, 4] if self._uses_weather else x[:, 3]
        return np.where(np.isnan(guess), 0.7, guess)

    def _features(self, k, k_ghi_fc, hour, s_day, origin, lead, orient, dt_h):
        k_recent = _nanmean([k[origin - i, orient] for i in range(max(1, int(round(2 / dt_h))))])
        k_yesterday = _nanmean([k[origin - i, orient] for i in range(s_day)])
        cols = [lead * dt_h, hour[origin + lead], k_recent, k_yesterday]
        if k_ghi_fc is not None:
            cols.append(k_ghi_fc)
        return np.column_stack(cols).astype(np.float32)

    def fit(self, pv, clear, hour, s_day, dt_h, max_lead, ghi_index=None, ghi_fc_error=None):
        """Train on rows whose target lies inside ``pv`` (history only, shape (T, n_orient)).

        ``ghi_index``: realised GHI clear-sky index (T,); ``ghi_fc_error(origin, lead)`` turns
        it into the forecast one (None: no weather forecast, lags only).
        """
        import lightgbm as lgb

        k = self._index(pv, clear)
        t, n = k.shape
        rng = np.random.default_rng(self.seed)
        rows = self.max_rows
        orient = rng.integers(0, n, rows)
        lead = rng.integers(1, max_lead + 1, rows)
        origin = s_day + (rng.random(rows) * (t - lead - s_day)).astype(int)
        keep = ~np.isnan(k[origin + lead, orient])
        orient, lead, origin = orient[keep], lead[keep], origin[keep]
        k_fc = None
        self._uses_weather = ghi_index is not None
        if self._uses_weather:
            k_fc = ghi_index[origin + lead] + ghi_fc_error(origin, lead)
        x = self._features(k, k_fc, hour, s_day, origin, lead, orient, dt_h)
        y = k[origin + lead, orient] - self._base(x)
        params = {
            "num_leaves": 31,
            "learning_rate": 0.08,
            "min_data_in_leaf": 50,
            "num_threads": 1,
            "seed": self.seed,
            "verbose": -1,
        }
        data = lgb.Dataset(x, y, params={"verbose": -1}, free_raw_data=False)
        self._models = [
            lgb.train({**params, "objective": "quantile", "alpha": q}, data, self.n_estimators)
            for q in self.quantiles
        ]
        self._s_day, self._dt_h = s_day, dt_h
        return self

    def predict(self, pv_hist, clear, hour, origin, horizon, ghi_index_fc=None):
        """(n_q, horizon, n_orient) PV per kWp for leads 1..horizon after row ``origin``.

        ``pv_hist`` needs rows ``<= origin`` only; ``clear``/``hour`` cover the horizon.
        """
        n = pv_hist.shape[1]
        k = self._index(pv_hist[: origin + 1], clear[: origin + 1])
        lead = np.repeat(np.arange(1, horizon + 1), n)
        orient = np.tile(np.arange(n), horizon)
        o = np.full(len(lead), origin)
        k_fc = None
        if self._uses_weather:
            if ghi_index_fc is None:
                raise ValueError("ghi_index_fc: model was trained with a weather forecast")
            k_fc = np.repeat(ghi_index_fc, n)
        x = self._features(k, k_fc, hour, self._s_day, o, lead, orient, self._dt_h)
        base = self._base(x)
        k_q = np.stack([base + m.predict(x) for m in self._models]).reshape(-1, horizon, n)
        k_q = np.sort(np.clip(k_q, 0.0, K_MAX), axis=0)
        return k_q * clear[origin + 1 : origin + 1 + horizon][None]
