"""Run a controller over a scenario window on the stepped twin and record the response."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from gridsync.model import physics
from gridsync.sim.accounting import EndState, deferrable_owed_fraction, settle_end_state
from gridsync.sim.controller import Controller, Setpoints
from gridsync.sim.scenario import Scenario
from gridsync.sim.twin import SteppedTwin
from gridsync.storage.cells import cell_for
from gridsync.storage.health import BatteryAgeing, EVPackAgeing


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
    end_state: EndState | None = None
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


def simulate(
    scenario: Scenario,
    controller: Controller,
    on_step: Callable[[int, int], None] | None = None,
    on_setpoints: Callable[[int, Setpoints], None] | None = None,
) -> SimulationResult:
    """Run ``controller`` over the scenario window and record the twin's response.

    ``on_setpoints(step, setpoints)`` sees every step's checked setpoints before they are
    applied (e.g. ``sim.setpoints_csv``)."""
    t0 = time.perf_counter()
    fleet = scenario.fleet
    n, dt = scenario.n_steps, scenario.dt_h
    name = getattr(controller, "name", type(controller).__name__)
    twin = SteppedTwin(scenario)
    battery_start_kwh, temp_start_c = twin.energy_kwh.copy(), twin.temp_c.copy()
    controller.reset(scenario)
    true_fleet = twin.fleet
    # plant-side meters a controller hosts (the DR customers' meters) read each step's record
    plant_meters = getattr(controller, "plant_stepped", None)
    total_capacity = max(float(true_fleet.battery.capacity_kwh.sum()), 1e-9)
    unmet_deferrable = 0.0
    bat_cfg = scenario.config.fleet.battery
    ageing = BatteryAgeing(
        true_fleet.battery,
        cell_for(bat_cfg.chemistry),
        dt,
        bat_cfg.cell_temp_c,
        bat_cfg.warranty_years,
    )
    ev_cfg = scenario.config.fleet.ev
    ev_ageing = EVPackAgeing(
        true_fleet.ev,
        cell_for(ev_cfg.chemistry),
        ev_cfg.battery_kwh,
        dt,
        warranty_years=ev_cfg.warranty_years,
    )

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
    vm = np.zeros((n, scenario.feeder.n_bus), dtype=np.float32)
    loading = np.zeros((n, twin.pf.n_branch), dtype=np.float32)
    failed = np.zeros(n, dtype=bool)
    pv_abs_kvar = np.zeros(n)
    tap_ops = np.zeros(n, dtype=int)
    three_phase = scenario.three_phase is not None
    if three_phase:
        vuf = np.full((n, scenario.feeder.n_bus), np.nan, dtype=np.float32)
        n_branch_3p = len(scenario.three_phase.net.branches.names)
        neutral = np.full((n, n_branch_3p), np.nan, dtype=np.float32)
        vm_phase = np.full((n, scenario.feeder.n_bus, 3), np.nan, dtype=np.float32)

    for i in range(n):
        obs = twin.observe()
        sp = controller.act(obs)
        _check_setpoints(sp, fleet, name)
        if on_setpoints is not None:
            on_setpoints(obs.step, sp)
        step = twin.step
        r = twin.advance(obs, sp)
        if plant_meters is not None:
            plant_meters(r, twin.fleet, twin.energy_kwh)
        faded = ageing.record(twin.energy_kwh)
        if faded is not None:  # a day's fade and resistance growth reach the physics
            twin.fleet = dataclasses.replace(twin.fleet, battery=faded)
        faded_ev = ev_ageing.record(step, twin.delivered_kwh)
        if faded_ev is not None:
            twin.fleet = dataclasses.replace(twin.fleet, ev=faded_ev)
        vm[i], loading[i], failed[i] = r.vm_pu, r.branch_loading_pct, r.pf_failed
        if three_phase and r.vuf_pct is not None:
            vuf[i] = r.vuf_pct
            neutral[i] = r.neutral_current_a
            vm_phase[i] = r.vm_phase_pu
        # Losses of a failed power flow are unknown; the KPIs sum them, so count them as 0.
        rec["losses_kw"][i] = 0.0 if r.pf_failed else r.losses_kw
        rec["feeder_kw"][i], rec["feeder_kvar"][i] = r.feeder_kw, r.feeder_kvar
        rec["battery_kw"][i] = r.battery_kw.sum()
        rec["ev_kw"][i] = r.ev_kw.sum()
        rec["deferrable_kw"][i] = r.deferrable_kw.sum()
        rec["thermal_kw"][i] = r.thermal_kw.sum()
        rec["pv_kw"][i] = r.pv_kw.sum()
        rec["curtailed_kw"][i] = r.curtailed_kw.sum()
        pv_abs_kvar[i] = sum(np.abs(q).sum() for q in (r.pv_kvar, r.battery_kvar) if q is not None)
        tap_ops[i] = r.tap_operations
        rec["base_load_kw"][i] = r.base_load_kw
        rec["battery_soc_frac"][i] = twin.energy_kwh.sum() / total_capacity
        rec["battery_throughput_kwh"][i] = np.abs(r.battery_kw).sum() * dt
        rec["degradation_eur"][i] = r.degradation_eur
        rec["comfort_violation_degree_h"][i] = (
            physics.comfort_violation_c(fleet.thermal, twin.temp_c).sum() * dt
        )
        rec["mean_indoor_temp_c"][i] = twin.temp_c.mean() if len(twin.temp_c) else np.nan
        unmet_deferrable += r.unmet_deferrable_kwh
        if on_step is not None:
            on_step(i + 1, n)

    end = settle_end_state(
        scenario,
        battery_start_kwh,
        twin.energy_kwh,
        twin.delivered_kwh,
        temp_start_c,
        twin.temp_c,
        fleet=true_fleet,
    )
    # appliance jobs still open at the end owe their energy pro rata to the window elapsed
    end_hour = twin.hour(scenario.end_step - 1) + dt
    last_day = twin.deferrable_fleet(scenario.end_step - 1)
    open_jobs, share = deferrable_owed_fraction(last_day, end_hour, n * dt)
    owed_dfr = last_day.energy_kwh * share
    unmet_deferrable += float(np.maximum(owed_dfr - twin.done_kwh, 0.0)[open_jobs].sum())
    return SimulationResult(
        controller=name,
        vm_pu=vm,
        branch_loading_pct=loading,
        pf_failed=failed,
        unmet_ev_kwh_per_session=end.ev_unmet_kwh,
        unmet_deferrable_kwh=unmet_deferrable,
        runtime_s=time.perf_counter() - t0,
        end_state=end,
        extras={
            "battery_health": ageing.report(),
            "ev_health": ev_ageing.report(),
            "pv_abs_kvar": pv_abs_kvar,
            "tap_operations": tap_ops,
            **(
                {"vuf_pct": vuf, "neutral_current_a": neutral, "vm_phase_pu": vm_phase}
                if three_phase
                else {}
            ),
        },
        **rec,
    )
