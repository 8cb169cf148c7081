"""What controllers know about the future: the exogenous-forecast interface and two references.

An ``ExogenousForecast`` covers steps ``step .. step + horizon - 1`` of ``Scenario.index``.
``PerfectForecaster`` reads the truth (for the oracle upper bound); ``NaiveForecaster``
repeats the same time yesterday (the floor any learned forecaster must beat). The forecasting
agent in ``gridsync.forecast`` provides learned forecasters with the same interface.
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
    quantiles: dict[str, dict[float, np.ndarray]] = field(default_factory=dict)

    @property
    def horizon(self) -> int:
        return len(self.outdoor_temp_c)


class ExogenousForecaster(Protocol):
    def forecast(self, scenario, step: int, horizon: int) -> ExogenousForecast: ...


def _clip_horizon(scenario, step: int, horizon: int) -> int:
    return max(0, min(horizon, len(scenario.index) - step))


class PerfectForecaster:
    """The true future (for perfect-foresight benchmarks only)."""

    def forecast(self, scenario, step: int, horizon: int) -> ExogenousForecast:
        h = _clip_horizon(scenario, step, horizon)
        sl = slice(step, step + h)
        return ExogenousForecast(
            base_load_kw=scenario.base_load_kw[sl],
            base_load_kvar=scenario.base_load_kvar[sl],
            pv_per_kwp=scenario.pv_per_kwp[sl],
            outdoor_temp_c=scenario.outdoor_temp_c[sl],
        )


class NaiveForecaster:
    """Seasonal naive: each future step repeats the value one day earlier (known history only).

    Step ``step`` itself is the current, metered step and is returned exactly.
    """

    def forecast(self, scenario, step: int, horizon: int) -> ExogenousForecast:
        h = _clip_horizon(scenario, step, horizon)
        day = scenario.steps_per_day
        k = np.arange(h)
        src = step + k - day * np.ceil(k / day).astype(int)
        src[0] = step
        return ExogenousForecast(
            base_load_kw=scenario.base_load_kw[src],
            base_load_kvar=scenario.base_load_kvar[src],
            pv_per_kwp=scenario.pv_per_kwp[src],
            outdoor_temp_c=scenario.outdoor_temp_c[src],
        )
