"""Feeder-head outlook: forecast band and the controller's planned dispatch for the next hours.

The exogenous part comes from a forecaster (seasonal naive by default: the same time
yesterday). The band is that forecast plus the 10th/90th percentile of the naive forecast's
own errors on the feeder total over the scenario's history, so its width is measured, not
assumed. The planned flexible load is the controller's published plan when it has one (the
MPC's ``last_plan``); otherwise the controller is rolled forward on the forecast with the
asset physics (no power flow, so losses are not included).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from gridsync.model import physics
from gridsync.sim.controller import Observation, observe
from gridsync.sim.forecasts import ExogenousForecaster, NaiveForecaster
from gridsync.sim.telemetry import Telemetry


@dataclass
class Outlook:
    """Per future step: times, forecast inflexible net load and planned flexible load (kW)."""

    times: list[str]
    inflexible_kw: np.ndarray
    planned_flexible_kw: np.ndarray
    band_low_kw: np.ndarray
    band_high_kw: np.ndarray

    @property
    def feeder_kw(self) -> np.ndarray:
        return self.inflexible_kw + self.planned_flexible_kw


def naive_error_quantiles(scenario, q_low: float = 0.1, q_high: float = 0.9) -> tuple[float, float]:
    """Quantiles of (actual - same time yesterday) of the feeder's net inflexible load (kW),
    over the history before the simulated window."""
    day = scenario.steps_per_day
    end = scenario.start_step
    if end <= day:
        return 0.0, 0.0
    total = scenario.net_inflexible_kw(slice(0, end)).sum(axis=1)
    err = total[day:] - total[:-day]
    return float(np.quantile(err, q_low)), float(np.quantile(err, q_high))


def outlook(
    scenario,
    controller,
    obs: Observation,
    horizon: int,
    error_quantiles: tuple[float, float],
    forecaster: ExogenousForecaster | None = None,
) -> Outlook:
    """Forecast and plan from ``obs.step + 1`` for ``horizon`` steps (fewer at the data's end)."""
    forecaster = forecaster or NaiveForecaster()
    step0 = obs.step + 1
    fc = forecaster.forecast(scenario, step0, horizon)
    h = fc.horizon
    f = scenario.fleet
    pv_by_bus = np.zeros((h, scenario.feeder.n_bus))
    weights = np.zeros((fc.pv_per_kwp.shape[-1], scenario.feeder.n_bus))
    np.add.at(weights, (scenario.pv_orientation, f.pv.bus), f.pv.peak_kw)
    pv_by_bus = fc.pv_per_kwp @ weights
    inflexible = fc.base_load_kw.sum(axis=1) - pv_by_bus.sum(axis=1)

    times = [pd.Timestamp(t).isoformat() for t in scenario.index[step0 : step0 + h]]
    lo, hi = error_quantiles
    plan = getattr(controller, "last_plan", None)
    if plan is not None and hasattr(plan, "covers"):
        planned = np.full(h, np.nan)
        for k in range(h):
            if plan.covers(step0 + k):
                planned[k] = sum(float(v.sum()) for v in plan.row(step0 + k).values())
        centre = inflexible + planned
        return Outlook(times, inflexible, planned, centre + lo, centre + hi)

    energy = obs.battery_energy_kwh.copy()
    delivered = obs.ev_delivered_kwh.copy()
    done = obs.deferrable_done_kwh.copy()
    temp = obs.thermal_temp_c.copy()
    dt = scenario.dt_h
    planned = np.zeros(h)
    telemetry = obs.telemetry
    for k in range(h):
        step = step0 + k
        t = scenario.index[step]
        hour = t.hour + t.minute / 60
        prev = hour - dt
        d = f.deferrable
        opens = (
            (d.window_start_h <= hour)
            & (hour < d.window_end_h)
            & ~((d.window_start_h <= prev) & (prev < d.window_end_h))
        )
        done[opens] = 0.0
        pv_avail = fc.pv_per_kwp[k][scenario.pv_orientation] * f.pv.peak_kw
        states = {
            "battery_energy_kwh": energy,
            "ev_delivered_kwh": delivered,
            "deferrable_done_kwh": done,
            "thermal_temp_c": temp,
        }
        o = observe(scenario, step, states, telemetry)
        # the rolled-forward controller "measures" this forecast step next
        telemetry = Telemetry(
            step,
            fc.base_load_kw[k],
            fc.base_load_kvar[k],
            pv_avail,
            pv_avail,
            float(fc.outdoor_temp_c[k]),
        )
        sp = controller.act(o)
        p_bat, energy = physics.battery_step(f.battery, energy, sp.battery_kw, dt)
        p_ev, delivered = physics.ev_step(f.ev, delivered, o.ev_active_session, sp.ev_kw, dt)
        p_dfr, done = physics.deferrable_step(d, done, hour, sp.deferrable_kw, dt)
        p_th, temp = physics.thermal_step(
            f.thermal, temp, sp.thermal_kw, float(fc.outdoor_temp_c[k]), dt, o.hvac_mode
        )
        curtail = np.clip(sp.pv_curtail_kw, 0.0, pv_avail).sum()
        planned[k] = p_bat.sum() + p_ev.sum() + p_dfr.sum() + p_th.sum() + curtail
    centre = inflexible + planned
    return Outlook(times, inflexible, planned, centre + lo, centre + hi)
