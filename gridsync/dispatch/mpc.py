"""Receding-horizon dispatch (MPC) over HiGHS, network-aware, that always publishes a plan.

Every ``resolve_every`` steps the controller forecasts the next ``horizon_steps`` steps, builds
the dispatch LP (``formulation``), solves it within a time budget, checks the plan with an AC
power flow over the whole horizon and, if a voltage or loading limit is violated, re-solves
with those rows added and their limits shrunk by the observed error. If the solver times
out, fails or proves the problem infeasible, it publishes the previous plan shifted or, when
none covers the step, the rule-based ``UncontrolledController``; the reason (and for an
infeasible problem, a diagnosis in plain words) is logged and kept on the plan.

Every step, between re-plans too, the plan's setpoints are corrected before they are returned,
on what is known at the start of the step (telemetry of the last interval, see
``sim.controller.Observation``): ``realtime.rebalance`` absorbs the deviation of load and PV
from the plan's forecast expected for this step with the batteries and holds the plan's peak,
and an AC power flow of the step on that estimate (the safety shield's projection, without
ramp limits) removes any voltage or loading violation by sensitivity, e.g. charging batteries
or curtailing PV at the buses that matter.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field, replace

import numpy as np

from gridsync.dispatch.degradation import costs_from_scenario
from gridsync.dispatch.diagnosis import diagnose
from gridsync.dispatch.formulation import Options, Weights, build_dispatch_lp, flexible_buses
from gridsync.dispatch.horizon import (
    FleetState,
    HorizonData,
    block_mean,
    horizon_from_scenario,
)
from gridsync.dispatch.mpc_config import MPCConfig
from gridsync.dispatch.network import NetworkLimits
from gridsync.dispatch.nowcast import ErrorPersistence
from gridsync.dispatch.oltc import choose_tap
from gridsync.dispatch.plan import (
    DispatchPlan,
    binding_constraints,
    extract_plan,
    flexible_bus_kw,
)
from gridsync.dispatch.reactive import kvar_arrays
from gridsync.dispatch.realtime import Correction, PlanTarget, ev_floor_kw, rebalance
from gridsync.dispatch.rules import UncontrolledController
from gridsync.dispatch.terminal import TerminalValue
from gridsync.dispatch.tiebreak import add_tie_break
from gridsync.grid.powerflow import PowerFlowNotConverged
from gridsync.grid.taps import DispatchedTap
from gridsync.safety.shield import SafetyShield, ShieldConfig
from gridsync.sim.controller import Observation, Setpoints
from gridsync.sim.forecasts import (
    ExogenousForecaster,
    NaiveForecaster,
    PerfectForecaster,
    StepEstimate,
    nowcast,
)

log = logging.getLogger(__name__)


@dataclass
class SolveRecord:
    """One line of the controller's solve log."""

    step: int
    status: str
    reason: str
    objective_eur: float
    timings_s: dict[str, float] = field(default_factory=dict)
    network_passes: int = 0


