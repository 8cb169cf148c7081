"""A steppable digital twin for the live service: one scenario step per call.

``gridsync.sim.simulator.simulate`` runs a whole window in one loop; the service instead
needs the twin as an agent that applies whatever setpoints arrived on the bus, advances one
step, and reports meter readings and asset states. The physics and power flow are the same
functions the batch simulator uses.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from gridsync.grid.powerflow import PowerFlowNotConverged
from gridsync.model import physics
from gridsync.sim.controller import Observation, Setpoints
from gridsync.sim.scenario import Scenario

SETPOINT_FIELDS = ("battery_kw", "ev_kw", "deferrable_kw", "thermal_kw", "pv_curtail_kw")


def setpoints_from_dict(data: dict[str, Any], fleet) -> Setpoints:
    """Setpoints from a JSON dict; missing kinds are zero. Raises ValueError naming the field
    on a wrong length or a non-finite value."""
    sp = Setpoints.zeros(fleet)
    for name in SETPOINT_FIELDS:
        if name not in data or data[name] is None:
            continue
        arr = np.asarray(data[name], dtype=float)
        want = len(getattr(sp, name))
        if arr.shape != (want,):
            msg = f"setpoints.{name}: expected {want} values, got shape {arr.shape}"
            raise ValueError(msg)
        if not np.isfinite(arr).all():
            msg = f"setpoints.{name}: contains NaN or infinite values"
            raise ValueError(msg)
        setattr(sp, name, arr)
    return sp


def setpoints_to_dict(sp: Setpoints) -> dict[str, list[float]]:
    return {name: np.asarray(getattr(sp, name), dtype=float).tolist() for name in SETPOINT_FIELDS}


def observation(scenario: Scenario, state: dict[str, Any]) -> Observation:
    """The controller's view of step ``state["step"]`` from a twin state message."""
    step = int(state["step"])
    last_vm = state.get("vm_pu")
    return Observation(
        step=step,
        time=scenario.index[step],
        dt_h=scenario.dt_h,
        battery_energy_kwh=np.asarray(state["battery_energy_kwh"], float),
        ev_active_session=scenario.fleet.ev.active_session(step),
        ev_delivered_kwh=np.asarray(state["ev_delivered_kwh"], float),
        deferrable_done_kwh=np.asarray(state["deferrable_done_kwh"], float),
        thermal_temp_c=np.asarray(state["thermal_temp_c"], float),
        base_load_kw=scenario.base_load_kw[step],
        pv_available_kw=scenario.pv_available_kw(step),
        outdoor_temp_c=float(scenario.outdoor_temp_c[step]),
        hvac_mode=float(scenario.hvac_mode[step]),
        import_price_eur_per_kwh=float(scenario.tariff.import_eur_per_kwh[step]),
        export_price_eur_per_kwh=float(scenario.tariff.export_eur_per_kwh[step]),
        carbon_g_per_kwh=float(scenario.carbon_g_per_kwh[step]),
        last_vm_pu=None if last_vm is None else np.asarray(last_vm, float),
        last_branch_loading_pct=None
        if state.get("branch_loading_pct") is None
        else np.asarray(state["branch_loading_pct"], float),
        last_feeder_kw=state.get("feeder_kw"),
    )


@dataclass
class StepResult:
    step: int
    p_bus_kw: np.ndarray
    q_bus_kvar: np.ndarray
    vm_pu: np.ndarray | None
    branch_loading_pct: np.ndarray | None
    feeder_kw: float
    losses_kw: float | None


