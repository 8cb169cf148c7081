"""The digital twin's step loop: controller setpoints -> asset physics -> AC power flow -> records."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from gridsync.grid.powerflow import PowerFlowNotConverged
from gridsync.model import physics
from gridsync.sim.controller import Controller, Observation, Setpoints
from gridsync.sim.scenario import Scenario

log = logging.getLogger(__name__)


class SetpointError(ValueError):
    """A controller returned setpoints of the wrong shape or with non-finite values."""


@dataclass
class SimulationResult:
    """Per-step records of one run (arrays over the simulated window) and end-of-run totals."""

    controller: str
    feeder_kw: np.ndarray
    feeder_kvar: np.ndarray
    losses_kw: np.ndarray
    vm_pu: np.ndarray
    branch_loading_pct: np.ndarray
    battery_kw: np.ndarray
    ev_kw: np.ndarray
    deferrable_kw: np.ndarray
    thermal_kw: np.ndarray
    pv_kw: np.ndarray
    curtailed_kw: np.ndarray
    base_load_kw: np.ndarray
    battery_soc_frac: np.ndarray
    battery_throughput_kwh: np.ndarray
    degradation_eur: np.ndarray
    comfort_violation_degree_h: np.ndarray
    mean_indoor_temp_c: np.ndarray
    pf_failed: np.ndarray
    unmet_ev_kwh_per_session: np.ndarray
    unmet_deferrable_kwh: float
    runtime_s: float
    extras: dict = field(default_factory=dict)

    @property
    def n_steps(self) -> int:
        return len(self.feeder_kw)


def _check_setpoints(sp: Setpoints, fleet, name: str) -> None:
    expected = {
        "battery_kw": len(fleet.battery),
        "ev_kw": len(fleet.ev),
        "deferrable_kw": len(fleet.deferrable),
        "thermal_kw": len(fleet.thermal),
        "pv_curtail_kw": len(fleet.pv),
    }
    for attr, n in expected.items():
        arr = np.asarray(getattr(sp, attr))
        if arr.shape != (n,):
            msg = f"controller {name!r}: Setpoints.{attr} has shape {arr.shape}, expected ({n},)"
            raise SetpointError(msg)
        if not np.all(np.isfinite(arr)):
            msg = f"controller {name!r}: Setpoints.{attr} contains NaN or infinite values"
            raise SetpointError(msg)


def _bus_sum(bus: np.ndarray, values: np.ndarray, n_bus: int) -> np.ndarray:
    return np.bincount(bus, weights=values, minlength=n_bus)


def simulate(
    scenario: Scenario,
    controller: Controller,
    on_step: Callable[[int, int], None] | None = None,
) -> SimulationResult:
    """Run ``controller`` over the scenario window and record the twin's response."""
    t0 = time.perf_counter()
    fleet = scenario.fleet
    feeder = scenario.feeder
    pf = scenario.powerflow()
    n, n_bus, dt = scenario.n_steps, feeder.n_bus, scenario.dt_h
    bat, ev, dfr, th, pv = fleet.battery, fleet.ev, fleet.deferrable, fleet.thermal, fleet.pv
    controller.reset(scenario)

    energy = bat.capacity_kwh * bat.soc_initial_frac
    delivered = np.zeros(len(ev.sessions))
    done = np.zeros(len(dfr))
    temp = th.initial_temp_c.astype(float).copy()
    unmet_deferrable = 0.0
    total_capacity = max(float(bat.capacity_kwh.sum()), 1e-9)

    rec = {
        k: np.zeros(n)
        for k in (
            "feeder_kw",
            "feeder_kvar",
            "losses_kw",
            "battery_kw",
            "ev_kw",
            "deferrable_kw",
            "thermal_kw",
            "pv_kw",
            "curtailed_kw",
            "base_load_kw",
            "battery_soc_frac",
            "battery_throughput_kwh",
            "degradation_eur",
            "comfort_violation_degree_h",
            "mean_indoor_temp_c",
        )
    }
    vm = np.zeros((n, n_bus), dtype=np.float32)
    loading = np.zeros((n, pf.n_branch), dtype=np.float32)
    failed = np.zeros(n, dtype=bool)
    v = None
    last = (None, None, None)

    for i in range(n):
        step = scenario.start_step + i
        now = scenario.index[step]
        hour = now.hour + now.minute / 60 + now.second / 3600
        prev_hour = hour - dt
        opens = (
            (dfr.window_start_h <= hour)
            & (hour < dfr.window_end_h)
            & ~((dfr.window_start_h <= prev_hour) & (prev_hour < dfr.window_end_h))
        )
        done[opens] = 0.0
        active = ev.active_session(step)
        pv_avail = scenario.pv_available_kw(step)
        t_out = float(scenario.outdoor_temp_c[step])
        mode = float(scenario.hvac_mode[step])
        obs = Observation(
            step=step,
            time=now,
            dt_h=dt,
            battery_energy_kwh=energy,
            ev_active_session=active,
            ev_delivered_kwh=delivered,
            deferrable_done_kwh=done,
            thermal_temp_c=temp,
            base_load_kw=scenario.base_load_kw[step],
            pv_available_kw=pv_avail,
            outdoor_temp_c=t_out,
            hvac_mode=mode,
            import_price_eur_per_kwh=float(scenario.tariff.import_eur_per_kwh[step]),
            export_price_eur_per_kwh=float(scenario.tariff.export_eur_per_kwh[step]),
            carbon_g_per_kwh=float(scenario.carbon_g_per_kwh[step]),
            last_vm_pu=last[0],
            last_branch_loading_pct=last[1],
            last_feeder_kw=last[2],
        )
        sp = controller.act(obs)
        _check_setpoints(sp, fleet, getattr(controller, "name", type(controller).__name__))

        p_bat, energy_new = physics.battery_step(bat, energy, sp.battery_kw, dt)
        p_ev, delivered = physics.ev_step(ev, delivered, active, sp.ev_kw, dt)
        p_dfr, done = physics.deferrable_step(dfr, done, hour, sp.deferrable_kw, dt)
        p_th, temp = physics.thermal_step(th, temp, sp.thermal_kw, t_out, dt, mode)
        curtail = np.clip(sp.pv_curtail_kw, 0.0, pv_avail)
        p_pv = pv_avail - curtail

        closes = (
            (dfr.window_start_h <= hour)
            & (hour < dfr.window_end_h)
            & ~((dfr.window_start_h <= hour + dt) & (hour + dt < dfr.window_end_h))
        )
        unmet_deferrable += float(np.maximum(dfr.energy_kwh - done, 0.0)[closes].sum())

        p_bus = (
            scenario.base_load_kw[step]
            + _bus_sum(bat.bus, p_bat, n_bus)
            + _bus_sum(ev.bus, p_ev, n_bus)
            + _bus_sum(dfr.bus, p_dfr, n_bus)
            + _bus_sum(th.bus, p_th, n_bus)
            - _bus_sum(pv.bus, p_pv, n_bus)
        )
        try:
            res, v = pf.solve(p_bus, scenario.base_load_kvar[step], v0=v)
            vm[i], loading[i] = res.vm_pu, res.branch_loading_pct
            rec["feeder_kw"][i], rec["feeder_kvar"][i] = res.p_slack_kw, res.q_slack_kvar
            rec["losses_kw"][i] = res.losses_kw
            last = (res.vm_pu, res.branch_loading_pct, res.p_slack_kw)
        except PowerFlowNotConverged as err:
            log.warning("step %s: %s", now, err)
            failed[i] = True
            vm[i], loading[i] = np.nan, np.nan
            rec["feeder_kw"][i] = float(p_bus.sum())
            v = None

        throughput = np.abs(p_bat) * dt
        rec["battery_kw"][i] = p_bat.sum()
        rec["ev_kw"][i] = p_ev.sum()
        rec["deferrable_kw"][i] = p_dfr.sum()
        rec["thermal_kw"][i] = p_th.sum()
        rec["pv_kw"][i] = p_pv.sum()
        rec["curtailed_kw"][i] = curtail.sum()
        rec["base_load_kw"][i] = scenario.base_load_kw[step].sum()
        rec["battery_soc_frac"][i] = energy_new.sum() / total_capacity
        rec["battery_throughput_kwh"][i] = throughput.sum()
        rec["degradation_eur"][i] = float(throughput @ bat.degradation_eur_per_kwh)
        rec["comfort_violation_degree_h"][i] = physics.comfort_violation_c(th, temp).sum() * dt
        rec["mean_indoor_temp_c"][i] = temp.mean() if len(temp) else np.nan
        energy = energy_new
        if on_step is not None:
            on_step(i + 1, n)

    s = ev.sessions
    in_window = (s.arrival_step >= scenario.start_step) & (s.departure_step <= scenario.end_step)
    unmet_ev = np.where(in_window, np.maximum(s.energy_need_kwh - delivered, 0.0), 0.0)
    return SimulationResult(
        controller=getattr(controller, "name", type(controller).__name__),
        vm_pu=vm,
        branch_loading_pct=loading,
        pf_failed=failed,
        unmet_ev_kwh_per_session=unmet_ev,
        unmet_deferrable_kwh=unmet_deferrable,
        runtime_s=time.perf_counter() - t0,
        **rec,
    )
