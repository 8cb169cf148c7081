"""What each asset can physically do in the next step, for the safety shield: power ratings,
V2G capability, plugged-in cars, appliance windows, and the state-of-charge bounds."""

from __future__ import annotations

import numpy as np

from gridsync.model import physics
from gridsync.model.assets import Fleet
from gridsync.sim.controller import Observation
from gridsync.sim.forecasts import StepEstimate


def physical_bounds(
    fleet: Fleet, obs: Observation, est: StepEstimate
) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """(lo, hi, rating_lo, rating_hi) per kind: state-aware bounds and pure rating bounds."""
    f, dt = fleet, obs.dt_h
    bat = f.battery
    lo, hi = physics.battery_power_bounds_kw(bat, obs.battery_energy_kwh, dt)
    out = {"battery_kw": (lo, hi, -bat.power_kw, bat.power_kw)}
    ev = f.ev
    active = obs.ev_active_session
    plugged = active >= 0
    s = ev.sessions
    sess = np.where(plugged, active, 0)
    zeros = np.zeros(len(ev))
    if len(s):
        delivered = obs.ev_delivered_kwh[sess]
        can_v2g = ev.v2g & (s.v2g_floor_kwh[sess] > 0)
        p_min = np.where(can_v2g & plugged, -ev.max_power_kw, 0.0)
        p_max = np.where(plugged, ev.max_power_kw, 0.0)
        ch = np.maximum(s.headroom_kwh[sess] - delivered, 0.0) / (ev.efficiency * dt)
        dis = np.maximum(delivered + s.v2g_floor_kwh[sess], 0.0) * ev.efficiency / dt
        out["ev_kw"] = (
            np.where(plugged, np.maximum(p_min, -dis), 0.0),
            np.where(plugged, np.minimum(p_max, ch), 0.0),
            p_min,
            p_max,
        )
    else:
        out["ev_kw"] = (zeros, zeros, zeros, zeros)
    d = f.deferrable
    hour = obs.hour_of_day
    in_window = (d.window_start_h <= hour) & (hour < d.window_end_h)
    remaining = np.maximum(d.energy_kwh - obs.deferrable_done_kwh, 0.0) / dt
    d_hi = np.where(in_window, d.power_kw, 0.0)
    out["deferrable_kw"] = (
        np.zeros(len(d)),
        np.minimum(d_hi, remaining),
        np.zeros(len(d)),
        d_hi,
    )
    th = f.thermal
    out["thermal_kw"] = (np.zeros(len(th)), th.max_power_kw, np.zeros(len(th)), th.max_power_kw)
    pv_avail = est.pv_available_kw
    out["pv_curtail_kw"] = (
        np.zeros(len(pv_avail)),
        pv_avail,
        np.zeros(len(pv_avail)),
        pv_avail,
    )
    return out