class Twin:
    """Asset states + power flow, advanced one step at a time (wrapping to the window start)."""

    def __init__(self, scenario: Scenario) -> None:
        self.scenario = scenario
        self.pf = scenario.powerflow()
        self.reset()

    def reset(self) -> None:
        f = self.scenario.fleet
        self.step_index = self.scenario.start_step
        self.energy_kwh = f.battery.capacity_kwh * f.battery.soc_initial_frac
        self.delivered_kwh = np.zeros(len(f.ev.sessions))
        self.done_kwh = np.zeros(len(f.deferrable))
        self.temp_c = f.thermal.initial_temp_c.astype(float).copy()
        self._v = None
        self.last: StepResult | None = None

    def state(self) -> dict[str, Any]:
        """The twin's state at the start of the current step (a ``telemetry`` message body)."""
        sc, last = self.scenario, self.last
        return {
            "kind": "twin",
            "step": self.step_index,
            "scenario_time": sc.index[self.step_index].isoformat(),
            "battery_energy_kwh": self.energy_kwh,
            "ev_delivered_kwh": self.delivered_kwh,
            "deferrable_done_kwh": self.done_kwh,
            "thermal_temp_c": self.temp_c,
            "vm_pu": None if last is None or last.vm_pu is None else last.vm_pu,
            "branch_loading_pct": None if last is None else last.branch_loading_pct,
            "feeder_kw": None if last is None else last.feeder_kw,
            "losses_kw": None if last is None else last.losses_kw,
        }

    def step(self, sp: Setpoints) -> StepResult:
        sc = self.scenario
        f, n_bus, dt = sc.fleet, sc.feeder.n_bus, sc.dt_h
        step = self.step_index
        now = sc.index[step]
        hour = now.hour + now.minute / 60
        d = f.deferrable
        opens = (d.window_start_h <= hour) & (hour < d.window_end_h)
        opens &= ~((d.window_start_h <= hour - dt) & (hour - dt < d.window_end_h))
        self.done_kwh[opens] = 0.0
        active = f.ev.active_session(step)
        pv_avail = sc.pv_available_kw(step)
        p_bat, self.energy_kwh = physics.battery_step(f.battery, self.energy_kwh, sp.battery_kw, dt)
        p_ev, self.delivered_kwh = physics.ev_step(f.ev, self.delivered_kwh, active, sp.ev_kw, dt)
        p_dfr, self.done_kwh = physics.deferrable_step(d, self.done_kwh, hour, sp.deferrable_kw, dt)
        p_th, self.temp_c = physics.thermal_step(
            f.thermal,
            self.temp_c,
            sp.thermal_kw,
            float(sc.outdoor_temp_c[step]),
            dt,
            float(sc.hvac_mode[step]),
        )
        p_pv = pv_avail - np.clip(sp.pv_curtail_kw, 0.0, pv_avail)

        def bus_sum(bus, values):
            return np.bincount(bus, weights=values, minlength=n_bus)

        p_bus = (
            sc.base_load_kw[step]
            + bus_sum(f.battery.bus, p_bat)
            + bus_sum(f.ev.bus, p_ev)
            + bus_sum(d.bus, p_dfr)
            + bus_sum(f.thermal.bus, p_th)
            - bus_sum(f.pv.bus, p_pv)
        )
        q_bus = sc.base_load_kvar[step]
        try:
            res, self._v = self.pf.solve(p_bus, q_bus, v0=self._v)
            out = StepResult(
                step,
                p_bus,
                q_bus,
                res.vm_pu,
                res.branch_loading_pct,
                float(res.p_slack_kw),
                float(res.losses_kw),
            )
        except PowerFlowNotConverged:
            self._v = None
            out = StepResult(step, p_bus, q_bus, None, None, float(p_bus.sum()), None)
        self.last = out
        self.step_index = step + 1 if step + 1 < sc.end_step else sc.start_step
        return out

    def meter_readings(
        self, result: StepResult
    ) -> tuple[list[str], list[str], list[str], list[float]]:
        """Per-bus smart-meter readings (p kW, q kvar, v pu) plus the feeder head."""
        n = self.scenario.feeder.n_bus
        ids = [f"bus-{i}" for i in range(n)]
        dev, qty, unit, val = [], [], [], []
        dev += ids
        qty += ["p"] * n
        unit += ["kW"] * n
        val += np.round(result.p_bus_kw, 4).tolist()
        dev += ids
        qty += ["q"] * n
        unit += ["kvar"] * n
        val += np.round(result.q_bus_kvar, 4).tolist()
        if result.vm_pu is not None:
            dev += ids
            qty += ["v"] * n
            unit += ["pu"] * n
            val += np.round(result.vm_pu, 5).tolist()
        dev.append("feeder-head")
        qty.append("p")
        unit.append("kW")
        val.append(round(result.feeder_kw, 3))
        return dev, qty, unit, val