class MPCController:
    """Network-aware receding-horizon optimizer; ``forecaster`` predicts load, PV, weather."""

    name = "mpc"

    def __init__(
        self,
        forecaster: ExogenousForecaster | None = None,
        config: MPCConfig | None = None,
        name: str | None = None,
    ) -> None:
        self.forecaster = forecaster if forecaster is not None else NaiveForecaster()
        self.config = config or MPCConfig()
        if name:
            self.name = name
        self.last_plan: DispatchPlan | None = None
        self.solve_log: list[SolveRecord] = []
        self.corrections: list[Correction] = []

    def reset(self, scenario) -> None:
        cfg = self.config
        self.scenario = scenario
        self.weights = Weights.from_config(scenario.config.objective)
        self.options = Options(
            hard_ev_deadlines=cfg.hard_ev_deadlines,
            feeder_limit_kw=cfg.feeder_limit_kw,
            ageing=costs_from_scenario(scenario) if cfg.ageing_costs else None,
            pv_kva_per_kwp=scenario.config.fleet.pv.inverter.kva_per_kwp,
        )
        balanced = scenario.three_phase is None
        oltc = scenario.config.grid.oltc
        self.taps = (
            DispatchedTap(scenario)
            if cfg.taps and cfg.network and oltc.enabled and oltc.control == "dispatch"
            else None
        )
        self.flex_bus = flexible_buses(scenario.fleet)
        lim = scenario.config.limits
        self.network = (
            NetworkLimits(
                scenario.powerflow(),
                self.flex_bus,
                lim.voltage_min_pu,
                lim.voltage_max_pu,
                lim.loading_max_pct,
                cfg.screen_voltage_pu,
                cfg.screen_loading_frac,
                safety_pu=cfg.voltage_safety_pu,
                safety_pct=cfg.loading_safety_pct,
                three_phase=scenario.three_phase,
                fleet=scenario.fleet,
                reactive=cfg.reactive and balanced and not cfg.aggregate,
            )
            if cfg.network
            else None
        )
        self.terminal = TerminalValue.from_scenario(scenario)
        self._start_state: FleetState | None = None
        self.rules = UncontrolledController()
        self.rules.reset(scenario)
        self.persist = ErrorPersistence(scenario, cfg.error_decay_per_step)
        self.peak_kw = 0.0
        self.last_plan = None
        self._good_plan: DispatchPlan | None = None
        self._z_plan: tuple[int, np.ndarray] | None = None
        self._q_plan: tuple[int, np.ndarray] | None = None
        self._curtail_plan: tuple[int, np.ndarray] | None = None
        self._solved_at = -(10**9)
        self.solve_log = []
        self.corrections = []
        self._expected_kw: dict[int, float] = {}
        self._import_err_kw: list[float] = []
        self.shield = None
        if cfg.ac_correct:
            self.shield = SafetyShield(ShieldConfig(ramp_frac_per_step=2.0))
            self.shield.reset(scenario)

    # -- stepping -------------------------------------------------------------------------

    def _peak_margin_kw(self, obs: Observation) -> float:
        """How far below the peak target to hold the expected import (see ``MPCConfig``)."""
        q = self.config.peak_margin_quantile
        tel = obs.telemetry
        expected = self._expected_kw.pop(tel.step, None)
        for s in [s for s in self._expected_kw if s < tel.step]:
            del self._expected_kw[s]
        if expected is not None and tel.feeder_kw is not None and tel.fresh_grid:
            self._import_err_kw = (self._import_err_kw + [tel.feeder_kw - expected])[
                -self.scenario.steps_per_day :
            ]
        if q is None or not self._import_err_kw:
            return 0.0
        return max(float(np.quantile(self._import_err_kw, q)), 0.0)

    def act(self, obs: Observation) -> Setpoints:
        if obs.last_feeder_kw is not None:
            self.peak_kw = max(self.peak_kw, float(obs.last_feeder_kw))
        margin_kw = self._peak_margin_kw(obs)
        due = obs.step - self._solved_at >= self.config.resolve_every
        current = self.last_plan
        if due or current is None or not current.covers(obs.step):
            current = self.plan(obs)
            self._solved_at = obs.step
        if current.covers(obs.step):
            sp = Setpoints(**current.row(obs.step), **current.voltage_row(obs.step))
        else:
            sp = self.rules.act(obs)
        if self.taps is not None:
            sp = replace(sp, tap_pos=self.taps.tap_pos)
        # between re-plans the plan holds nothing for a car past its planning deadline (the
        # margin before declared departure): while still short it charges at full power
        margin = self.config.ev_deadline_margin_steps
        if margin > 0:
            late = np.asarray(obs.ev_departure_step) - obs.step <= margin
            floor = np.where(late, ev_floor_kw(self.scenario.fleet, obs, 1.0, margin), 0.0)
            sp = replace(sp, ev_kw=np.maximum(np.asarray(sp.ev_kw, float), floor))
        k = obs.step - current.step
        est = self.estimate(obs)
        if self.config.realtime and current.covers(obs.step) and len(current.inflexible_kw):
            planned = np.r_[current.feeder_kw, current.peak_kw]
            peak = max(self.peak_kw, float(np.nanmax(planned))) - margin_kw
            target = PlanTarget(float(current.feeder_kw[k]), float(current.inflexible_kw[k]), peak)
            cfg = self.config
            sp, corr = rebalance(
                self.scenario.fleet,
                obs,
                sp,
                target,
                est,
                cfg.track_gain,
                cfg.later_share,
                cfg.comfort_guard,
                self._worth_discharging(obs),
                margin,
            )
            self.corrections.append(corr)
            self._expected_kw[obs.step] = corr.expected_feeder_kw
        if self.shield is not None:
            sp, _ = self.shield.project(obs, sp, est)
            if self.taps is not None:  # the tap the correction dispatched is the tap now
                self.taps.dispatch(obs.step, sp.tap_pos)
        return sp

    def _worth_discharging(self, obs: Observation) -> bool:
        """Whether covering extra load from the batteries beats keeping the energy: this
        step's import price against the terminal value of a stored kWh after discharge
        losses (the value the plan gives the energy it keeps)."""
        eta_d = self.scenario.fleet.battery.efficiency_discharge
        value = self.terminal.credit_eur_per_kwh / float(np.mean(eta_d)) if len(eta_d) else 0.0
        return obs.import_price_eur_per_kwh >= value

    def estimate(self, obs: Observation) -> StepEstimate:
        """This step's load, PV and weather as estimated at its start: the latest forecast of
        it plus the damped last measured error, else ``forecasts.nowcast``."""
        est = self.persist.estimate(obs) if self.config.error_decay_per_step > 0 else None
        return nowcast(self.scenario, obs) if est is None else est

    def plan(self, obs: Observation) -> DispatchPlan:
        """Solve at ``obs.step`` and publish a plan, falling back when the optimizer cannot."""
        t0 = time.perf_counter()
        try:
            plan = self._optimise(obs, t0)
        except PowerFlowNotConverged as err:
            plan = self._fallback(obs, f"AC check of the plan did not converge: {err}")
        except (ValueError, RuntimeError, MemoryError) as err:
            log.exception("dispatch solve failed at step %s", obs.step)
            plan = self._fallback(obs, f"optimizer error: {type(err).__name__}: {err}")
        plan.timings_s["total"] = time.perf_counter() - t0
        self.last_plan = plan
        self.solve_log.append(
            SolveRecord(
                plan.step,
                plan.status,
                plan.reason,
                plan.objective_eur,
                dict(plan.timings_s),
                plan.network_iterations,
            )
        )
        return plan

    # -- internals ------------------------------------------------------------------------

    def horizon(self, obs: Observation) -> HorizonData:
        """The horizon data the optimizer sees at ``obs`` (forecast + exact asset states)."""
        state = FleetState(
            battery_energy_kwh=np.asarray(obs.battery_energy_kwh, float),
            ev_delivered_kwh=np.asarray(obs.ev_delivered_kwh, float),
            deferrable_done_kwh=np.asarray(obs.deferrable_done_kwh, float),
            thermal_temp_c=np.asarray(obs.thermal_temp_c, float),
        )
        if self._start_state is None:
            self._start_state = state
        # a horizon that reaches the window's end stops there and settles the end state as the
        # KPIs do (against the window's start state); otherwise its end is valued
        steps_left = self.scenario.end_step - obs.step
        at_end = self.config.settle_at_window_end and self.config.horizon_steps >= steps_left
        horizon = (
            min(self.config.horizon_steps, steps_left) if at_end else self.config.horizon_steps
        )
        terminal = self.terminal
        if at_end:
            terminal = TerminalValue.from_scenario(
                self.scenario,
                pro_rata_end=True,
                battery_start_kwh=self._start_state.battery_energy_kwh,
                thermal_start_c=self._start_state.thermal_temp_c,
            )
        fc = self.forecaster.forecast(self.scenario, obs.step, horizon)
        self.persist.issued(obs.step, fc)
        hd = horizon_from_scenario(
            _with_early_departures(self.scenario, self.config.ev_deadline_margin_steps, obs.step),
            obs.step,
            horizon,
            state,
            fc,
            self.config.known_future_sessions,
            hvac_mode0=obs.hvac_mode,
            peak_floor_kw=self.peak_kw,
            fine_steps=self.config.fine_steps,
            coarse_steps=self.config.coarse_steps,
            terminal=terminal,
        )
        if self.config.error_decay_per_step > 0:
            self.persist.correct_horizon(hd, obs)
        reserve = self.config.battery_reserve_frac
        if reserve > 0:
            # energy the plan may not use, left to the per-step correction for forecast error
            b = hd.fleet.battery
            soc_min = np.minimum(b.soc_min_frac + reserve, b.soc_max_frac)
            hd.fleet = replace(hd.fleet, battery=replace(b, soc_min_frac=soc_min))
        return hd

    def _previous(self, hd: HorizonData, kept: tuple[int, np.ndarray] | None) -> np.ndarray:
        """A per-flexible-bus array of the last plan (``kept``: its step and native rows),
        shifted to this horizon, as block means (zero where the last plan did not reach)."""
        total = int(hd.block_steps.sum())
        z0 = np.zeros((total, len(self.flex_bus)))
        if kept is not None:
            step, z = kept
            shift = hd.step0 - step
            n = max(0, min(len(z) - shift, total))
            if shift >= 0 and n:
                z0[:n] = z[shift : shift + n]
        return block_mean(z0, hd.block_steps)

    def _optimise(self, obs: Observation, t0: float) -> DispatchPlan:
        cfg = self.config
        hd = self.horizon(obs)
        timings = {"forecast": time.perf_counter() - t0}
        net = self.network
        rows = res = sens = None
        if net is not None:
            tn = time.perf_counter()
            z0 = self._previous(hd, self._z_plan)
            q0 = self._previous(hd, self._q_plan) if net.reactive else None
            if self.taps is not None:
                free = z0 - self._previous(hd, self._curtail_plan)
                choose_tap(self.taps, net, hd, free, cfg.voltage_safety_pu)
                timings["taps"] = time.perf_counter() - tn
            res = net.check(hd, z0, q0)
            hd.losses_kw = res.losses_kw
            sens = net.sensitivity(hd, z0, res, q0)
            H, n_points = hd.horizon, net.n_points
            forced_v = np.zeros((H, n_points), bool)
            margin_v = np.zeros((H, n_points))
            forced_l = np.zeros((H, net.pf.n_branch), bool)
            margin_l = np.zeros((H, net.pf.n_branch))
            timings["network"] = time.perf_counter() - tn
        deadline = t0 + cfg.time_limit_s
        plan = None
        passes = 0
        for passes in range(1, cfg.max_network_passes + 1):
            tb = time.perf_counter()
            if net is not None:
                rows = net.rows(res, z0, sens, forced_v, forced_l, margin_v, margin_l, q0)
            if cfg.aggregate:
                from gridsync.dispatch.aggregate import solve_aggregated_lp

                budget = max(deadline - time.perf_counter(), 0.0)
                lp, lay, sol = solve_aggregated_lp(hd, self.weights, rows, self.options, budget)
                timings["solve"] = timings.get("solve", 0.0) + time.perf_counter() - tb
            else:
                lp, lay = build_dispatch_lp(hd, self.weights, rows, self.options)
                tie = add_tie_break(lp, lay, hd.step_h, self.config.tie_break_eur_per_kwh)
                timings["build"] = timings.get("build", 0.0) + time.perf_counter() - tb
                sol = lp.solve(max(deadline - time.perf_counter(), 0.0))
                if sol.ok:  # the plan reports its real cost, without the tie-break
                    sol = replace(sol, objective=sol.objective - float(tie @ sol.x))
                timings["solve"] = timings.get("solve", 0.0) + sol.solve_s
            if not sol.ok:
                diagnosis = []
                if sol.status == "infeasible":
                    diagnosis = diagnose(hd, self.weights, self.options, rows)
                reason = f"solver status {sol.status} ({sol.message})"
                if diagnosis:
                    reason += ": " + "; ".join(diagnosis)
                return self._fallback(obs, reason, diagnosis, timings)
            plan = extract_plan(hd, lay, sol)
            if net is None:
                break
            tc = time.perf_counter()
            z = flexible_bus_kw(hd, lay, sol)
            q = None
            if net.reactive:
                q = np.zeros_like(z)
                if lay.reactive is not None:
                    q = kvar_arrays(hd, lay.reactive, sol.x)[2]
            checked = net.check(hd, z, q)
            v_bad, l_bad = net.violations(checked)
            timings["ac_check"] = timings.get("ac_check", 0.0) + time.perf_counter() - tc
            done = not (v_bad.any() or l_bad.any()) and passes >= cfg.min_network_passes
            if done or passes == cfg.max_network_passes:
                res, z0, q0 = checked, z, q
                break
            err_v, err_l = net.linearisation_error(rows, z, checked, q)
            margin_v[v_bad] += err_v[v_bad]
            margin_l[l_bad] += err_l[l_bad]
            forced_v |= v_bad
            forced_l |= l_bad
            res, z0, q0 = checked, z, q
            hd.losses_kw = checked.losses_kw
            sens = net.sensitivity(hd, z0, res, q0)
        if net is not None:
            native = lambda a: np.repeat(a, hd.block_steps, axis=0)  # noqa: E731
            plan.vm_max_pu = native(res.vm_pu.max(axis=1))
            plan.vm_min_pu = native(res.vm_pu.min(axis=1))
            plan.max_loading_pct = native(res.branch_loading_pct.max(axis=1))
            plan.feeder_kw = native(res.p_slack_kw)
            self._z_plan = (hd.step0, native(z0))
            self._q_plan = None if q0 is None else (hd.step0, native(q0))
            fpos = np.full(hd.n_bus, -1)
            fpos[self.flex_bus] = np.arange(len(self.flex_bus))
            curtail_bus = np.zeros((len(plan.pv_curtail_kw), len(self.flex_bus)))
            np.add.at(curtail_bus.T, fpos[self.scenario.fleet.pv.bus], plan.pv_curtail_kw.T)
            self._curtail_plan = (hd.step0, curtail_bus)
            bus_names = net.point_names(self.scenario.feeder.bus_names)
            branch_names = net.pf.branch_names
        else:
            bus_names = branch_names = None
        plan.binding = binding_constraints(
            hd, lp, sol, bus_names, branch_names, limit=cfg.max_binding
        )
        plan.network_iterations = passes
        plan.timings_s.update(timings)
        if self.taps is not None:
            plan.tap_pos = self.taps.tap_pos
        self._good_plan = plan
        return plan

    def _fallback(
        self,
        obs: Observation,
        reason: str,
        diagnosis: list[str] | None = None,
        timings: dict[str, float] | None = None,
    ) -> DispatchPlan:
        prev = self._good_plan
        f = self.scenario.fleet
        if prev is not None and prev.covers(obs.step):
            k = obs.step - prev.step
            plan = DispatchPlan(
                step=obs.step,
                status="fallback-previous",
                reason=reason,
                battery_kw=prev.battery_kw[k:],
                ev_kw=prev.ev_kw[k:],
                deferrable_kw=prev.deferrable_kw[k:],
                thermal_kw=prev.thermal_kw[k:],
                pv_curtail_kw=prev.pv_curtail_kw[k:],
                feeder_kw=prev.feeder_kw[k:],
                inflexible_kw=prev.inflexible_kw[k:],
                peak_kw=prev.peak_kw,
            )
        else:
            sp = self.rules.act(obs)
            plan = DispatchPlan(
                step=obs.step,
                status="fallback-rules",
                reason=reason,
                battery_kw=sp.battery_kw[None, :],
                ev_kw=sp.ev_kw[None, :],
                deferrable_kw=sp.deferrable_kw[None, :],
                thermal_kw=sp.thermal_kw[None, :],
                pv_curtail_kw=np.zeros((1, len(f.pv))),
            )
        plan.diagnosis = list(diagnosis or [])
        plan.timings_s.update(timings or {})
        if self.taps is not None:
            plan.tap_pos = self.taps.tap_pos
        log.warning("step %s: published %s plan because %s", obs.step, plan.status, reason)
        return plan


