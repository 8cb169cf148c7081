"""Network awareness for the dispatch LP: AC checks of a plan and linearised limits.

Voltages and branch loadings are linearised around the plan's own AC operating point:
``vm(z) ~= vm(z0) + S (z - z0)`` per horizon step, where ``vm(z0)`` comes from an AC power
flow of the whole horizon (``solve_batch``) and the sensitivity ``S`` (p.u. per kW of net
flexible consumption at each flexible bus) is the exact derivative of the AC solution at the
most stressed snapshot of the horizon (``PowerFlowModel.sensitivity``: one LU factorisation
of the Newton-Raphson Jacobian, one solve for every flexible bus). Only rows near
a limit are kept (screening); rows the AC check finds violated are added, with their limit
shrunk by the observed linearisation error, on the next pass.

On a three-phase feeder (``[grid] phases = 3``) the AC check is the unbalanced flow (each
bus's base load split by its customers' phases, PV by its inverters' phases, the bus's
flexible power by its assets' rating shares per phase) and the voltage rows are per bus and
phase (voltage points, bus-major), with sensitivities of that same model taken by finite
differences of the unbalanced flow (one batch of n_flex + 1 snapshots); screening keeps the
highest and the lowest phase of a bus and every phase within ``PHASE_SCREEN_PU`` of a limit,
the AC check forces in any other phase that crosses one. Loading rows hold the highest phase
current. The plan stays per bus: the LP sees what a bus's flexible power does to each phase
in its assets' rating proportions, not which of its assets moves (the shield corrects per
phase at dispatch).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from gridsync.dispatch.formulation import NetworkRows
from gridsync.dispatch.horizon import HorizonData
from gridsync.grid.powerflow import PowerFlowModel, PowerFlowResult
from gridsync.grid.threephase.feeder import ThreePhaseFeeder, branch_order
from gridsync.grid.threephase.solver import ThreePhaseNotConverged
from gridsync.model.assets import Fleet

FD_STEP_KW = 1.0  # finite-difference step of the three-phase sensitivities
FD_NOISE_FRAC = 1e-4
# three-phase screening: every phase this close to a limit gets a row, beyond that only the
# highest/lowest phase of a bus (fewer rows, without a second pass for the phase a plan
# pushes up while it pulls the highest one down)
PHASE_SCREEN_PU = 0.008


@dataclass
class Sensitivity:
    """d(vm)/dz (n_points, n_flex) in p.u./kW and d(loading)/dz (n_branch, n_flex) in %/kW;
    voltage points are buses (balanced) or (bus, phase) pairs, bus-major (three-phase);
    ``dv_dq``/``dl_dq`` (balanced only) the same per kvar of net reactive consumption, when
    asked for."""

    dv_dz: np.ndarray
    dl_dz: np.ndarray
    at_step: int
    dv_dq: np.ndarray | None = None
    dl_dq: np.ndarray | None = None


class NetworkLimits:
    """Linearised voltage and loading limits of one feeder for the dispatch LP."""

    def __init__(
        self,
        pf: PowerFlowModel,
        flex_bus: np.ndarray,
        voltage_min_pu: float,
        voltage_max_pu: float,
        loading_max_pct: float,
        screen_voltage_pu: float = 0.02,
        screen_loading_frac: float = 0.8,
        safety_pu: float = 0.0,
        safety_pct: float = 0.0,
        three_phase: ThreePhaseFeeder | None = None,
        fleet: Fleet | None = None,
        reactive: bool = False,
    ) -> None:
        self.pf = pf
        self.reactive = reactive
        self.three_phase = three_phase
        n_bus = len(pf.ppc_of_bus)
        self.point_bus = np.arange(n_bus)
        if three_phase is not None:
            self._flex_share = three_phase.asset_share(fleet)[flex_bus]
            # (n_pv, n_bus * 3): each PV inverter's output on its bus's phases
            pv_codes = three_phase.alloc.assets["pv"]
            self._pv_phase = _phase_incidence(
                fleet.pv.bus, three_phase.alloc.shares(pv_codes), n_bus
            )
            self._branch_order = branch_order(three_phase, pf.branch_names)
            self.point_bus = np.repeat(self.point_bus, 3)
        self.flex_bus = np.asarray(flex_bus, dtype=int)
        self.v_min, self.v_max = voltage_min_pu, voltage_max_pu
        self.l_max = loading_max_pct
        self.screen_v = screen_voltage_pu
        self.screen_l = screen_loading_frac
        self.safety_pu = safety_pu
        self.safety_pct = safety_pct

    @property
    def n_points(self) -> int:
        """Voltage points: one per bus (balanced) or per bus and phase (three-phase)."""
        return len(self.point_bus)

    def point_names(self, bus_names) -> np.ndarray:
        """A name per voltage point: the bus's, with ``.a``/``.b``/``.c`` on a three-phase
        feeder."""
        names = np.asarray(bus_names, dtype=str)
        if self.three_phase is None:
            return names
        return np.char.add(names[self.point_bus], np.tile([".a", ".b", ".c"], len(names)))

    def bus_kw(self, hd: HorizonData, z_kw: np.ndarray) -> np.ndarray:
        """Consumption per bus (H, n_bus) for flexible bus power ``z_kw`` (H, n_flex)."""
        p = hd.inflexible_kw.copy()
        p[:, self.flex_bus] += z_kw
        return p

    def _phase_kw(self, inflexible_kw: np.ndarray, pv_kw: np.ndarray, z_kw: np.ndarray):
        """(T, n_bus, 3) consumption from (T, n_bus) ``inflexible_kw`` (base load minus the
        (T, n_pv) available ``pv_kw``) and (T, n_flex) ``z_kw``: the base load by the
        customers' phases, PV by its inverters' phases, each bus's flexible power by its
        assets' rating shares per phase."""
        tp = self.three_phase
        pv3 = (pv_kw @ self._pv_phase).reshape(len(pv_kw), -1, 3)
        p = (inflexible_kw + pv3.sum(axis=2))[..., None] * tp.base_share - pv3
        p[:, self.flex_bus] += z_kw[..., None] * self._flex_share
        return p

    def bus_kvar(self, hd: HorizonData, q_kvar: np.ndarray | None) -> np.ndarray:
        """Reactive consumption per bus (H, n_bus) with the inverters' net reactive
        consumption ``q_kvar`` (H, n_flex) at the flexible buses (None: unity power factor)."""
        if q_kvar is None:
            return hd.base_kvar
        q = hd.base_kvar.copy()
        q[:, self.flex_bus] += q_kvar
        return q

    def check(
        self, hd: HorizonData, z_kw: np.ndarray, q_kvar: np.ndarray | None = None
    ) -> PowerFlowResult:
        """AC power flow of every horizon step of a plan (with the inverters' net reactive
        consumption ``q_kvar`` per flexible bus, balanced feeders); on a three-phase feeder the
        voltages of every phase (``vm_pu`` (H, n_points)) and loadings (highest phase
        current) of the unbalanced flow, losses from the balanced one."""
        res = self.pf.solve_batch(self.bus_kw(hd, z_kw), self.bus_kvar(hd, q_kvar))
        if self.three_phase is None:
            return res
        tp = self.three_phase
        vm3, load3, ok = tp.solve_many(
            self._phase_kw(hd.inflexible_kw, hd.pv_available_kw, z_kw),
            hd.base_kvar[..., None] * tp.base_share,
        )
        vm = np.where(ok[:, None], vm3.reshape(len(vm3), -1), np.repeat(res.vm_pu, 3, axis=1))
        loading = res.branch_loading_pct
        if self._branch_order is not None:
            loading = np.where(ok[:, None], load3[:, self._branch_order], loading)
        return replace(res, vm_pu=vm, branch_loading_pct=loading)

    def violations(self, res: PowerFlowResult, tol_pu: float = 0.0, tol_pct: float = 0.0):
        """Masks of voltage (H, n_bus) and loading (H, n_branch) violations."""
        v_bad = (res.vm_pu > self.v_max + tol_pu) | (res.vm_pu < self.v_min - tol_pu)
        l_bad = res.branch_loading_pct > self.l_max + tol_pct
        return v_bad, l_bad

    def sensitivity(
        self,
        hd: HorizonData,
        z_kw: np.ndarray,
        res: PowerFlowResult,
        q_kvar: np.ndarray | None = None,
    ) -> Sensitivity:
        """AC sensitivities at the horizon step furthest from nominal voltage: exact
        derivatives of the balanced flow (to reactive consumption too when the limits are
        ``reactive``), or finite differences of the unbalanced one (each flexible bus's power
        moved by ``FD_STEP_KW`` in its assets' phase proportions)."""
        stress = np.max(np.abs(res.vm_pu - 1.0), axis=1)
        t = int(np.argmax(stress))
        if self.three_phase is not None:
            return self._three_phase_sensitivity(hd, z_kw, t)
        v0 = self.pf.v_init.astype(complex)
        v0[self.pf.ppc_of_bus] = res.vm_pu[t] * np.exp(1j * np.radians(res.va_deg[t]))
        dv, dl = self.pf.sensitivity(
            self.bus_kw(hd, z_kw)[t],
            self.bus_kvar(hd, q_kvar)[t],
            self.flex_bus,
            v0=v0,
            reactive=self.reactive,
        )
        n = len(self.flex_bus)
        return Sensitivity(
            dv_dz=dv[:, :n],
            dl_dz=dl[:, :n],
            at_step=hd.step0 + t,
            dv_dq=dv[:, n:] if self.reactive else None,
            dl_dq=dl[:, n:] if self.reactive else None,
        )

    def _three_phase_sensitivity(self, hd: HorizonData, z_kw: np.ndarray, t: int) -> Sensitivity:
        tp, nf = self.three_phase, len(self.flex_bus)
        z = np.repeat(z_kw[t][None, :], nf + 1, axis=0)
        z[np.arange(1, nf + 1), np.arange(nf)] += FD_STEP_KW
        rep = lambda a: np.repeat(a[t][None, :], nf + 1, axis=0)  # noqa: E731
        p = self._phase_kw(rep(hd.inflexible_kw), rep(hd.pv_available_kw), z)
        q = np.repeat((hd.base_kvar[t][:, None] * tp.base_share)[None], nf + 1, axis=0)
        vm3, load3, ok = tp.solve_many(p, q)
        if not ok.all():
            msg = f"three-phase sensitivity at horizon step {t}: the unbalanced flow diverged"
            raise ThreePhaseNotConverged(msg)
        vm = vm3.reshape(nf + 1, -1)
        dv = ((vm[1:] - vm[0]) / FD_STEP_KW).T
        # below FD_NOISE_FRAC of the largest entry the differences are the solver's tolerance,
        # not the network: zeroed (they would widen the LP's coefficient range for nothing)
        dv[np.abs(dv) < FD_NOISE_FRAC * np.abs(dv).max(initial=0.0)] = 0.0
        if self._branch_order is None:
            dl = np.zeros((self.pf.n_branch, nf))
        else:
            load = load3[:, self._branch_order]
            dl = ((load[1:] - load[0]) / FD_STEP_KW).T
        return Sensitivity(dv_dz=dv, dl_dz=dl, at_step=hd.step0 + t)

    def rows(
        self,
        res: PowerFlowResult,
        z_kw: np.ndarray,
        sens: Sensitivity,
        forced_v: np.ndarray,
        forced_l: np.ndarray,
        margin_v: np.ndarray,
        margin_l: np.ndarray,
        q_kvar: np.ndarray | None = None,
    ) -> NetworkRows:
        """Screened rows linearised at the AC result ``res`` of plan ``z_kw`` (and its net
        reactive consumption ``q_kvar`` per flexible bus when the limits are ``reactive``).

        ``forced_*`` masks add rows regardless of screening; ``margin_*`` shrink limits further
        than the constant safety margins (plans that sit exactly on a limit would otherwise
        cross it by the linearisation error).
        """
        vm = res.vm_pu
        near_hi, near_lo = vm > self.v_max - self.screen_v, vm < self.v_min + self.screen_v
        if self.three_phase is not None:
            # within the screen: the phase nearest the limit and every phase within
            # PHASE_SCREEN_PU of it (a phase the plan still pushes over is forced in by the
            # next pass's AC check)
            by_bus = vm.reshape(len(vm), -1, 3)
            near_hi &= (by_bus == by_bus.max(axis=2, keepdims=True)).reshape(vm.shape) | (
                vm > self.v_max - PHASE_SCREEN_PU
            )
            near_lo &= (by_bus == by_bus.min(axis=2, keepdims=True)).reshape(vm.shape) | (
                vm < self.v_min + PHASE_SCREEN_PU
            )
        near_v = near_hi | near_lo
        near_v[:, ~np.any(np.abs(sens.dv_dz) > 1e-9, axis=1)] = False
        v_t, v_bus = np.nonzero(near_v | forced_v)
        dv = sens.dv_dz[v_bus]
        v_off = vm[v_t, v_bus] - np.einsum("rf,rf->r", dv, z_kw[v_t])
        dvq = dlq = q_steps = None
        if sens.dv_dq is not None:
            dvq = sens.dv_dq[v_bus]
            if q_kvar is not None:
                v_off = v_off - np.einsum("rf,rf->r", dvq, q_kvar[v_t])
            # Q is a decision where the voltage is high (PV over-voltage, the case it is
            # cheaper than curtailment); elsewhere the inverters keep unity power factor
            q_steps = np.unique(v_t[vm[v_t, v_bus] > self.v_max - self.screen_v])
        load = res.branch_loading_pct
        near_l = (load > self.screen_l * self.l_max) | forced_l
        l_t, l_br = np.nonzero(near_l)
        dl = sens.dl_dz[l_br]
        l_off = load[l_t, l_br] - np.einsum("rf,rf->r", dl, z_kw[l_t])
        if sens.dl_dq is not None:
            dlq = sens.dl_dq[l_br]
            if q_kvar is not None:
                l_off = l_off - np.einsum("rf,rf->r", dlq, q_kvar[l_t])
        mv = margin_v[v_t, v_bus]
        return NetworkRows(
            v_t=v_t,
            v_bus=v_bus,
            v_offset=v_off,
            v_lo=np.full(len(v_t), self.v_min + self.safety_pu) + mv,
            v_hi=np.full(len(v_t), self.v_max - self.safety_pu) - mv,
            dv_dz=dv,
            l_t=l_t,
            l_branch=l_br,
            l_offset=l_off,
            l_hi=np.full(len(l_t), self.l_max - self.safety_pct) - margin_l[l_t, l_br],
            dl_dz=dl,
            dv_dq=dvq,
            dl_dq=dlq,
            q_steps=q_steps,
        )

    def linearisation_error(
        self,
        rows: NetworkRows,
        z_kw: np.ndarray,
        res: PowerFlowResult,
        q_kvar: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """How far the AC result of plan ``z_kw`` lies beyond what the LP rows predicted.

        Returns (H, n_bus) p.u. and (H, n_branch) % arrays, positive where the AC value is
        worse (further out of the band) than the linear model said; zero for rows not in the LP.
        """
        err_v = np.zeros_like(res.vm_pu)
        pred = rows.v_offset + np.einsum("rf,rf->r", rows.dv_dz, z_kw[rows.v_t])
        if rows.dv_dq is not None and q_kvar is not None:
            pred = pred + np.einsum("rf,rf->r", rows.dv_dq, q_kvar[rows.v_t])
        actual = res.vm_pu[rows.v_t, rows.v_bus]
        high = actual > 0.5 * (self.v_min + self.v_max)
        err_v[rows.v_t, rows.v_bus] = np.maximum(np.where(high, actual - pred, pred - actual), 0)
        err_l = np.zeros_like(res.branch_loading_pct)
        pred_l = rows.l_offset + np.einsum("rf,rf->r", rows.dl_dz, z_kw[rows.l_t])
        if rows.dl_dq is not None and q_kvar is not None:
            pred_l = pred_l + np.einsum("rf,rf->r", rows.dl_dq, q_kvar[rows.l_t])
        actual_l = res.branch_loading_pct[rows.l_t, rows.l_branch]
        err_l[rows.l_t, rows.l_branch] = np.maximum(actual_l - pred_l, 0.0)
        return err_v, err_l


def _phase_incidence(bus: np.ndarray, share: np.ndarray, n_bus: int) -> np.ndarray:
    """(n_assets, n_bus * 3): asset i's (n, 3) phase ``share`` at its ``bus``'s columns."""
    out = np.zeros((len(bus), n_bus * 3))
    rows = np.arange(len(bus))
    for ph in range(3):
        out[rows, np.asarray(bus, dtype=int) * 3 + ph] = share[:, ph]
    return out
