"""The safety shield: every setpoint batch is checked and, if unsafe, corrected before dispatch.

Checks, in order:

1. asset limits (power ratings, V2G capability, plugged-in cars, appliance windows),
2. state-of-charge bounds (battery SoC window, EV headroom and V2G floor, appliance energy),
3. ramp rates (change per step relative to the previous dispatched setpoint),
4. an AC power flow of the resulting step: bus voltages inside the band
   (``scenario.config.limits`` minus a margin) and line/transformer loading below the limit.
   The step's load and PV are not measured yet, so the flow runs on what the shield can
   know: the setpoints plus an estimate of the step made from the last measured interval
   (``sim.forecasts.nowcast`` unless the caller passes its own ``StepEstimate``).

A grid violation is corrected in stages (``safety.voltage_support``): inverter reactive power,
then the OLTC's tap, then PV curtailment, then load actions (batteries, EVs, appliances, heat
pumps); within a stage greedily by sensitivity, the buses whose (re)active consumption moves
the violated quantity most changed first, within each asset's bounds, and the flow
re-checked. Reactive power and taps are used only where the controller dispatches them.
Every changed action carries a reason, and ``ShieldDecision.stages`` the order of stages used. Used by ``ShieldedController`` for any controller and
by RL training through ``SafetyShield.project``, whose ``ShieldDecision.intervention_kw`` is a
natural penalty signal.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from gridsync.grid.powerflow import PowerFlowNotConverged
from gridsync.grid.taps import DispatchedTap
from gridsync.grid.threephase.feeder import branch_order, worst_phase_pu
from gridsync.grid.threephase.solver import ThreePhaseNotConverged
from gridsync.safety.bounds import physical_bounds
from gridsync.safety.sensitivity import GridSensitivity
from gridsync.safety.voltage_support import (
    REACTIVE_KINDS,
    STAGE_KINDS,
    STAGES,
    VoltageSupport,
    consumption_sign,
)
from gridsync.sim.controller import Observation, Setpoints
from gridsync.sim.forecasts import StepEstimate, nowcast

KINDS = ("battery_kw", "ev_kw", "deferrable_kw", "thermal_kw", "pv_curtail_kw")
STATUSES = ("pass", "clipped", "corrected", "unresolved")
REASONS = ("asset_limit", "soc_bound", "ramp", "voltage_high", "voltage_low", "overload")


@dataclass(frozen=True)
class ShieldConfig:
    """Margins and limits. Ramps are fractions of each asset's rating per step (1.0 = the
    full rating may be added or removed in one step; 2.0 = no ramp limit for batteries).

    The shield predicts a step it has not measured, so it learns how wrong it is: every step it
    compares the voltages and loadings it predicted for the newest measured interval with the
    measured ones, and widens each margin by the ``error_quantile`` of its under-predictions
    over the last ``error_window_steps`` checks (at most ``max_learned_margin_pu`` / ``_pct``).
    Only buses and branches where the prediction or the measurement came within reach of the
    limit (fixed plus largest learned margin) count: an error far from it was no threat, and
    counting it (e.g. a car leaving early at a bus at 1.0 p.u.) widened the margin and
    curtailed PV everywhere.
    """

    voltage_margin_pu: float = 0.002
    loading_margin_pct: float = 1.0
    error_quantile: float = 1.0
    error_window_steps: int = 96
    max_learned_margin_pu: float = 0.02
    max_learned_margin_pct: float = 20.0
    ramp_frac_per_step: float = 1.0
    max_corrections: int = 8
    overshoot: float = 1.15

    def __post_init__(self) -> None:
        if not 0.0 <= self.voltage_margin_pu < 0.05:
            msg = f"ShieldConfig.voltage_margin_pu = {self.voltage_margin_pu}: expected 0..0.05"
            raise ValueError(msg)
        if self.ramp_frac_per_step <= 0:
            msg = f"ShieldConfig.ramp_frac_per_step = {self.ramp_frac_per_step}: expected > 0"
            raise ValueError(msg)
        if self.max_corrections < 0:
            msg = f"ShieldConfig.max_corrections = {self.max_corrections}: expected >= 0"
            raise ValueError(msg)


@dataclass
class Change:
    """One asset action the shield changed."""

    kind: str
    asset: int
    requested_kw: float
    applied_kw: float
    reason: str

    def __str__(self) -> str:
        unit = "kvar" if self.kind.endswith("_kvar") else "" if self.kind == "tap_pos" else "kW"
        name = self.kind.removesuffix("_kw").removesuffix("_kvar")
        return (
            f"{name}[{self.asset}]: {self.requested_kw:.2f} -> {self.applied_kw:.2f} {unit} "
            f"({self.reason})"
        ).replace("  (", " (")


@dataclass
class _ChangeBlock:
    """Changed actions of one kind, as arrays (built without a per-asset Python loop)."""

    kind: str
    asset: np.ndarray
    requested_kw: np.ndarray
    applied_kw: np.ndarray
    reason: np.ndarray


@dataclass
class ShieldDecision:
    """Outcome for one step. ``status``: ``pass`` (untouched), ``clipped`` (only device limits,
    SoC or ramps changed something), ``corrected`` (the AC check found a violation and the
    shield moved setpoints to remove it) or ``unresolved`` (the best correction still violates a
    grid limit: not enough flexibility at the buses that matter)."""

    step: int
    status: str
    blocks: list[_ChangeBlock] = field(default_factory=list)
    vm_max_pu: float = float("nan")
    vm_min_pu: float = float("nan")
    loading_max_pct: float = float("nan")
    vm_max_before_pu: float = float("nan")
    vm_min_before_pu: float = float("nan")
    loading_max_before_pct: float = float("nan")
    intervention_kw: float = 0.0
    # (stage, reason) of each grid correction in the order made (safety.voltage_support)
    stages: list[tuple[str, str]] = field(default_factory=list)

    @property
    def changes(self) -> list[Change]:
        """Every changed action with its reason (built on demand)."""
        return [
            Change(b.kind, int(i), float(r), float(a), str(why))
            for b in self.blocks
            for i, r, a, why in zip(b.asset, b.requested_kw, b.applied_kw, b.reason, strict=True)
        ]

    def reason_counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for b in self.blocks:
            names, counts = np.unique(b.reason, return_counts=True)
            for n, c in zip(names, counts, strict=True):
                out[str(n)] = out.get(str(n), 0) + int(c)
        return out

    @property
    def reasons(self) -> list[str]:
        return [str(c) for c in self.changes]


def _max_where(values: np.ndarray, mask: np.ndarray) -> float:
    """Largest of ``values`` where ``mask`` holds (NaN ignored), 0 when nowhere."""
    return float(np.nanmax(values[mask], initial=0.0)) if mask.any() else 0.0


class SafetyShield(VoltageSupport):
    """Checks and corrects setpoints for one scenario; call ``reset`` before each run."""

    def __init__(self, config: ShieldConfig | None = None) -> None:
        self.config = config or ShieldConfig()

    def reset(self, scenario) -> None:
        self.scenario = scenario
        self.fleet = scenario.fleet
        self.pf = scenario.powerflow()
        self.sens = GridSensitivity(self.pf)
        self._sens_by_tap: dict[int, GridSensitivity] = {}
        oltc = scenario.config.grid.oltc
        self.taps = DispatchedTap(scenario) if oltc.enabled and oltc.control == "dispatch" else None
        self._pv_kva = scenario.config.fleet.pv.inverter.kva_per_kwp * scenario.fleet.pv.peak_kw
        lim = scenario.config.limits
        self._limits = (lim.voltage_max_pu, lim.voltage_min_pu, lim.loading_max_pct)
        self._predicted: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._errors: list[tuple[float, float, float]] = []
        self._set_margins(0.0, 0.0, 0.0)
        self.n_bus = scenario.feeder.n_bus
        self.slack = scenario.feeder.slack_pos
        f = self.fleet
        self._prev = {k: np.zeros(n) for k, n in zip(KINDS, self._sizes(), strict=True)}
        self._bus = dict(
            zip(
                (*KINDS, *REACTIVE_KINDS),
                (f.battery.bus, f.ev.bus, f.deferrable.bus, f.thermal.bus, f.pv.bus)
                + (f.pv.bus, f.battery.bus),
                strict=True,
            )
        )
        # correction groups: a bus (balanced) or a bus and phase code (a, b, c, abc) on a
        # three-phase feeder, so a correction moves the assets on the phase that matters
        self._group, self.n_group = self._bus, self.n_bus
        tp = scenario.three_phase
        if tp is not None:
            codes = (tp.alloc.assets[k] for k in ("battery", "ev", "deferrable", "thermal", "pv"))
            self._group = {k: self._bus[k] * 4 + c for k, c in zip(KINDS, codes, strict=True)}
            self._group["pv_kvar"] = self._group["pv_curtail_kw"]
            self._group["battery_kvar"] = self._group["battery_kw"]
            self.n_group = self.n_bus * 4
        self._three = None
        self._rating = {
            "battery_kw": f.battery.power_kw,
            "ev_kw": f.ev.max_power_kw,
            "deferrable_kw": f.deferrable.power_kw,
            "thermal_kw": f.thermal.max_power_kw,
            "pv_curtail_kw": f.pv.peak_kw,
        }
        self._v = None

    def _set_margins(self, hi_pu: float, lo_pu: float, load_pct: float) -> None:
        cfg = self.config
        v_max, v_min, load_max = self._limits
        self.v_hi = v_max - cfg.voltage_margin_pu - hi_pu
        self.v_lo = v_min + cfg.voltage_margin_pu + lo_pu
        self.loading_hi = load_max - cfg.loading_margin_pct - load_pct

    def _learn(self, obs: Observation) -> None:
        """Compare the prediction for the newest measured interval with its measurement and
        set the margins from the recent under-predictions (see ``ShieldConfig``)."""
        tel, cfg = obs.telemetry, self.config
        pred = self._predicted.pop(tel.step, None)
        for s in [s for s in self._predicted if s < tel.step]:
            del self._predicted[s]
        if pred is None or tel.vm_pu is None or not tel.fresh_grid:
            return
        vm, loading = pred
        # an under-prediction matters only where the prediction or the measurement came within
        # reach of a limit (fixed margin plus the largest learned one)
        v_max, v_min, load_max = self._limits
        reach_v = cfg.voltage_margin_pu + cfg.max_learned_margin_pu
        reach_l = cfg.loading_margin_pct + cfg.max_learned_margin_pct
        v_meas, l_meas = tel.vm_pu, tel.branch_loading_pct
        with np.errstate(invalid="ignore"):
            self._errors.append(
                (
                    _max_where(v_meas - vm, np.fmax(vm, v_meas) >= v_max - reach_v),
                    _max_where(vm - v_meas, np.fmin(vm, v_meas) <= v_min + reach_v),
                    _max_where(l_meas - loading, np.fmax(loading, l_meas) >= load_max - reach_l),
                )
            )
        self._errors = self._errors[-cfg.error_window_steps :]
        q = np.quantile(np.maximum(np.array(self._errors), 0.0), cfg.error_quantile, axis=0)
        self._set_margins(
            min(q[0], cfg.max_learned_margin_pu),
            min(q[1], cfg.max_learned_margin_pu),
            min(q[2], cfg.max_learned_margin_pct),
        )

    def _sizes(self) -> tuple[int, ...]:
        f = self.fleet
        return (len(f.battery), len(f.ev), len(f.deferrable), len(f.thermal), len(f.pv))

    def _bounds(self, obs: Observation, bounds: dict) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Physical bounds intersected with the ramp window around the previous setpoint."""
        out = {}
        for k in KINDS:
            lo, hi, _, _ = bounds[k]
            if k in ("battery_kw", "ev_kw", "thermal_kw"):
                ramp = self.config.ramp_frac_per_step * self._rating[k]
                prev = self._prev[k]
                lo, hi = np.clip(prev - ramp, lo, hi), np.clip(prev + ramp, lo, hi)
            out[k] = (lo, hi)
        return out

    def _bus_consumption(self, est: StepEstimate, sp: dict[str, np.ndarray]) -> np.ndarray:
        p = est.base_load_kw - np.bincount(self.fleet.pv.bus, est.pv_available_kw, self.n_bus)
        for k in KINDS:
            # every kind adds to consumption, curtailment included (it removes PV output)
            p = p + np.bincount(self._bus[k], sp[k], self.n_bus)
        return p

    def _flow(self, est: StepEstimate, sp: dict[str, np.ndarray]):
        q = est.base_load_kvar
        for k in REACTIVE_KINDS:
            if k in sp:
                q = q - np.bincount(self._bus[k], sp[k], self.n_bus)
        try:
            res, v = self.pf.solve(self._bus_consumption(est, sp), q, v0=self._v)
        except PowerFlowNotConverged:
            res, v = self.pf.solve(self._bus_consumption(est, sp), q)
        self._v = v
        if self.scenario.three_phase is not None:
            res = self._three_phase_check(est, sp, res)
        return res, v

    def _three_phase_check(self, est: StepEstimate, sp: dict[str, np.ndarray], res):
        """On a three-phase feeder, judge voltages (worst phase) and loadings (worst phase
        current) by the unbalanced flow of the same estimate, the inflexible load split by
        the customers' phases and each asset on its own; corrections still move along the
        balanced sensitivities, re-checked here after each one."""
        tp = self.scenario.three_phase
        kw = {
            "battery": sp["battery_kw"],
            "ev": sp["ev_kw"],
            "deferrable": sp["deferrable_kw"],
            "thermal": sp["thermal_kw"],
            "pv": sp["pv_curtail_kw"] - est.pv_available_kw,
        }
        p = tp.add_assets(tp.split_estimate(est.base_load_kw), self.fleet, kw)
        try:
            three = tp.solve(p, tp.split_estimate(est.base_load_kvar))
        except ThreePhaseNotConverged:
            self._three = None
            return res
        self._three = three
        order = branch_order(tp, self.pf.branch_names)
        loading = res.branch_loading_pct if order is None else three.branch_loading_pct[order]
        return replace(res, vm_pu=worst_phase_pu(three.vm_pu), branch_loading_pct=loading)

    def project(
        self, obs: Observation, setpoints: Setpoints, estimate: StepEstimate | None = None
    ) -> tuple[Setpoints, ShieldDecision]:
        """Return the nearest safe setpoints found and the decision (what changed and why),
        judged on ``estimate`` of the step (default ``nowcast`` of the last telemetry)."""
        est = nowcast(self.scenario, obs) if estimate is None else estimate
        self._learn(obs)
        requested = {k: np.asarray(getattr(setpoints, k), dtype=float) for k in KINDS}
        phys = physical_bounds(self.fleet, obs, est)
        bounds = self._bounds(obs, phys)
        sp, blocks = {}, []
        tol = 1e-9
        for k in KINDS:
            lo, hi = bounds[k]
            req = requested[k]
            sp[k] = np.clip(req, lo, hi)
            changed = np.flatnonzero(np.abs(sp[k] - req) > tol)
            if len(changed):
                p_lo, p_hi, r_lo, r_hi = (b[changed] for b in phys[k])
                rq = req[changed]
                reason = np.where(
                    (rq > r_hi + tol) | (rq < r_lo - tol),
                    "asset_limit",
                    np.where((rq > p_hi + tol) | (rq < p_lo - tol), "soc_bound", "ramp"),
                )
                blocks.append(_ChangeBlock(k, changed, rq, sp[k][changed], reason))
        reactive = setpoints.pv_kvar is not None or setpoints.battery_kvar is not None
        if reactive:
            blocks.extend(self._reactive_setpoints(setpoints, sp, requested, est, bounds))
        self._use_tap(setpoints.tap_pos)
        res, v = self._flow(est, sp)
        decision = ShieldDecision(
            step=obs.step,
            status="pass",
            vm_max_before_pu=float(res.vm_pu.max()),
            vm_min_before_pu=float(res.vm_pu.min()),
            loading_max_before_pct=float(res.branch_loading_pct.max()),
        )
        stages = [
            st
            for st in STAGES
            if (st != "reactive" or reactive) and (st != "tap" or setpoints.tap_pos is not None)
        ]
        for stage in stages:
            for _ in range(self.config.max_corrections):
                violation = self._worst_violation(res)
                if violation is None:
                    break
                if stage == "tap":
                    moved, res, v = self._tap_step(obs.step, violation, est, sp, res, v)
                else:
                    moved = self._correct(violation, v, sp, bounds, stage)
                    if moved:
                        res, v = self._flow(est, sp)
                if not moved:
                    break
                decision.stages.append((stage, violation[0]))
            if self._worst_violation(res) is None:
                break
        if reactive and any(st in ("curtailment", "load") for st, _ in decision.stages):
            # active power moved after Q was set: keep each inverter inside its kVA rating
            for k, (lo, hi) in self._kvar_bounds(est, sp).items():
                if k in sp:
                    sp[k] = np.clip(sp[k], lo, hi)
            res, v = self._flow(est, sp)
        unresolved = self._worst_violation(res) is not None
        if decision.stages:
            blocks.extend(self._grid_changes(requested, sp, blocks, decision.stages))
        if setpoints.tap_pos is not None and self.taps is not None:
            if self._tap != setpoints.tap_pos:
                why = np.array([next(r for st, r in decision.stages if st == "tap")])
                blocks.append(
                    _ChangeBlock(
                        "tap_pos",
                        np.zeros(1, int),
                        np.array([setpoints.tap_pos]),
                        np.array([self._tap]),
                        why,
                    )
                )
            self.taps.dispatch(obs.step, self._tap)
        decision.blocks = blocks
        decision.vm_max_pu = float(res.vm_pu.max())
        decision.vm_min_pu = float(res.vm_pu.min())
        decision.loading_max_pct = float(res.branch_loading_pct.max())
        decision.intervention_kw = float(sum(np.abs(sp[k] - requested[k]).sum() for k in KINDS))
        if unresolved:
            decision.status = "unresolved"
        elif decision.stages:
            decision.status = "corrected"
        else:
            decision.status = "clipped" if blocks else "pass"
        for k in KINDS:
            self._prev[k] = sp[k]
        self._predicted[obs.step] = (res.vm_pu.copy(), res.branch_loading_pct.copy())
        voltage = {k: sp[k] for k in REACTIVE_KINDS if k in sp}
        if setpoints.tap_pos is not None:
            voltage["tap_pos"] = self._tap if self.taps is not None else setpoints.tap_pos
        return (
            Setpoints(**{k: sp[k] for k in KINDS}, inverter=setpoints.inverter, **voltage),
            decision,
        )

    def _reactive_setpoints(self, setpoints, sp, requested, est, bounds) -> list[_ChangeBlock]:
        """Put the dispatched reactive power into ``sp`` (only for the inverter kinds the
        controller dispatches), clipped to each inverter's kVA rating beside its active
        power."""
        blocks = []
        for k, (lo, hi) in self._kvar_bounds(est, sp).items():
            req = getattr(setpoints, k)
            if req is None:
                continue
            req = np.asarray(req, dtype=float)
            requested[k] = req
            sp[k] = np.clip(req, lo, hi)
            bounds[k] = (lo, hi)
            changed = np.flatnonzero(np.abs(sp[k] - req) > 1e-9)
            if len(changed):
                why = np.full(len(changed), "asset_limit")
                blocks.append(_ChangeBlock(k, changed, req[changed], sp[k][changed], why))
        return blocks

    def _worst_violation(self, res) -> tuple[str, int, float] | None:
        """(reason, bus or branch, excess) of the largest violation, or None."""
        vm = res.vm_pu
        cands = []
        hi = int(np.argmax(vm))
        if vm[hi] > self.v_hi:
            cands.append(("voltage_high", hi, (vm[hi] - self.v_hi) / 0.01))
        lo = int(np.argmin(np.where(np.arange(self.n_bus) == self.slack, np.inf, vm)))
        if vm[lo] < self.v_lo:
            cands.append(("voltage_low", lo, (self.v_lo - vm[lo]) / 0.01))
        ld = res.branch_loading_pct
        br = int(np.argmax(ld))
        if ld[br] > self.loading_hi:
            cands.append(("overload", br, (ld[br] - self.loading_hi) / 1.0))
        if not cands:
            return None
        reason, where, _ = max(cands, key=lambda c: c[2])
        if reason == "voltage_high":
            return reason, where, vm[where] - self.v_hi
        if reason == "voltage_low":
            return reason, where, self.v_lo - vm[where]
        return reason, where, ld[where] - self.loading_hi

    def _correct(self, violation, v, sp: dict, bounds: dict, stage: str) -> bool:
        """Move bus (re)active consumption greedily by sensitivity with the kinds of
        ``stage`` to remove ``violation``; False when the stage has no flexibility left (or
        does not act on this violation: reactive power on overloads)."""
        reason, where, excess = violation
        if stage == "reactive" and reason == "overload":
            return False
        raise_kinds, lower_kinds = (tuple(k for k in ks if k in sp) for ks in STAGE_KINDS[stage])
        s = self._gain(reason, where, v, reactive=stage == "reactive")
        target = excess
        # quantity q must drop by target: raise consumption where s < 0, lower it where s > 0
        raise_room = self._room(sp, bounds, raise_kinds, up=True)
        lower_room = self._room(sp, bounds, lower_kinds, up=False)
        gain_raise = np.where(s < 0, -s, 0.0)
        gain_lower = np.where(s > 0, s, 0.0)
        gain = np.r_[gain_raise, gain_lower]
        room = np.r_[raise_room, lower_room]
        order = np.argsort(-gain)
        effect = gain[order] * room[order]
        need = target * self.config.overshoot
        cum = np.cumsum(effect)
        if cum.size == 0 or cum[-1] <= 1e-12:
            return False
        k = int(np.searchsorted(cum, need))
        take = np.zeros_like(room)
        take[order[:k]] = room[order[:k]]
        if k < len(order) and gain[order[k]] > 0:
            prev = cum[k - 1] if k else 0.0
            take[order[k]] = min(room[order[k]], (need - prev) / gain[order[k]])
        n = self.n_group
        self._apply(sp, bounds, take[:n], raise_kinds, up=True)
        self._apply(sp, bounds, take[n:], lower_kinds, up=False)
        return True

    def _gain(self, reason: str, where: int, v, reactive: bool = False) -> np.ndarray:
        """Per correction group: how much the violated quantity falls per kW (``reactive``:
        per kvar, balanced feeders) of consumption removed there. Balanced: the flow's
        sensitivity per bus. Three-phase voltage: the unbalanced flow's sensitivity of the
        violated phase, per bus and phase code (a three-phase asset moves all phases
        equally); loading stays balanced per bus."""
        self.sens.at(v)
        if reason == "overload":
            s = self.sens.current_ka(where) * 100.0 / self.pf.rating_from[where]
        elif self._three is None or self.n_group == self.n_bus:
            s = self.sens.voltage(where, reactive)
        else:
            vm3 = self._three.vm_pu[where]
            phase = int(np.argmax(vm3) if reason == "voltage_high" else np.argmin(vm3))
            s3 = self.scenario.three_phase.voltage_sensitivity(self._three, where, phase)
            return (np.c_[s3, s3.mean(axis=1)] * (-1.0 if reason == "voltage_low" else 1.0)).ravel()
        s = s * (-1.0 if reason == "voltage_low" else 1.0)
        return s if self.n_group == self.n_bus else np.repeat(s, 4)

    def _free(self, sp: dict, bounds: dict, k: str, up: bool) -> np.ndarray:
        """Per asset of kind ``k``: how much it can still add to (up) or shed from its
        group's consumption (injections count negatively)."""
        lo, hi = bounds[k]
        if (consumption_sign(k) > 0) == up:
            return np.maximum(hi - sp[k], 0.0)
        return np.maximum(sp[k] - lo, 0.0)

    def _room(self, sp: dict, bounds: dict, order: tuple[str, ...], up: bool) -> np.ndarray:
        """Per correction group: how much consumption the listed kinds can still add (up)
        or shed."""
        room = np.zeros(self.n_group)
        for k in order:
            room += np.bincount(self._group[k], self._free(sp, bounds, k, up), self.n_group)
        return room

    def _apply(
        self, sp: dict, bounds: dict, delta_bus: np.ndarray, order: tuple[str, ...], up: bool
    ) -> None:
        """Spread each group's consumption change over its assets, kinds in ``order``."""
        left = delta_bus.copy()
        for k in order:
            if not np.any(left > 1e-12):
                return
            room = self._free(sp, bounds, k, up)
            bus = self._group[k]
            bus_room = np.bincount(bus, room, self.n_group)
            use_bus = np.minimum(left, bus_room)
            frac = np.divide(use_bus, bus_room, out=np.zeros_like(use_bus), where=bus_room > 0)
            sign = (1.0 if up else -1.0) * consumption_sign(k)
            sp[k] = sp[k] + sign * room * frac[bus]
            left -= use_bus

    def _grid_changes(self, requested, sp, limit_blocks, stages) -> list[_ChangeBlock]:
        """Changes made by the grid correction (not already explained by a device limit),
        each with the reason of the first correction of its stage."""
        reason_of = {}
        for stage, reason in stages:
            reason_of.setdefault(stage, reason)
        stage_of = {k: st for st, kinds in STAGE_KINDS.items() for k in (*kinds[0], *kinds[1])}
        out = []
        for k in [k for k in (*KINDS, *REACTIVE_KINDS) if k in sp]:
            moved = np.abs(sp[k] - requested[k]) > 1e-9
            for b in limit_blocks:
                if b.kind == k:
                    moved[b.asset] &= np.abs(sp[k][b.asset] - b.applied_kw) > 1e-9
            idx = np.flatnonzero(moved)
            if len(idx):
                # Q re-clipped after active power moved counts to the stage that moved it
                reason = reason_of.get(stage_of[k]) or stages[0][1]
                why = np.full(len(idx), reason)
                out.append(_ChangeBlock(k, idx, requested[k][idx], sp[k][idx], why))
        return out


