"""Per-step split of virtual battery and heat-pump setpoints onto the assets they pool
(see ``gridsync.dispatch.aggregate``): sequential in time, vectorised over assets."""

from __future__ import annotations

import numpy as np

from gridsync.dispatch.horizon import HorizonData


def split_batteries(hd: HorizonData, group: np.ndarray, net_kw: np.ndarray):
    """Per-step split of each virtual battery's net power (G, H) in proportion to headroom."""
    b = hd.fleet.battery
    H = hd.horizon
    n, g = len(b), net_kw.shape[0]
    c = np.zeros((n, H))
    d = np.zeros((n, H))
    e_path = np.zeros((n, H))
    e = np.asarray(hd.state.battery_energy_kwh, float).copy()
    shortfall_kwh = 0.0
    for t, dt in enumerate(hd.step_h):  # sequential in time, vectorised over assets
        room_c = np.clip((b.energy_max_kwh - e) / (b.efficiency_charge * dt), 0.0, b.power_kw)
        room_d = np.clip((e - b.energy_min_kwh) * b.efficiency_discharge / dt, 0.0, b.power_kw)
        want = net_kw[:, t]
        tot_c = np.bincount(group, weights=room_c, minlength=g)
        tot_d = np.bincount(group, weights=room_d, minlength=g)
        share_c = np.where(tot_c > 0, np.clip(want, 0, None) / np.where(tot_c > 0, tot_c, 1), 0)
        share_d = np.where(tot_d > 0, np.clip(-want, 0, None) / np.where(tot_d > 0, tot_d, 1), 0)
        c[:, t] = room_c * np.minimum(share_c[group], 1.0)
        d[:, t] = room_d * np.minimum(share_d[group], 1.0)
        shortfall_kwh += float(
            (np.clip(want, 0, None) - np.minimum(np.clip(want, 0, None), tot_c)).sum() * dt
            + (np.clip(-want, 0, None) - np.minimum(np.clip(-want, 0, None), tot_d)).sum() * dt
        )
        e = e + b.efficiency_charge * c[:, t] * dt - d[:, t] * dt / b.efficiency_discharge
        e_path[:, t] = e
    return c, d, e_path, shortfall_kwh


def split_thermal(hd: HorizonData, group: np.ndarray, power_kw: np.ndarray) -> np.ndarray:
    """Per-step split of each virtual heat pump's power (G, H): first what each house needs to
    stay inside its own comfort band next step (the repair), then the rest of the virtual
    power in proportion to the houses' remaining power headroom."""
    th = hd.fleet.thermal
    n, g = len(th), power_kw.shape[0]
    out = np.zeros((n, hd.horizon))
    temp = np.asarray(hd.state.thermal_temp_c, float).copy()
    tau_h = th.resistance_c_per_kw * th.capacitance_kwh_per_c
    for t, dt in enumerate(hd.step_h):  # sequential in time, vectorised over houses
        a = np.exp(-dt / tau_h)
        mode = hd.hvac_mode[t]
        gain = (1.0 - a) * th.resistance_c_per_kw * th.cop * mode  # degC per kW
        bound = th.comfort_min_c if mode > 0 else th.comfort_max_c
        free = a * temp + (1.0 - a) * hd.outdoor_temp_c[t]  # temperature with the pump off
        need = np.clip((bound - free) / np.where(gain != 0, gain, np.inf), 0.0, th.max_power_kw)
        rest = power_kw[:, t] - np.bincount(group, weights=need, minlength=g)
        room = th.max_power_kw - need
        tot = np.bincount(group, weights=room, minlength=g)
        share = np.clip(rest, 0.0, None) / np.where(tot > 0, tot, 1.0)
        out[:, t] = need + room * np.minimum(share[group], 1.0)
        temp = free + gain * out[:, t]
    return out
