"""Microgrid islanding of a feeder section with a grid-forming battery, PV and dispatchable DG.

When the grid cannot re-energise a microgrid section after a fault, its point-of-common-coupling
switches (remote, at the section's boundary) open and the battery forms the island. Loads are
admitted in priority order (then smallest first) only if, over the forecast outage duration, the
battery can cover the hourly deficit (served load minus PV minus dispatchable DG at rating)
within its power rating and without falling below its reserve state of charge: the SoC is managed
to ride through the forecast duration rather than serving everything until it runs out. The
island is then run over the actual duration in 15-minute steps; if the outage outlasts the
forecast and the battery reaches its reserve, loads are shed lowest priority first. On grid
return a resynchronisation check compares the grid-side voltage at the coupling point with what
the grid-forming inverter can match (IEEE 1547-2018 Table 39 limits for its rating).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gridsync.resilience.feeder import Conditions, Microgrid, SwitchableFeeder

STEP_H = 0.25
RESERVE_SOC = 0.10
ROUND_TRIP_EFF = 0.90
INVERTER_V_RANGE_PU = (0.95, 1.05)


def sync_limits(rating_kva: float) -> tuple[float, float, float]:
    """IEEE 1547-2018 Table 39: (frequency Hz, voltage %, angle deg) limits for paralleling."""
    if rating_kva <= 500:
        return 0.3, 10.0, 20.0
    if rating_kva <= 1500:
        return 0.2, 5.0, 15.0
    return 0.1, 3.0, 10.0


@dataclass
class IslandResult:
    load_positions: np.ndarray      # indices into feeder.load_index of the section's loads
    served_h: np.ndarray            # hours each load was supplied by the island
    admitted: np.ndarray            # admitted at island start
    soc_start: float
    soc_end: float
    energy_served_kwh: float
    resync_ok: bool | None = None
    resync_delta_v_percent: float | None = None


@dataclass(frozen=True)
class MicrogridAssets:
    load_positions: np.ndarray
    pv_kwp: float
    dg_kw: float
    battery_kw: float
    battery_kwh: float


def microgrid_assets(feeder: SwitchableFeeder, mg: Microgrid) -> MicrogridAssets:
    net = feeder.net
    in_mg = np.isin(net.sgen.bus.to_numpy(), mg.buses)
    pv = (net.sgen.type.to_numpy() == "PV") & in_mg
    dg = ~np.isin(net.sgen.type.to_numpy(), ["PV", "WP"]) & in_mg
    bat = net.storage.loc[net.storage.name == mg.battery].iloc[0]
    return MicrogridAssets(
        load_positions=np.flatnonzero(np.isin(feeder.load_bus, mg.buses)),
        pv_kwp=float(net.sgen.p_mw.to_numpy()[pv].sum() * 1000.0),
        dg_kw=float(net.sgen.p_mw.to_numpy()[dg].sum() * 1000.0),
        battery_kw=float(bat.p_mw * 1000.0),
        battery_kwh=mg.battery_energy_kwh,
    )


def _series(feeder: SwitchableFeeder, cond: Conditions, assets: MicrogridAssets, start_h: float,
            duration_h: float) -> tuple[np.ndarray, np.ndarray]:
    """Per 15-min step: demand of each section load (kW) and PV + DG available (kW)."""
    steps = max(1, int(np.ceil(duration_h / STEP_H)))
    hours = (start_h + STEP_H * np.arange(steps)).astype(int) % 8760
    pos = assets.load_positions
    peak_kw = feeder.net.load.p_mw.to_numpy()[feeder.load_index[pos]] * 1000.0
    shape = np.where(feeder.commercial[pos][None, :], cond.commercial_pu[hours][:, None],
                     cond.residential_pu[hours][:, None])
    supply = assets.pv_kwp * cond.pv_per_kwp[hours] + assets.dg_kw
    return peak_kw[None, :] * shape, supply


def _battery_run(demand_kw: np.ndarray, supply_kw: np.ndarray, soc: float, assets: MicrogridAssets,
                 admitted: np.ndarray, order: np.ndarray) -> tuple[np.ndarray, float, float]:
    """Run the island; returns (served steps per load, final SoC, energy served kWh)."""
    served_steps = np.zeros(demand_kw.shape[1])
    on = admitted.copy()
    energy = 0.0
    e_min = RESERVE_SOC * assets.battery_kwh
    e = soc * assets.battery_kwh
    for k in range(demand_kw.shape[0]):
        while True:
            net_kw = demand_kw[k, on].sum() - supply_kw[k]
            discharge = max(net_kw, 0.0)
            if discharge <= assets.battery_kw and e - discharge * STEP_H >= e_min - 1e-9:
                break
            live = [i for i in order[::-1] if on[i]]
            if not live:
                break
            on[live[0]] = False
        net_kw = demand_kw[k, on].sum() - supply_kw[k]
        if net_kw >= 0:
            e -= min(net_kw, assets.battery_kw) * STEP_H
        else:
            e = min(assets.battery_kwh, e + min(-net_kw, assets.battery_kw) * STEP_H * ROUND_TRIP_EFF)
        served_steps += on
        energy += demand_kw[k, on].sum() * STEP_H
    return served_steps, e / assets.battery_kwh, energy


def run_island(feeder: SwitchableFeeder, cond: Conditions, mg: Microgrid, start_h: float,
               forecast_h: float, actual_h: float, soc: float) -> IslandResult:
    """Admit loads for the forecast duration, then operate the island for the actual one."""
    assets = microgrid_assets(feeder, mg)
    pos = assets.load_positions
    demand_f, supply_f = _series(feeder, cond, assets, start_h, forecast_h)
    pr = feeder.priority[pos]
    order = np.lexsort((demand_f.mean(axis=0), -pr))  # high priority first, then small first
    admitted = np.zeros(len(pos), dtype=bool)
    for i in order:
        trial = admitted.copy()
        trial[i] = True
        served, _, _ = _battery_run(demand_f, supply_f, soc, assets, trial, order)
        if served[i] >= demand_f.shape[0] - 1e-9 and all(served[trial] >= demand_f.shape[0] - 1e-9):
            admitted = trial
    demand, supply = _series(feeder, cond, assets, start_h, actual_h)
    served, soc_end, energy = _battery_run(demand, supply, soc, assets, admitted, order)
    served_h = np.minimum(served * STEP_H, actual_h)
    return IslandResult(pos, served_h, admitted, soc, soc_end, energy)


def resync_check(result: IslandResult, grid_vm_pu: float, battery_kva: float) -> IslandResult:
    """Record whether the inverter can match the grid voltage within the 1547 limits."""
    _, dv_limit, _ = sync_limits(battery_kva)
    island_v = float(np.clip(grid_vm_pu, *INVERTER_V_RANGE_PU))
    dv = abs(grid_vm_pu - island_v) * 100.0
    result.resync_ok = bool(np.isfinite(grid_vm_pu) and dv <= dv_limit)
    result.resync_delta_v_percent = dv
    return result