class ShieldedController:
    """Wraps any controller so that each of its setpoint batches passes a ``SafetyShield``."""

    def __init__(self, inner, shield: SafetyShield | None = None) -> None:
        self.inner = inner
        self.shield = shield or SafetyShield()
        self.name = f"{getattr(inner, 'name', type(inner).__name__)}+shield"
        self.decisions: list[ShieldDecision] = []

    def reset(self, scenario) -> None:
        self.inner.reset(scenario)
        self.shield.reset(scenario)
        self.decisions = []

    def act(self, obs: Observation) -> Setpoints:
        safe, decision = self.shield.project(obs, self.inner.act(obs))
        self.decisions.append(decision)
        return safe

    def summary(self) -> dict[str, int | float]:
        """Counts of decisions by status and of changed actions by reason."""
        status = [d.status for d in self.decisions]
        out: dict[str, int | float] = {s: status.count(s) for s in STATUSES}
        counts = {r: 0 for r in REASONS}
        for d in self.decisions:
            for r, c in d.reason_counts().items():
                counts[r] += c
        out.update({f"changes_{r}": c for r, c in counts.items()})
        dt_h = self.shield.scenario.dt_h if self.decisions else 0.0
        out["intervention_kwh"] = float(sum(d.intervention_kw for d in self.decisions) * dt_h)
        return out
