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
bus's inflexible load split by its customers' phases, its flexible power by its assets'
phases), so the rows hold the worst phase; the sensitivities stay balanced.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from gridsync.dispatch.formulation import NetworkRows
from gridsync.dispatch.horizon import HorizonData
from gridsync.grid.powerflow import PowerFlowModel, PowerFlowResult
from gridsync.grid.threephase.feeder import ThreePhaseFeeder, branch_order
from gridsync.model.assets import Fleet


@dataclass
class Sensitivity:
    """d(vm)/dz (n_bus, n_flex) in p.u./kW and d(loading)/dz (n_branch, n_flex) in %/kW."""

    dv_dz: np.ndarray
    dl_dz: np.ndarray
    at_step: int


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
    ) -> None:
        self.pf = pf
        self.three_phase = three_phase
        if three_phase is not None:
            self._flex_share = three_phase.asset_share(fleet)[flex_bus]
            self._branch_order = branch_order(three_phase, pf.branch_names)
        self.flex_bus = np.asarray(flex_bus, dtype=int)
        self.v_min, self.v_max = voltage_min_pu, voltage_max_pu
        self.l_max = loading_max_pct
        self.screen_v = screen_voltage_pu
        self.screen_l = screen_loading_frac
        self.safety_pu = safety_pu
        self.safety_pct = safety_pct

    def bus_kw(self, hd: HorizonData, z_kw: np.ndarray) -> np.ndarray:
        """Consumption per bus (H, n_bus) for flexible bus power ``z_kw`` (H, n_flex)."""
        p = hd.inflexible_kw.copy()
        p[:, self.flex_bus] += z_kw
        return p

    def check(self, hd: HorizonData, z_kw: np.ndarray) -> PowerFlowResult:
        """AC power flow of every horizon step of a plan; on a three-phase feeder the
        voltages (worst phase) and loadings (worst phase current) of the unbalanced flow."""
        res = self.pf.solve_batch(self.bus_kw(hd, z_kw), hd.base_kvar)
        if self.three_phase is None:
            return res
        tp = self.three_phase
        p = hd.inflexible_kw[..., None] * tp.base_share
        p[:, self.flex_bus] += z_kw[..., None] * self._flex_share
        vm3, load3, ok = tp.solve_many(p, hd.base_kvar[..., None] * tp.base_share)
        worst = np.abs(vm3 - 1.0).argmax(axis=2)
        vm = np.take_along_axis(vm3, worst[..., None], axis=2)[..., 0]
        vm = np.where(ok[:, None], vm, res.vm_pu)
        loading = res.branch_loading_pct
        if self._branch_order is not None:
            loading = np.where(ok[:, None], load3[:, self._branch_order], loading)
        return replace(res, vm_pu=vm, branch_loading_pct=loading)

    def violations(self, res: PowerFlowResult, tol_pu: float = 0.0, tol_pct: float = 0.0):
        """Masks of voltage (H, n_bus) and loading (H, n_branch) violations."""
        v_bad = (res.vm_pu > self.v_max + tol_pu) | (res.vm_pu < self.v_min - tol_pu)
        l_bad = res.branch_loading_pct > self.l_max + tol_pct
        return v_bad, l_bad

    def sensitivity(self, hd: HorizonData, z_kw: np.ndarray, res: PowerFlowResult) -> Sensitivity:
        """Exact AC sensitivities at the horizon step furthest from nominal voltage."""
        stress = np.max(np.abs(res.vm_pu - 1.0), axis=1)
        t = int(np.argmax(stress))
        v0 = self.pf.v_init.astype(complex)
        v0[self.pf.ppc_of_bus] = res.vm_pu[t] * np.exp(1j * np.radians(res.va_deg[t]))
        dv, dl = self.pf.sensitivity(
            self.bus_kw(hd, z_kw)[t], hd.base_kvar[t], self.flex_bus, v0=v0
        )
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
    ) -> NetworkRows:
        """Screened rows linearised at the AC result ``res`` of plan ``z_kw``.

        ``forced_*`` masks add rows regardless of screening; ``margin_*`` shrink limits further
        than the constant safety margins (plans that sit exactly on a limit would otherwise
        cross it by the linearisation error).
        """
        vm = res.vm_pu
        near_v = (vm > self.v_max - self.screen_v) | (vm < self.v_min + self.screen_v)
        near_v[:, ~np.any(np.abs(sens.dv_dz) > 1e-9, axis=1)] = False
        v_t, v_bus = np.nonzero(near_v | forced_v)
        dv = sens.dv_dz[v_bus]
        v_off = vm[v_t, v_bus] - np.einsum("rf,rf->r", dv, z_kw[v_t])
        load = res.branch_loading_pct
        near_l = (load > self.screen_l * self.l_max) | forced_l
        l_t, l_br = np.nonzero(near_l)
        dl = sens.dl_dz[l_br]
        l_off = load[l_t, l_br] - np.einsum("rf,rf->r", dl, z_kw[l_t])
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
        )

    def linearisation_error(
        self, rows: NetworkRows, z_kw: np.ndarray, res: PowerFlowResult
    ) -> tuple[np.ndarray, np.ndarray]:
        """How far the AC result of plan ``z_kw`` lies beyond what the LP rows predicted.

        Returns (H, n_bus) p.u. and (H, n_branch) % arrays, positive where the AC value is
        worse (further out of the band) than the linear model said; zero for rows not in the LP.
        """
        err_v = np.zeros_like(res.vm_pu)
        pred = rows.v_offset + np.einsum("rf,rf->r", rows.dv_dz, z_kw[rows.v_t])
        actual = res.vm_pu[rows.v_t, rows.v_bus]
        high = actual > 0.5 * (self.v_min + self.v_max)
        err_v[rows.v_t, rows.v_bus] = np.maximum(np.where(high, actual - pred, pred - actual), 0)
        err_l = np.zeros_like(res.branch_loading_pct)
        pred_l = rows.l_offset + np.einsum("rf,rf->r", rows.dl_dz, z_kw[rows.l_t])
        actual_l = res.branch_loading_pct[rows.l_t, rows.l_branch]
        err_l[rows.l_t, rows.l_branch] = np.maximum(actual_l - pred_l, 0.0)
        return err_v, err_l
