"""The MPC's view of the present: forecasts corrected by the last measured forecast error.

At the start of step t the newest meter reading is of interval m (t-1, or older with a
telemetry latency). The forecast the controller issued earlier for m can be compared with it:
forecast errors of load and PV persist for a while (a cloud bank, a warm evening), so the
error at m, damped by ``decay_per_step`` per step, is added to every later forecast step
(multiplicatively for PV, which falls to zero at night by itself). ``estimate`` gives this
step's load/PV/temperature for the per-step correction and the AC check; ``correct_horizon``
does the same to a whole planning horizon, whose first step then is a nowcast from m.
"""

from __future__ import annotations

import numpy as np

from gridsync.dispatch.horizon import HorizonData, block_mean
from gridsync.sim.controller import Observation
from gridsync.sim.forecasts import ExogenousForecast, StepEstimate

PV_RATIO_MAX = 2.5
PV_MIN_KW = 0.05  # below this a system's forecast is too small to form a ratio


class ErrorPersistence:
    """Remembers what was forecast for each step and persists the last measured error."""

    def __init__(self, scenario, decay_per_step: float) -> None:
        self.scenario = scenario
        self.decay = decay_per_step
        pv = scenario.fleet.pv
        self._pv_to_bus = np.zeros((len(pv), scenario.feeder.n_bus))
        self._pv_to_bus[np.arange(len(pv)), pv.bus] = 1.0
        self._rows: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray, float]] = {}

    def issued(self, step: int, fc: ExogenousForecast) -> None:
        """Record forecast ``fc`` issued at ``step`` (rows are steps ``step ..``)."""
        sc = self.scenario
        pv = fc.pv_per_kwp[:, sc.pv_orientation] * sc.fleet.pv.peak_kw
        for k in range(fc.horizon):
            self._rows[step + k] = (
                fc.base_load_kw[k],
                fc.base_load_kvar[k],
                pv[k],
                float(fc.outdoor_temp_c[k]),
            )
        for s in [s for s in self._rows if s < step - 4 * sc.steps_per_day]:
            del self._rows[s]

    def _error(self, obs: Observation):
        """(load, kvar, PV ratio, PV kW, temperature) error at the newest measured interval, or
        None. PV errors are relative where the forecast was large enough, else additive."""
        tel = obs.telemetry
        row = self._rows.get(tel.step)
        if row is None:
            return None
        load, kvar, pv, temp = row
        relative = pv > PV_MIN_KW
        ratio = np.where(
            relative,
            np.clip(tel.pv_available_kw / np.maximum(pv, PV_MIN_KW), 0.0, PV_RATIO_MAX),
            1.0,
        )
        e_pv = np.where(relative, 0.0, tel.pv_available_kw - pv)
        return (
            tel.base_load_kw - load,
            tel.base_load_kvar - kvar,
            ratio,
            e_pv,
            tel.outdoor_temp_c - temp,
        )

    def estimate(self, obs: Observation) -> StepEstimate | None:
        """This step's load, PV and weather: its latest forecast plus the damped last error
        (the forecast alone before any error was measured; None without a forecast)."""
        row = self._rows.get(obs.step)
        if row is None:
            return None
        load, kvar, pv, temp = row
        err = self._error(obs)
        if err is None:
            return StepEstimate(load, kvar, pv, temp)
        w = self.decay ** (obs.step - obs.telemetry.step)
        e_load, e_kvar, ratio, e_pv, e_temp = err
        return StepEstimate(
            base_load_kw=load + w * e_load,
            base_load_kvar=kvar + w * e_kvar,
            pv_available_kw=np.maximum(pv * (1.0 + w * (ratio - 1.0)) + w * e_pv, 0.0),
            outdoor_temp_c=temp + w * e_temp,
        )

    def correct_horizon(self, hd: HorizonData, obs: Observation) -> None:
        """Add the damped last error to the horizon's inflexible load, PV and temperature."""
        err = self._error(obs)
        if err is None:
            return
        e_load, e_kvar, ratio, e_pv, e_temp = err
        total = int(hd.block_steps.sum())
        w = self.decay ** (hd.step0 + np.arange(total) - obs.telemetry.step)
        pv_old = hd.pv_available_kw
        scale = block_mean(1.0 + w[:, None] * (ratio - 1.0)[None, :], hd.block_steps)
        shift = block_mean(w[:, None] * e_pv[None, :], hd.block_steps)
        pv_new = np.maximum(pv_old * scale + shift, 0.0)
        hd.pv_available_kw = pv_new
        hd.inflexible_kw = (
            hd.inflexible_kw
            + block_mean(w[:, None] * e_load[None, :], hd.block_steps)
            - (pv_new - pv_old) @ self._pv_to_bus
        )
        hd.base_kvar = hd.base_kvar + block_mean(w[:, None] * e_kvar[None, :], hd.block_steps)
        hd.outdoor_temp_c = hd.outdoor_temp_c + block_mean(w * e_temp, hd.block_steps)