def mpc_p() -> MPCController:
    """The same optimizer on active power only: no inverter Q, the OLTC held (``mpc-p``)."""
    return MPCController(config=MPCConfig(reactive=False, taps=False), name="mpc-p")


class RecedingOracleController(MPCController):
    """The same receding optimizer with perfect forecasts of load, PV, weather and EV
    sessions: what better forecasts alone could buy. Not a bound (each 24-h horizon is
    myopic); the bound is ``dispatch.oracle.PerfectForesightBound``."""

    name = "oracle-receding"

    def __init__(self, config: MPCConfig | None = None, name: str | None = None) -> None:
        base = config or MPCConfig()
        cfg = MPCConfig(**{**base.__dict__, "known_future_sessions": True})
        super().__init__(PerfectForecaster(), cfg, name)


def _with_early_departures(scenario, margin_steps: int, step: int):
    """``scenario`` whose EV sessions leave ``margin_steps`` earlier, for a plan made at
    ``step`` only: never before a step after arrival nor before ``step + 1``, so a car still
    plugged in stays in the plan (and owed its energy at once) until it actually leaves."""
    s = scenario.fleet.ev.sessions
    if margin_steps == 0 or len(s) == 0:
        return scenario
    early = np.maximum(s.departure_step - margin_steps, np.maximum(s.arrival_step, step) + 1)
    departure = np.minimum(s.departure_step, early)
    ev = replace(scenario.fleet.ev, sessions=replace(s, departure_step=departure))
    return replace(scenario, fleet=replace(scenario.fleet, ev=ev))
