"""The digital twin advanced one interval at a time: setpoints -> asset physics -> AC power flow.

Every loop in GridSync steps this one class: the batch simulator (``simulate``), the operator
console (approvals and overrides sit between ``observe()`` and ``advance()``) and the live
service (setpoints arrive on the bus). So physics, deferrable windows and power-flow failure
handling are the same wherever a plan is judged.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from gridsync.grid.powerflow import PowerFlowInputError, PowerFlowNotConverged
from gridsync.grid.taps import TapModels
from gridsync.grid.threephase.feeder import branch_order, worst_phase_pu
from gridsync.grid.threephase.solver import ThreePhaseNotConverged
from gridsync.model import physics
from gridsync.model.inverter import UNITY
from gridsync.sim.controller import Observation, Setpoints, observe
from gridsync.sim.inverters import kva_limited_kvar, solve_with_inverters
from gridsync.sim.plant import CommandDelay
from gridsync.sim.scenario import Scenario
from gridsync.sim.telemetry import TelemetryLink

log = logging.getLogger(__name__)


@dataclass
class StepRecord:
    """What happened in one step (kW, load convention; ``vm_pu``/loading NaN if no PF)."""

    step: int
    feeder_kw: float
    feeder_kvar: float
    losses_kw: float
    p_bus_kw: np.ndarray
    q_bus_kvar: np.ndarray
    vm_pu: np.ndarray
    branch_loading_pct: np.ndarray
    battery_kw: np.ndarray
    ev_kw: np.ndarray
    deferrable_kw: np.ndarray
    thermal_kw: np.ndarray
    pv_kw: np.ndarray
    curtailed_kw: np.ndarray
    base_load_kw: float
    degradation_eur: float  # battery throughput and V2G discharge wear
    unmet_deferrable_kwh: float
    pf_failed: bool
    vm_phase_pu: np.ndarray | None = None  # three-phase twin: (n_bus, 3) phase voltages
    vuf_pct: np.ndarray | None = None  # three-phase twin: voltage unbalance factor per bus
    neutral_current_a: np.ndarray | None = None  # three-phase twin: residual current per branch
    pv_kvar: np.ndarray | None = None  # reactive power each PV inverter injects (kvar)
    battery_kvar: np.ndarray | None = None  # reactive power each battery inverter injects
    tap_operations: int = 0  # tap changes the feeder transformer's OLTC made this step
    tap_pos: int | None = None  # its position after them (None without an OLTC)


def bus_sum(bus: np.ndarray, values: np.ndarray, n_bus: int) -> np.ndarray:
    """Per-bus sum of per-asset ``values`` (assets located by ``bus``)."""
    return np.bincount(bus, weights=values, minlength=n_bus)


def flexible_bus_kw(fleet, rec: StepRecord) -> np.ndarray:
    """Per-bus power of the flexible assets in ``rec`` (batteries, EVs, appliances, heat
    pumps; kW, load convention): what their own device telemetry reports."""
    n_bus = len(rec.p_bus_kw)
    return (
        bus_sum(fleet.battery.bus, rec.battery_kw, n_bus)
        + bus_sum(fleet.ev.bus, rec.ev_kw, n_bus)
        + bus_sum(fleet.deferrable.bus, rec.deferrable_kw, n_bus)
        + bus_sum(fleet.thermal.bus, rec.thermal_kw, n_bus)
    )


def _in_window(dfr, hour: float) -> np.ndarray:
    return (dfr.window_start_h <= hour) & (hour < dfr.window_end_h)


def _three_phase_branch_order(scenario: Scenario, pf) -> np.ndarray | None:
    """Positions of the balanced model's branches in the three-phase network (None when the
    scenario is balanced or the branch lists differ: loading then stays balanced)."""
    if scenario.three_phase is None:
        return None
    order = branch_order(scenario.three_phase, pf.branch_names)
    if order is None:
        log.warning("three-phase branches differ from the balanced model's: loading stays balanced")
    return order


class SteppedTwin:
    """Asset states and the power flow of ``scenario``, advanced on demand from ``step``.

    ``loop=True`` wraps from the window's end back to its start, keeping the asset states
    (the live demo runs forever over a few days of profiles).
    """

    def __init__(self, scenario: Scenario, step: int | None = None, loop: bool = False) -> None:
        self.scenario = scenario
        self.pf = scenario.powerflow()
        self.loop = loop
        self.step = scenario.start_step if step is None else int(step)
        if not scenario.start_step <= self.step < scenario.end_step:
            msg = (
                f"start step {self.step} is outside the scenario window "
                f"[{scenario.start_step}, {scenario.end_step})"
            )
            raise ValueError(msg)
        self.plant = scenario.plant
        self.fleet = scenario.fleet if self.plant is None else self.plant.fleet
        latency = 0 if self.plant is None else self.plant.config.command_latency_steps
        self._delay = CommandDelay(latency)
        self._deferrable_day: tuple[int, object] = (-1, None)
        f = self.fleet
        self.energy_kwh = f.battery.capacity_kwh * f.battery.soc_initial_frac
        self.delivered_kwh = np.zeros(len(f.ev.sessions))
        self.done_kwh = np.zeros(len(f.deferrable))
        self.temp_c = f.thermal.initial_temp_c.astype(float).copy()
        self._v = None
        self.last: StepRecord | None = None
        self.telemetry = TelemetryLink(scenario)
        self._branch_order = _three_phase_branch_order(scenario, self.pf)
        self._pv_kvar = np.zeros(len(self.fleet.pv))
        self.tap_changer, self._tap_ops = None, 0
        oltc = scenario.config.grid.oltc
        if oltc.enabled:
            if scenario.three_phase is not None:
                msg = (
                    "grid.oltc needs the balanced twin (grid.phases = 1): taps are not in the "
                    "three-phase model yet"
                )
                raise ValueError(msg)
            self._taps = TapModels(scenario.feeder, oltc)
            self.tap_changer = self._taps.changer(oltc, scenario.dt_h * 3600.0)
            self.pf = self._taps.model(self.tap_changer.tap_pos)
        self._vm_pu = np.ones(scenario.feeder.n_bus)

    @property
    def finished(self) -> bool:
        return self.step >= self.scenario.end_step

    def hour(self, step: int) -> float:
        t = self.scenario.index[step]
        return t.hour + t.minute / 60 + t.second / 3600

    def _pv_true_kw(self, step: int) -> np.ndarray:
        if self.plant is None:
            return self.scenario.pv_available_kw(step)
        return self.plant.pv_available_kw(step)

    def _battery_energy_seen_kwh(self) -> np.ndarray:
        """The batteries' state of charge times the model's capacity: what a controller that
        reads the BMS's SoC and knows the datasheet capacity computes."""
        if self.plant is None:
            return self.energy_kwh
        return self.energy_kwh * self.plant.battery_energy_scale

    def _open_windows(self) -> None:
        """Deferrable windows opening at the current step start a new job."""
        sc, dfr = self.scenario, self.scenario.fleet.deferrable
        hour = self.hour(self.step)
        opens = _in_window(dfr, hour) & ~_in_window(dfr, hour - sc.dt_h)
        self.done_kwh[opens] = 0.0

    def observe(self) -> Observation:
        """The controller's view at the current step: device states now (which car is really
        plugged in, with its declared session), telemetry of the newest interval it can have
        received, the published tariff (see ``Observation``)."""
        self._open_windows()
        states = {
            "battery_energy_kwh": self._battery_energy_seen_kwh(),
            "ev_delivered_kwh": self.delivered_kwh,
            "deferrable_done_kwh": self.done_kwh,
            "thermal_temp_c": self.temp_c,
        }
        active = self.fleet.ev.active_session(self.step)
        tel = self.telemetry.latest(self.step)
        return observe(self.scenario, self.step, states, tel, active)

    def deferrable_fleet(self, step: int):
        """The appliances as they really are on ``step``'s day (no-show jobs need 0 kWh)."""
        if self.plant is None:
            return self.fleet.deferrable
        day = step // self.plant.steps_per_day
        if self._deferrable_day[0] != day:
            self._deferrable_day = (day, self.plant.deferrable_fleet(step))
        return self._deferrable_day[1]

    def _apply(self, step: int, sp: Setpoints, done_kwh: np.ndarray):
        """True asset powers and next states for ``sp`` applied at ``step`` (pure: no
        attribute changes); inputs come from the plant, not from an observation."""
        sc, f, dt = self.scenario, self.fleet, self.scenario.dt_h
        p_bat, energy = physics.battery_step(f.battery, self.energy_kwh, sp.battery_kw, dt)
        p_ev, delivered = physics.ev_step(
            f.ev, self.delivered_kwh, f.ev.active_session(step), sp.ev_kw, dt
        )
        p_dfr, done = physics.deferrable_step(
            self.deferrable_fleet(step), done_kwh, self.hour(step), sp.deferrable_kw, dt
        )
        p_th, temp = physics.thermal_step(
            f.thermal,
            self.temp_c,
            sp.thermal_kw,
            float(sc.outdoor_temp_c[step]),
            dt,
            float(sc.hvac_mode[step]),
        )
        pv_available = self._pv_true_kw(step)
        curtail = np.clip(sp.pv_curtail_kw, 0.0, pv_available)
        p_pv = pv_available - curtail
        n_bus = sc.feeder.n_bus
        p_bus = (
            sc.base_load_kw[step]
            + bus_sum(f.battery.bus, p_bat, n_bus)
            + bus_sum(f.ev.bus, p_ev, n_bus)
            + bus_sum(f.deferrable.bus, p_dfr, n_bus)
            + bus_sum(f.thermal.bus, p_th, n_bus)
            - bus_sum(f.pv.bus, p_pv, n_bus)
        )
        powers = (p_bat, p_ev, p_dfr, p_th, p_pv, curtail)
        return p_bus, powers, (energy, delivered, done, temp)

    def bus_injection_kw(self, obs: Observation, sp: Setpoints) -> np.ndarray:
        """Net consumption per bus if the plant ran ``sp`` this step exactly (no latency or
        tracking error; no state change): the what-if the operator tools price."""
        return self._apply(obs.step, sp, self.done_kwh.copy())[0]

    def advance(self, obs: Observation, sp: Setpoints) -> StepRecord:
        """Apply ``sp`` (decided on ``obs``) from the current step on, solve the power flow and
        move to the next step. With command latency the devices run an earlier setpoint now."""
        if obs.step != self.step:
            msg = f"observation of step {obs.step} applied at step {self.step}"
            raise ValueError(msg)
        sc, step, dt = self.scenario, self.step, self.scenario.dt_h
        applied = self._delay(sp)
        if self.plant is not None:
            applied = self.plant.track(applied, step)
        p_bus, powers, states = self._apply(step, applied, self.done_kwh)
        p_bat, p_ev, p_dfr, p_th, p_pv, curtail = powers
        f = self.fleet
        self.energy_kwh, self.delivered_kwh, self.done_kwh, self.temp_c = states
        dfr, hour = self.deferrable_fleet(step), self.hour(step)
        closes = _in_window(dfr, hour) & ~_in_window(dfr, hour + dt)
        unmet_dfr = float(np.maximum(dfr.energy_kwh - self.done_kwh, 0.0)[closes].sum())
        q_bus = sc.base_load_kvar[step]
        inverter = applied.inverter or sc.config.fleet.pv.inverter
        if inverter.active and sc.three_phase is not None:
            msg = (
                f"inverter mode {inverter.mode!r} (controller or fleet.pv.inverter) needs the "
                "balanced twin; the three-phase twin does not model inverter reactive power yet: "
                "run with grid.phases = 1 (--phases 1)"
            )
            raise ValueError(msg)
        pv_kvar = np.zeros(len(f.pv))
        bat_kvar = np.zeros(len(f.battery))
        if applied.pv_kvar is not None or applied.battery_kvar is not None:
            if sc.three_phase is not None:
                msg = (
                    "reactive power setpoints (pv_kvar, battery_kvar) need the balanced twin "
                    "(grid.phases = 1, --phases 1)"
                )
                raise ValueError(msg)
            inverter = UNITY  # the dispatcher sets Q itself: no local voltage function
            pv_kvar, bat_kvar = self._dispatched_kvar(applied, p_pv, p_bat)
            q_bus = (
                q_bus
                - bus_sum(f.pv.bus, pv_kvar, sc.feeder.n_bus)
                - bus_sum(f.battery.bus, bat_kvar, sc.feeder.n_bus)
            )
        try:
            zip_kw, zip_kvar = sc.load_zip_kw(step)
            res, q_inv, p_pv = self._solve_step(
                p_bus, q_bus, p_pv, inverter, zip_kw, zip_kvar, applied.tap_pos
            )
            if inverter.active:
                pv_kvar = q_inv
                curtail = self._pv_true_kw(step) - p_pv
                p_bus = p_bus + bus_sum(f.pv.bus, powers[4] - p_pv, sc.feeder.n_bus)
                q_bus = q_bus - bus_sum(f.pv.bus, pv_kvar, sc.feeder.n_bus)
            vm, loading = res.vm_pu, res.branch_loading_pct
            self._vm_pu = vm
            feeder_kw, feeder_kvar = float(res.p_slack_kw), float(res.q_slack_kvar)
            losses_kw, failed = float(res.losses_kw), False
        except (PowerFlowNotConverged, PowerFlowInputError) as err:
            # an asset model that emits NaN (the input error names the bus) fails the step's
            # power flow like a divergence: counted in powerflow_failures, not a crash
            log.warning("step %s: %s", sc.index[step], err)
            vm = np.full(sc.feeder.n_bus, np.nan)
            loading = np.full(self.pf.n_branch, np.nan)
            feeder_kw, feeder_kvar = float(p_bus.sum()), float(np.sum(q_bus))
            losses_kw, failed, self._v = float("nan"), True, None
            pv_kvar, bat_kvar = np.zeros(len(f.pv)), np.zeros(len(f.battery))
        three = None
        if sc.three_phase is not None and not failed:
            try:
                three = self._solve_three_phase(step, powers)
            except ThreePhaseNotConverged as err:
                log.warning("step %s: %s", sc.index[step], err)
                vm = np.full(sc.feeder.n_bus, np.nan)
                loading = np.full(self.pf.n_branch, np.nan)
                losses_kw, failed = float("nan"), True
        if three is not None:
            vm = worst_phase_pu(three.vm_pu)
            if self._branch_order is not None:
                loading = three.branch_loading_pct[self._branch_order]
            feeder_kw, feeder_kvar, losses_kw = three.feeder_kw, three.feeder_kvar, three.losses_kw
        throughput = np.abs(p_bat) * dt
        self.last = StepRecord(
            step=step,
            feeder_kw=feeder_kw,
            feeder_kvar=feeder_kvar,
            losses_kw=losses_kw,
            p_bus_kw=p_bus,
            q_bus_kvar=q_bus,
            vm_pu=vm,
            branch_loading_pct=loading,
            battery_kw=p_bat,
            ev_kw=p_ev,
            deferrable_kw=p_dfr,
            thermal_kw=p_th,
            pv_kw=p_pv,
            curtailed_kw=curtail,
            base_load_kw=float(sc.base_load_kw[step].sum()),
            degradation_eur=float(
                throughput @ self.fleet.battery.degradation_eur_per_kwh
                + (np.maximum(-p_ev, 0.0) * dt) @ self.fleet.ev.v2g_degradation_eur_per_kwh
            ),
            unmet_deferrable_kwh=unmet_dfr,
            pf_failed=failed,
            vm_phase_pu=None if three is None else three.vm_pu,
            vuf_pct=None if three is None else three.vuf_pct,
            neutral_current_a=None if three is None else three.neutral_current_a,
            pv_kvar=pv_kvar,
            battery_kvar=bat_kvar,
            tap_operations=self._tap_ops,
            tap_pos=None if self.tap_changer is None else self.tap_changer.tap_pos,
        )
        self._tap_ops = 0
        self.telemetry.record(self.last)
        self.step += 1
        if self.loop and self.finished:
            self.step = sc.start_step
        return self.last

    def _dispatched_kvar(self, sp: Setpoints, p_pv: np.ndarray, p_bat: np.ndarray):
        """The inverters' reactive power for the dispatched Q setpoints, each held inside
        what its kVA rating leaves beside its active power (active-power priority)."""
        f = self.fleet
        kva_pv = self.scenario.config.fleet.pv.inverter.kva_per_kwp * f.pv.peak_kw
        pv = np.zeros(len(f.pv)) if sp.pv_kvar is None else np.asarray(sp.pv_kvar, float)
        bat = np.zeros(len(f.battery)) if sp.battery_kvar is None else sp.battery_kvar
        return (
            kva_limited_kvar(pv, p_pv, kva_pv),
            kva_limited_kvar(np.asarray(bat, float), p_bat, f.battery.power_kw),
        )

    def _solve_step(self, p_bus, q_bus, p_pv, inverter, zip_kw, zip_kvar, tap_cmd=None):
        """(power-flow result, inverters' kvar, PV kW delivered) of this step: the inverters'
        steady state when their mode is voltage-responsive, and the tap changer's operations
        (each followed by a new solve) when the scenario has one; a dispatch-controlled tap
        changer moves to ``tap_cmd`` (None: holds)."""

        def flow():
            if inverter.active:
                return self._solve_inverters(p_bus, q_bus, p_pv, inverter, zip_kw, zip_kvar)
            res, self._v = self.pf.solve(p_bus, q_bus, v0=self._v, zip_kw=zip_kw, zip_kvar=zip_kvar)
            return res, np.zeros(len(p_pv)), p_pv

        if self.tap_changer is None:
            return flow()
        tc = self.tap_changer
        if tc.cfg.control == "dispatch":
            if tap_cmd is not None:
                target = int(np.clip(tap_cmd, tc.tap_min, tc.tap_max))
                self._tap_ops = abs(target - tc.tap_pos)
                tc.operations += self._tap_ops
                tc.tap_pos = target
            self.pf = self._taps.model(tc.tap_pos)
            return flow()
        ops_before = self.tap_changer.operations

        def at_tap(tap_pos: int):
            self.pf = self._taps.model(tap_pos)
            out = flow()
            return out, float(out[0].vm_pu[self._taps.lv_pos])

        out = self.tap_changer.step(at_tap)
        self._tap_ops = self.tap_changer.operations - ops_before
        return out

    def _solve_inverters(self, p_bus, q_bus, p_pv, inverter, zip_kw, zip_kvar):
        """Steady state of the PV inverters' voltage functions and the power flow this step
        (``gridsync.sim.inverters``), started from the last step's voltages and Q."""
        f = self.fleet
        n_bus = self.scenario.feeder.n_bus
        p_no_pv = p_bus + bus_sum(f.pv.bus, p_pv, n_bus)

        def solve(p, q, v0):
            return self.pf.solve(p, q, v0=v0, zip_kw=zip_kw, zip_kvar=zip_kvar)

        vm_start = np.where(np.isfinite(self._vm_pu), self._vm_pu, 1.0)
        ss = solve_with_inverters(
            solve,
            p_no_pv,
            q_bus,
            inverter,
            f.pv.bus,
            f.pv.peak_kw,
            p_pv,
            self._v,
            vm_start,
            self._pv_kvar,
        )
        self._v, self._pv_kvar = ss.v, ss.pv_kvar
        return ss.result, ss.pv_kvar, ss.pv_kw

    def _solve_three_phase(self, step: int, powers: tuple):
        """The plant's unbalanced flow of this step: customers and assets on their phases
        (``[grid] phases = 3``); the balanced flow above stays the controllers' model."""
        sc = self.scenario
        tp = sc.three_phase
        p_bat, p_ev, p_dfr, p_th, p_pv, _ = powers
        kw = {"battery": p_bat, "ev": p_ev, "deferrable": p_dfr, "thermal": p_th, "pv": -p_pv}
        base_kw, base_kvar = tp.base_at(step, sc.base_load_kw[step], sc.base_load_kvar[step])
        return tp.solve(tp.add_assets(base_kw, self.fleet, kw), base_kvar)

    def solve(self, p_bus_kw: np.ndarray, step: int):
        """Power flow of a hypothetical injection at ``step`` (warm-started; state unchanged)."""
        res, _ = self.pf.solve(p_bus_kw, self.scenario.base_load_kvar[step], v0=self._v)
        return res
