"""AC power flow of a feeder over a fixed admittance matrix, for one snapshot or many at once.

The admittance model comes from pandapower's converter through ``gridsync.grid.topology``
(switches, out-of-service elements, dead islands, several slacks, PV generators, wards,
xwards, motors, shunts, ZIP loads and scaling are pandapower's element models). Customer
loads and the feeder's PV (the elements a scenario drives per step) are zeroed in the model
and supplied per snapshot as consumption by feeder bus; every other element stays in it as a
fixed injection. The solvers are ours and vectorised, because per-call overhead dominates
``pandapower.runpp`` on small feeders:

* ``solve``: Newton-Raphson in polar form with a sparse Jacobian (one snapshot).
* ``solve_batch``: fixed-point (implicit Z-bus) iteration for many snapshots at once, with one
  factorisation of ``Ybus[pq, pq]`` shared by every snapshot and iteration, BLAS pinned to
  one thread; snapshots it cannot converge go to Newton-Raphson one by one, and the result
  says per snapshot whether it converged.

Both are checked against ``pandapower.runpp`` in the tests.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from gridsync.grid.newton import JacobianCache, JacobianPattern, newton
from gridsync.model.network import Feeder

SQRT3 = np.sqrt(3.0)
DENSE_ZBUS_MAX_BUSES = 1500


@functools.cache
def _blas_controller():
    """One threadpoolctl controller per process: building it scans the loaded libraries
    (~15 ms), limiting threads through it is cheap. The dense Z-bus product ran 5-25x slower
    on multi-threaded BLAS on a busy 2-core machine than on one thread."""
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


class PowerFlowNotConverged(RuntimeError):
    """The power flow did not converge: the feeder cannot carry these injections."""


class PowerFlowInputError(ValueError):
    """Injections that no power flow can take (NaN, infinite, wrong shape), named by snapshot
    and bus."""


@dataclass
class PowerFlowResult:
    """Results by feeder bus position and branch (lines first, then transformers).

    Arrays have a leading time axis when produced by ``solve_batch``; there ``converged`` is
    a boolean array per snapshot (non-converged snapshots hold NaN). ``p_slack_kw`` is what
    the slacks (ext_grids) deliver, a load at the slack bus included; ``losses_kw`` is the
    series loss of lines and transformers (shunt power is not a loss), as pandapower sums
    ``pl_mw``.
    """

    vm_pu: np.ndarray
    va_deg: np.ndarray
    branch_loading_pct: np.ndarray
    p_slack_kw: np.ndarray
    q_slack_kvar: np.ndarray
    losses_kw: np.ndarray
    iterations: int
    converged: bool | np.ndarray


@dataclass
class PowerFlowModel:
    """Everything a power flow needs that does not change between snapshots (internal buses
    in pandapower's ``ppci`` numbering; ``ref`` is the first slack, ``refs`` all of them)."""

    ybus: sp.csr_matrix
    yf: sp.csr_matrix
    yt: sp.csr_matrix
    base_mva: float
    ref: int
    pq: np.ndarray
    v_init: np.ndarray
    bus_to_ppc: sp.csr_matrix
    ppc_of_bus: np.ndarray
    branch_names: np.ndarray
    branch_kind: np.ndarray
    branch_from_pos: np.ndarray
    branch_to_pos: np.ndarray
    i_base_from_ka: np.ndarray
    i_base_to_ka: np.ndarray
    rating_from: np.ndarray
    rating_to: np.ndarray
    refs: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=int))
    pv: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=int))
    bus_names: np.ndarray | None = None
    s_fixed: np.ndarray | None = None  # fixed injection (non-slack gens - constant loads), p.u.
    s_fixed_i: np.ndarray | None = None  # constant-current consumption of fixed loads, p.u.
    s_fixed_z: np.ndarray | None = None  # constant-impedance consumption of fixed loads, p.u.
    loss_y: tuple | None = None  # (Yf, Yt, from, to) of every line/transformer branch
    load_zip_frac: np.ndarray | None = None  # ZIP shares of the network's loads per bus
    dc: tuple | None = None  # (B, P offset) of the DC power flow, for cold starts
    _lu: object = None
    _pattern: object = None
    _dc_lu: object = None
    _cache: object = None
    _y_refs: object = None

    def __post_init__(self) -> None:
        n = self.ybus.shape[0]
        if not len(self.refs):
            self.refs = np.array([self.ref])
        for name in ("s_fixed", "s_fixed_i", "s_fixed_z"):
            if getattr(self, name) is None:
                setattr(self, name, np.zeros(n, dtype=complex))
        if self.loss_y is None:
            f = self.ppc_of_bus[self.branch_from_pos]
            t = self.ppc_of_bus[self.branch_to_pos]
            self.loss_y = (self.yf, self.yt, f, t)
        self._zip = bool(np.any(self.s_fixed_i) or np.any(self.s_fixed_z))
        self._cache = JacobianCache()
        if self.load_zip_frac is not None and not np.any(self.load_zip_frac):
            self.load_zip_frac = None

    @property
    def pvpq(self) -> np.ndarray:
        return np.sort(np.r_[self.pv, self.pq]).astype(int)

    def _jacobian_pattern(self) -> JacobianPattern:
        if self._pattern is None:
            self._pattern = JacobianPattern(self.ybus, self.pvpq, self.pq)
        return self._pattern

    @property
    def n_branch(self) -> int:
        return len(self.branch_names)

    def _validate(self, p_kw: np.ndarray, q_kvar: np.ndarray) -> None:
        """Raise ``PowerFlowInputError`` naming the first bad snapshot and bus."""
        n = self.bus_to_ppc.shape[1]
        for name, arr in (("p_kw", p_kw), ("q_kvar", q_kvar)):
            if arr.shape[-1] != n:
                msg = f"{name} has {arr.shape[-1]} buses per snapshot, the feeder has {n}"
                raise PowerFlowInputError(msg)
            if np.isfinite(arr.sum()):  # one reduction on the hot path; NaN/inf propagate
                continue
            bad = ~np.isfinite(np.atleast_2d(arr))
            if bad.any():
                t, b = np.argwhere(bad)[0]
                bus = self.bus_names[b] if self.bus_names is not None else b
                msg = (
                    f"{name} is {np.atleast_2d(arr)[t, b]} at snapshot {t}, bus {bus!s} "
                    f"(position {b}); {int(bad.sum())} value(s) are not finite"
                )
                raise PowerFlowInputError(msg)

    def injections_pu(self, p_kw: np.ndarray, q_kvar: np.ndarray) -> np.ndarray:
        """Complex injections per internal bus (generator convention, p.u.) at 1 p.u. voltage:
        the fixed elements plus the snapshot's consumption ``p_kw``/``q_kvar`` by feeder bus
        position, shape (n_bus,) or (T, n_bus)."""
        s = (np.asarray(p_kw) + 1j * np.asarray(q_kvar)) / (1e3 * self.base_mva)
        return self.s_fixed - (self.bus_to_ppc @ s.T).T

    def _load_model(self, p_kw, q_kvar, zip_kw, zip_kvar):
        """(constant injection, current-type, impedance-type consumption) per internal bus in
        p.u. with a leading snapshot axis; the latter two are None on a constant-power model.

        ``zip_kw``/``zip_kvar`` is the part of the consumption that follows the bus's
        constant-current/impedance shares (pandapower's ``const_i_p_percent`` ...: the plain
        mean over the bus's loads, which pandapower applies to every PQ element at the bus);
        the rest is constant power. The twin passes the network's loads, not its assets."""
        sbus = self.injections_pu(p_kw, q_kvar)
        s_i, s_z = self.s_fixed_i[None, :], self.s_fixed_z[None, :]
        has_zip = self._zip
        if zip_kw is not None and self.load_zip_frac is not None:
            z = (np.atleast_2d(zip_kw) + 1j * np.atleast_2d(zip_kvar)) / (1e3 * self.base_mva)
            z = (self.bus_to_ppc @ z.T).T
            ci_p, cz_p, ci_q, cz_q = self.load_zip_frac.T
            zi = z.real * ci_p + 1j * z.imag * ci_q
            zz = z.real * cz_p + 1j * z.imag * cz_q
            sbus = sbus + zi + zz  # these shares leave the constant-power part
            s_i, s_z, has_zip = s_i + zi, s_z + zz, True
        if not has_zip:
            return sbus, None, None
        return sbus, s_i, s_z

    def solve(
        self,
        p_kw: np.ndarray,
        q_kvar: np.ndarray,
        v0: np.ndarray | None = None,
        tol_pu: float = 1e-8,
        max_iter: int = 20,
        zip_kw: np.ndarray | None = None,
        zip_kvar: np.ndarray | None = None,
    ) -> tuple[PowerFlowResult, np.ndarray]:
        """Newton-Raphson for one snapshot; returns results and the complex voltages to
        warm-start. ``zip_kw``/``zip_kvar``: the part of ``p_kw``/``q_kvar`` that is the
        network's own (voltage-dependent) loads, see ``_load_model``."""
        p_kw, q_kvar = np.asarray(p_kw, dtype=float), np.asarray(q_kvar, dtype=float)
        self._validate(p_kw, q_kvar)
        sbus, s_i, s_z = self._load_model(p_kw, q_kvar, zip_kw, zip_kvar)
        sbus = sbus[0] if sbus.ndim == 2 else sbus
        zi = None if s_i is None else s_i[0]
        zz = None if s_z is None else s_z[0]
        res = self._newton(sbus, zi, zz, tol_pu, max_iter, v0)
        if not res.converged:
            msg = (
                f"Newton-Raphson did not converge in {max_iter} iterations "
                f"(max mismatch {res.max_mismatch_pu:.3g} p.u.)"
            )
            raise PowerFlowNotConverged(msg)
        out = self._results(res.v[None, :], sbus[None, :], s_i, s_z, res.iterations, True, True)
        return out, res.v

    def _newton(self, sbus, zi, zz, tol_pu, max_iter, v0=None):
        """Newton-Raphson from ``v0`` if given, else from ``v_init`` and, should that start be
        too far off (large meshed grids), from a DC power flow of this snapshot."""
        pat, cache = self._jacobian_pattern(), self._cache
        start = self.v_init if v0 is None else v0
        res = newton(self.ybus, pat, sbus, start, zi, zz, tol_pu, max_iter, cache)
        if not res.converged and v0 is None:
            v_dc = self.dc_start(sbus)
            res = newton(self.ybus, pat, sbus, v_dc, zi, zz, tol_pu, max_iter, cache)
        return res

    def dc_start(self, sbus: np.ndarray) -> np.ndarray:
        """Voltages with ``v_init``'s magnitudes and the angles of a DC power flow of ``sbus``
        (pandapower's B matrix with phase-shift injections when the model has it, else
        -Im Ybus): the start that gets Newton-Raphson home on large meshed grids, where the
        no-load point can be far off or lead to a spurious low-voltage solution."""
        pvpq, refs = self.pvpq, self.refs
        if self._dc_lu is None:
            bdc, offset = self.dc if self.dc is not None else (-self.ybus.imag, 0.0)
            bdc = sp.csr_matrix(bdc)
            lu = spla.splu(sp.csc_matrix(bdc[pvpq][:, pvpq]))
            self._dc_lu = (lu, bdc[pvpq][:, refs], np.broadcast_to(offset, len(self.v_init)))
        lu, b_ref, offset = self._dc_lu
        va = np.angle(self.v_init)
        va[pvpq] = lu.solve((np.real(sbus) - offset)[pvpq] - b_ref @ va[refs])
        return np.abs(self.v_init) * np.exp(1j * va)

    def sensitivity(
        self,
        p_kw: np.ndarray,
        q_kvar: np.ndarray,
        at_bus: np.ndarray,
        v0: np.ndarray | None = None,
        chunk: int = 128,
        reactive: bool = False,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Exact derivatives of the AC solution w.r.t. active consumption at ``at_bus``
        (with ``reactive``: then w.r.t. reactive consumption there, in kvar, as k more columns).

        The snapshot is solved by Newton-Raphson (warm-started from ``v0``), then the implicit
        function theorem gives ``dx/dP = -J^-1 dF/dP`` for every bus in ``at_bus`` from one
        sparse LU factorisation of the Jacobian. Returns ``dvm`` (n_bus, k) in p.u./kW and
        ``dloading`` (n_branch, k) in %/kW, the loading derivative taken on the branch end
        that sets the loading at this operating point (zero on branches carrying no current).
        """
        _, v = self.solve(p_kw, q_kvar, v0=v0, tol_pu=1e-10)
        pvpq, pq = self.pvpq, self.pq
        na, n = len(pvpq), len(pq)
        pos_a = np.full(len(v), -1)
        pos_a[pvpq] = np.arange(na)
        pos_m = np.full(len(v), -1)
        pos_m[pq] = np.arange(n)
        at_row = pos_a[self.ppc_of_bus[np.asarray(at_bus, dtype=int)]]
        if np.any(at_row < 0):
            msg = "at_bus contains the slack bus, whose power does not change the voltages"
            raise ValueError(msg)
        if reactive:
            q_row = pos_m[self.ppc_of_bus[np.asarray(at_bus, dtype=int)]]
            if np.any(q_row < 0):
                msg = "reactive sensitivities need at_bus to be PQ buses"
                raise ValueError(msg)
            at_row = np.r_[at_row, na + q_row]
        dload = None
        if self._zip:  # the network's fixed ZIP elements (snapshot loads taken as constant P)
            dload = self.s_fixed_i + 2.0 * self.s_fixed_z * np.abs(v)
        jac = self._jacobian_pattern().jacobian(v, self.ybus @ v, dload)
        # minimum degree on J'+J: less fill than COLAMD on radial feeders
        lu = spla.splu(jac, permc_spec="MMD_AT_PLUS_A")
        # d|I|/dx = Re(conj(I)/|I| dI/dx) with dI = Y_side diag(V) (j dVa + dVm/|V|): one real
        # sparse matrix maps [dVa_pvpq, dVm_pq] to loading derivatives
        i_from, i_to = self.yf @ v, self.yt @ v
        rel_from = self.i_base_from_ka / self.rating_from
        rel_to = self.i_base_to_ka / self.rating_to
        from_side = np.abs(i_from) * rel_from >= np.abs(i_to) * rel_to
        i_side = np.where(from_side, i_from, i_to)
        mag = np.abs(i_side)
        unit = np.divide(np.conj(i_side), mag, out=np.zeros_like(i_side), where=mag > 0)
        weight = 100.0 * np.where(from_side, rel_from, rel_to) * unit
        y_side = (
            sp.diags(from_side.astype(float)) @ self.yf + sp.diags((~from_side) * 1.0) @ self.yt
        )
        y_w = sp.diags(weight) @ y_side
        d_load = sp.hstack(
            [
                (y_w[:, pvpq] @ sp.diags(1j * v[pvpq])).real,
                (y_w[:, pq] @ sp.diags(v[pq] / np.abs(v[pq]))).real,
            ]
        ).tocsr()
        vm_bus = pos_m[self.ppc_of_bus] >= 0
        vm_row = na + pos_m[self.ppc_of_bus][vm_bus]
        k = len(at_row)
        dvm = np.zeros((len(self.ppc_of_bus), k))
        dloading = np.empty((self.n_branch, k))
        # +1 kW (kvar) of consumption is -1 kW (kvar) of injection: dF/dP = +e_bus / S_base
        # on the P (Q) rows
        for c0 in range(0, k, chunk):
            cols = np.arange(c0, min(c0 + chunk, k))
            rhs = np.zeros((na + n, len(cols)))
            rhs[at_row[cols], np.arange(len(cols))] = -1.0 / (1e3 * self.base_mva)
            dx = lu.solve(rhs)  # chunked: SuperLU's solve is several times faster per column
            dvm[vm_bus, c0 : c0 + len(cols)] = dx[vm_row]
            dloading[:, c0 : c0 + len(cols)] = d_load @ dx
        return dvm, dloading

    def solve_batch(
        self,
        p_kw: np.ndarray,
        q_kvar: np.ndarray,
        tol_pu: float = 1e-9,
        max_iter: int = 100,
        on_failure: str = "raise",
        zip_kw: np.ndarray | None = None,
        zip_kvar: np.ndarray | None = None,
    ) -> PowerFlowResult:
        """Power flow of T snapshots at once (arrays of shape (T, n_bus)).

        Fixed-point iteration on all snapshots together; any snapshot left unconverged gets
        Newton-Raphson on its own. ``on_failure="raise"`` raises ``PowerFlowNotConverged``
        naming the snapshots that still fail; ``"report"`` returns them as NaN with
        ``converged[t] = False``. ``zip_kw``/``zip_kvar`` as in ``solve``, shape (T, n_bus).
        """
        p_kw = np.atleast_2d(np.asarray(p_kw, dtype=float))
        q_kvar = np.atleast_2d(np.asarray(q_kvar, dtype=float))
        self._validate(p_kw, q_kvar)
        sbus, s_i, s_z = self._load_model(p_kw, q_kvar, zip_kw, zip_kvar)
        n_t = sbus.shape[0]
        if s_i is not None:
            s_i = np.broadcast_to(s_i, sbus.shape)
            s_z = np.broadcast_to(s_z, sbus.shape)
        v = np.tile(self.v_init, (n_t, 1)).astype(complex)
        done = np.zeros(n_t, dtype=bool)
        iterations = 0
        if not len(self.pv):
            with _blas_controller().limit(limits=1, user_api="blas"):
                v, done, iterations = self._fixed_point(sbus, s_i, s_z, v, tol_pu, max_iter)
        warm = None  # Newton-Raphson snapshot by snapshot, warm from the last one solved
        for t in np.flatnonzero(~done):
            zi = None if s_i is None else s_i[t]
            zz = None if s_z is None else s_z[t]
            res = self._newton(sbus[t], zi, zz, tol_pu, 20, warm)
            if not res.converged and warm is not None:
                res = self._newton(sbus[t], zi, zz, tol_pu, 20)
            v[t] = res.v if res.converged else np.nan
            done[t] = res.converged
            warm = res.v if res.converged else warm
        if not done.all() and on_failure == "raise":
            bad = np.flatnonzero(~done)
            msg = (
                f"power flow did not converge for {len(bad)} of {n_t} snapshots "
                f"(snapshot(s) {', '.join(map(str, bad[:10]))}{' ...' if len(bad) > 10 else ''})"
            )
            raise PowerFlowNotConverged(msg)
        return self._results(v, sbus, s_i, s_z, iterations, done, squeeze=False)

    def _fixed_point(self, sbus, s_i, s_z, v, tol_pu, max_iter):
        """Implicit Z-bus iteration ``V_pq = Y_pq,pq^-1 (conj(S_pq / V_pq) - Y_pq,ref V_ref)``,
        ZIP loads re-evaluated at each iterate; per-snapshot convergence."""
        pq, refs = self.pq, self.refs
        if self._lu is None:
            self._lu = (self._zbus_solver(), self.ybus[pq][:, refs].toarray())
        solve, y_pq_ref = self._lu
        fixed_v = y_pq_ref @ self.v_init[refs]
        vpq = v[:, pq].T.copy()
        spq = sbus[:, pq].T
        if s_i is not None:
            zi, zz = s_i[:, pq].T, s_z[:, pq].T
        step = np.full(v.shape[0], np.inf)
        iterations = 0
        while iterations < max_iter:
            iterations += 1
            s = spq
            if s_i is not None:
                vm = np.abs(vpq)
                s = spq - zi * vm - zz * vm**2
            new = solve(np.conj(s / vpq) - fixed_v[:, None])
            step = np.max(np.abs(new - vpq), axis=0)
            vpq = new
            if np.all(step < tol_pu):
                break
        done = step < tol_pu
        v[:, pq] = vpq.T
        return v, done, iterations

    def _zbus_solver(self):
        """``rhs -> Ybus[pq, pq]^-1 rhs``: a dense inverse (one BLAS product per iteration) on
        feeders up to ``DENSE_ZBUS_MAX_BUSES``, a shared sparse LU factorisation beyond."""
        y_pq = self.ybus[self.pq][:, self.pq]
        if len(self.pq) <= DENSE_ZBUS_MAX_BUSES:
            zbus = np.linalg.inv(y_pq.toarray())
            return lambda rhs: zbus @ rhs
        return spla.splu(sp.csc_matrix(y_pq)).solve

    def _results(self, v, sbus, s_i, s_z, iterations, converged, squeeze) -> PowerFlowResult:
        refs, kw = self.refs, self.base_mva * 1e3
        vm = np.abs(v)
        s_inj = sbus
        if s_i is not None:
            s_inj = sbus - s_i * vm - s_z * vm**2
        if self._y_refs is None:
            self._y_refs = self.ybus[refs, :]
        s_calc_ref = v[:, refs] * np.conj((self._y_refs @ v.T).T)
        # slack output = what the network draws at the slack bus + the consumption there
        s_slack = (s_calc_ref - s_inj[:, refs]).sum(axis=1) * kw
        i_from = np.abs(self.yf @ v.T).T * self.i_base_from_ka
        i_to = np.abs(self.yt @ v.T).T * self.i_base_to_ka
        loading = 100.0 * np.maximum(i_from / self.rating_from, i_to / self.rating_to)
        lyf, lyt, lf, lt = self.loss_y
        s_f = v[:, lf] * np.conj((lyf @ v.T).T)
        s_t = v[:, lt] * np.conj((lyt @ v.T).T)
        vb = v[:, self.ppc_of_bus]
        out = PowerFlowResult(
            vm_pu=np.abs(vb),
            va_deg=np.degrees(np.angle(vb)),
            branch_loading_pct=loading,
            p_slack_kw=s_slack.real,
            q_slack_kvar=s_slack.imag,
            losses_kw=(s_f + s_t).real.sum(axis=1) * kw,
            iterations=iterations,
            converged=converged,
        )
        if squeeze:
            for name in (
                "vm_pu",
                "va_deg",
                "branch_loading_pct",
                "p_slack_kw",
                "q_slack_kvar",
                "losses_kw",
            ):
                setattr(out, name, getattr(out, name)[0])
        return out


def build_powerflow_model(feeder: Feeder) -> PowerFlowModel:
    """The admittance model of ``feeder`` (see ``gridsync.grid.feeder_model``)."""
    from gridsync.grid.feeder_model import build_feeder_model

    return build_feeder_model(feeder)
