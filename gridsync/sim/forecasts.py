"""What controllers know about the future: the exogenous-forecast interface and references.

An ``ExogenousForecast`` issued at ``step`` covers steps ``step .. step + horizon - 1`` of
``Scenario.index`` and uses only data before ``step`` (step itself is not measured yet).
``NaiveForecaster`` repeats the same time yesterday (the floor any learned forecaster must
beat); ``nowcast`` estimates the current step from the newest telemetry;
``carbon_day_ahead`` is the grid's carbon signal as published the day before.
``PerfectForecaster`` reads the truth: only the oracle (a perfect-foresight bound) uses it.
The forecasting agent in ``gridsync.forecast`` provides learned forecasters with the same
interface.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np


@dataclass
class ExogenousForecast:
    """P50 forecasts of what no controller decides, plus optional quantile bands.

    ``quantiles`` maps e.g. ``"base_load_kw"`` to ``{0.1: array, 0.9: array}`` shaped like the P50.
    """

    base_load_kw: np.ndarray  # (H, n_bus)
    base_load_kvar: np.ndarray  # (H, n_bus)
    pv_per_kwp: np.ndarray  # (H, n_orientations), multiply by PV peak kW
    outdoor_temp_c: np.ndarray  # (H,)
    carbon_g_per_kwh: np.ndarray | None = None  # (H,); None = ``carbon_day_ahead``
    quantiles: dict[str, dict[float, np.ndarray]] = field(default_factory=dict)

    @property
    def horizon(self) -> int:
        return len(self.outdoor_temp_c)


class ExogenousForecaster(Protocol):
    def forecast(self, scenario, step: int, horizon: int) -> ExogenousForecast: ...


def _clip_horizon(scenario, step: int, horizon: int) -> int:
    return max(0, min(horizon, len(scenario.index) - step))


def seasonal_source(step: int, horizon: int, steps_per_day: int) -> np.ndarray:
    """For each of ``step .. step + horizon - 1``: the latest step before ``step`` at the same
    time of day (a whole number of days earlier)."""
    k = np.arange(horizon)
    return step + k - steps_per_day * ((k // steps_per_day) + 1)


def carbon_day_ahead(scenario, step: int, horizon: int) -> np.ndarray:
    """The grid carbon intensity of ``step ..`` as a day-ahead signal issued before ``step``:
    the intensity measured at the same time of day one (or more) days earlier. The scenario's
    series is modelled from realised irradiance, so its future is not known at ``step``."""
    h = _clip_horizon(scenario, step, horizon)
    src = seasonal_source(step, h, scenario.steps_per_day)
    return np.asarray(scenario.carbon_g_per_kwh[np.maximum(src, 0)], float)


class PerfectForecaster:
    """The true future, carbon included. For the oracle's perfect-foresight bound only."""

    def forecast(self, scenario, step: int, horizon: int) -> ExogenousForecast:
        h = _clip_horizon(scenario, step, horizon)
        sl = slice(step, step + h)
        return ExogenousForecast(
            base_load_kw=scenario.base_load_kw[sl],
            base_load_kvar=scenario.base_load_kvar[sl],
            pv_per_kwp=scenario.pv_per_kwp[sl],
            outdoor_temp_c=scenario.outdoor_temp_c[sl],
            carbon_g_per_kwh=scenario.carbon_g_per_kwh[sl],
        )


class NaiveForecaster:
    """Seasonal naive: each step repeats the latest value measured at the same time of day
    (yesterday's for the next 24 h), so nothing at or after the issue step is read."""

    def forecast(self, scenario, step: int, horizon: int) -> ExogenousForecast:
        h = _clip_horizon(scenario, step, horizon)
        src = seasonal_source(step, h, scenario.steps_per_day)
        if h and src[0] < 0:
            msg = f"seasonal-naive forecast at step {step} needs a day of history before it"
            raise ValueError(msg)
        return ExogenousForecast(
            base_load_kw=scenario.base_load_kw[src],
            base_load_kvar=scenario.base_load_kvar[src],
            pv_per_kwp=scenario.pv_per_kwp[src],
            outdoor_temp_c=scenario.outdoor_temp_c[src],
            carbon_g_per_kwh=scenario.carbon_g_per_kwh[src],
        )


@dataclass
class StepEstimate:
    """The current step's uncontrolled quantities as estimated at its start (kW per bus /
    per PV system, degC)."""

    base_load_kw: np.ndarray
    base_load_kvar: np.ndarray
    pv_available_kw: np.ndarray
    outdoor_temp_c: float


def nowcast(scenario, obs) -> StepEstimate:
    """This step from the newest telemetry (interval m = ``obs.telemetry.step``), moved along
    the daily shape: x(t) ~ x(m) + x(t - 1 day) - x(m - 1 day). Reads the telemetry and the
    measured history a day back only."""
    tel, t = obs.telemetry, obs.step
    day = scenario.steps_per_day
    if tel.step - day < 0:
        return StepEstimate(
            tel.base_load_kw, tel.base_load_kvar, tel.pv_available_kw, tel.outdoor_temp_c
        )
    a, b = t - day, tel.step - day
    pv = tel.pv_available_kw + scenario.pv_available_kw(a) - scenario.pv_available_kw(b)
    return StepEstimate(
        base_load_kw=tel.base_load_kw + scenario.base_load_kw[a] - scenario.base_load_kw[b],
        base_load_kvar=tel.base_load_kvar + scenario.base_load_kvar[a] - scenario.base_load_kvar[b],
        pv_available_kw=np.maximum(pv, 0.0),
        outdoor_temp_c=float(
            tel.outdoor_temp_c + scenario.outdoor_temp_c[a] - scenario.outdoor_temp_c[b]
        ),
    )
