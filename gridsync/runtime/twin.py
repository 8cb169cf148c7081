"""A steppable digital twin for the live service: one scenario step per call.

``gridsync.sim.simulator.simulate`` runs a whole window in one loop; the service instead
needs the twin as an agent that applies whatever setpoints arrived on the bus, advances one
step, and reports meter readings and asset states. Both step the same
``gridsync.sim.twin.SteppedTwin``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from gridsync.sim.controller import Observation, Setpoints, observe
from gridsync.sim.scenario import Scenario
from gridsync.sim.telemetry import measure_interval
from gridsync.sim.twin import SteppedTwin

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


def setpoint_sizes(fleet) -> dict[str, int]:
    """How many values each setpoint field of ``fleet`` has (one per asset)."""
    zeros = Setpoints.zeros(fleet)
    return {name: len(getattr(zeros, name)) for name in SETPOINT_FIELDS}


def setpoints_to_dict(sp: Setpoints) -> dict[str, list[float]]:
    return {name: np.asarray(getattr(sp, name), dtype=float).tolist() for name in SETPOINT_FIELDS}


def observation(scenario: Scenario, state: dict[str, Any]) -> Observation:
    """The controller's view of step ``state["step"]`` from a twin state message: device
    states now, grid readings of the interval before (the message's ``vm_pu``,
    ``branch_loading_pct``, ``feeder_kw``) and that interval's load, PV and weather readings
    (``telemetry.measure_interval``; PV as available, the message carries no curtailment)."""
    step = int(state["step"])
    tel = measure_interval(scenario, step - 1)
    as_array = lambda key: None if state.get(key) is None else np.asarray(state[key], float)  # noqa: E731
    tel = replace(
        tel,
        vm_pu=as_array("vm_pu"),
        branch_loading_pct=as_array("branch_loading_pct"),
        feeder_kw=state.get("feeder_kw"),
    )
    return observe(scenario, step, state, tel)


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
    """The shared stepped twin as a service agent's engine: state messages in and out,
    wrapping to the window start so the demo runs on."""

    def __init__(self, scenario: Scenario) -> None:
        self.scenario = scenario
        self.reset()

    def reset(self) -> None:
        self._core = SteppedTwin(self.scenario, loop=True)
        self.last: StepResult | None = None

    @property
    def step_index(self) -> int:
        return self._core.step

    def state(self) -> dict[str, Any]:
        """The twin's state at the start of the current step (a ``telemetry`` message body)."""
        obs, last = self._core.observe(), self.last
        return {
            "kind": "twin",
            "step": obs.step,
            "scenario_time": obs.time.isoformat(),
            "battery_energy_kwh": obs.battery_energy_kwh,
            "ev_delivered_kwh": obs.ev_delivered_kwh,
            "deferrable_done_kwh": obs.deferrable_done_kwh,
            "thermal_temp_c": obs.thermal_temp_c,
            "vm_pu": None if last is None else last.vm_pu,
            "branch_loading_pct": None if last is None else last.branch_loading_pct,
            "feeder_kw": None if last is None else last.feeder_kw,
            "losses_kw": None if last is None else last.losses_kw,
        }

    def step(self, sp: Setpoints) -> StepResult:
        """Apply ``sp`` for the current step, solve the power flow, move on one step."""
        r = self._core.advance(self._core.observe(), sp)
        ok = not r.pf_failed
        self.last = StepResult(
            r.step,
            r.p_bus_kw,
            r.q_bus_kvar,
            r.vm_pu if ok else None,
            r.branch_loading_pct if ok else None,
            r.feeder_kw,
            r.losses_kw if ok else None,
        )
        return self.last

    def meter_readings(
        self, result: StepResult
    ) -> tuple[list[str], list[str], list[str], list[float]]:
        """Per-bus smart-meter readings (p kW, q kvar, v pu) plus the feeder head."""
        return meter_readings(result.p_bus_kw, result.q_bus_kvar, result.vm_pu, result.feeder_kw)


def meter_readings(
    p_bus_kw: np.ndarray, q_bus_kvar: np.ndarray, vm_pu: np.ndarray | None, feeder_kw: float
) -> tuple[list[str], list[str], list[str], list[float]]:
    """Smart-meter readings of one twin step as columns (device ids, quantities, units,
    values): p (kW, load convention) and q (kvar) per bus, v (p.u.) per bus unless the power
    flow failed (``vm_pu`` None), and the feeder-head import (kW)."""
    n = len(p_bus_kw)
    ids = [f"bus-{i}" for i in range(n)]
    dev, qty, unit = ids * 2, ["p"] * n + ["q"] * n, ["kW"] * n + ["kvar"] * n
    val = np.round(p_bus_kw, 4).tolist() + np.round(q_bus_kvar, 4).tolist()
    if vm_pu is not None:
        dev, qty, unit = dev + ids, qty + ["v"] * n, unit + ["pu"] * n
        val += np.round(vm_pu, 5).tolist()
    return dev + ["feeder-head"], qty + ["p"], unit + ["kW"], val + [round(feeder_kw, 3)]
