"""AC power flow over a fixed admittance matrix, for one snapshot or many at once.

The admittance model (Ybus, branch admittances, bus ordering) is extracted once from
pandapower's own builder, so every element model (cable, transformer with tap and shift, shunt)
is pandapower's. The solvers are ours and vectorised, because per-call overhead dominates
``pandapower.runpp`` on small feeders:

* ``solve``: Newton-Raphson in polar form with a sparse Jacobian (one snapshot).
* ``solve_batch``: fixed-point (implicit Z-bus) iteration for many snapshots at once, with one
  sparse LU factorisation of ``Ybus[pq, pq]`` shared by every snapshot and iteration.

Both are checked against ``pandapower.runpp`` in the tests.
"""

from __future__ import annotations

import copy
import warnings
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from gridsync.model.network import Feeder

SQRT3 = np.sqrt(3.0)
DENSE_ZBUS_MAX_BUSES = 1500


class PowerFlowNotConverged(RuntimeError):
    """The power flow did not converge: the feeder cannot carry these injections."""


@dataclass
class PowerFlowResult:
    """Results by feeder bus position and branch (lines first, then transformers).

    Arrays have a leading time axis when produced by ``solve_batch``.
    """

    vm_pu: np.ndarray
    va_deg: np.ndarray
    branch_loading_pct: np.ndarray
    p_slack_kw: np.ndarray
    q_slack_kvar: np.ndarray
    losses_kw: np.ndarray
    iterations: int
    converged: bool


@dataclass
class PowerFlowModel:
    """Everything a power flow needs that does not change between snapshots."""

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
    _lu: object = None
    _y_pq_ref: object = None
    _pattern: object = None
    _y_ref: object = None

    def _jacobian_pattern(self) -> _JacobianPattern:
        if self._pattern is None:
            self._pattern = _JacobianPattern(self.ybus, self.pq)
        return self._pattern

    @property
    def n_branch(self) -> int:
        return len(self.branch_names)

    def injections_pu(self, p_kw: np.ndarray, q_kvar: np.ndarray) -> np.ndarray:
        """Complex injections per internal bus (generator convention, p.u.) from bus loads.

        ``p_kw``/``q_kvar`` are consumption by feeder bus position, shape (n_bus,) or (T, n_bus).
        """
        s = (np.asarray(p_kw) + 1j * np.asarray(q_kvar)) / (1e3 * self.base_mva)
        return -(self.bus_to_ppc @ s.T).T

    def solve(
        self,
        p_kw: np.ndarray,
        q_kvar: np.ndarray,
        v0: np.ndarray | None = None,
        tol_pu: float = 1e-8,
        max_iter: int = 20,
    ) -> tuple[PowerFlowResult, np.ndarray]:
        """Newton-Raphson for one snapshot; returns results and the complex voltages to warm-start."""
        sbus = self.injections_pu(p_kw, q_kvar)
        v = (self.v_init if v0 is None else v0).astype(complex).copy()
        pat = self._jacobian_pattern()
        pq = self.pq
        n = len(pq)
        converged = False
        it = 0
        for it in range(max_iter + 1):
            ibus = self.ybus @ v
            mis = v * np.conj(ibus) - sbus
            f = np.r_[mis[pq].real, mis[pq].imag]
            if np.max(np.abs(f)) < tol_pu:
                converged = True
                break
            if it == max_iter:
                break
            dx = spla.spsolve(pat.jacobian(v, ibus), -f)
            va = np.angle(v)
            vm = np.abs(v)
            va[pq] += dx[:n]
            vm[pq] += dx[n:]
            v = vm * np.exp(1j * va)
        if not converged:
            msg = f"Newton-Raphson did not converge in {max_iter} iterations (max mismatch {np.max(np.abs(f)):.3g} p.u.)"
            raise PowerFlowNotConverged(msg)
        return self._results(v[None, :], sbus[None, :], it, True, squeeze=True), v

    def sensitivity(
        self,
        p_kw: np.ndarray,
        q_kvar: np.ndarray,
        at_bus: np.ndarray,
        v0: np.ndarray | None = None,
        chunk: int = 128,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Exact derivatives of the AC solution w.r.t. active consumption at ``at_bus``.

        The snapshot is solved by Newton-Raphson (warm-started from ``v0``), then the implicit
        function theorem gives ``dx/dP = -J^-1 dF/dP`` for every bus in ``at_bus`` from one
        sparse LU factorisation of the Jacobian. Returns ``dvm`` (n_bus, k) in p.u./kW and
        ``dloading`` (n_branch, k) in %/kW, the loading derivative taken on the branch end
        that sets the loading at this operating point (zero on branches carrying no current).
        """
        _, v = self.solve(p_kw, q_kvar, v0=v0, tol_pu=1e-10)
        pq, n = self.pq, len(self.pq)
        pos = np.full(len(v), -1)
        pos[pq] = np.arange(n)
        at_row = pos[self.ppc_of_bus[np.asarray(at_bus, dtype=int)]]
        if np.any(at_row < 0):
            msg = "at_bus contains the slack bus, whose power does not change the voltages"
            raise ValueError(msg)
        jac = self._jacobian_pattern().jacobian(v, self.ybus @ v)
        # minimum degree on J'+J: less fill than COLAMD on radial feeders
        lu = spla.splu(jac, permc_spec="MMD_AT_PLUS_A")
        # d|I|/dx = Re(conj(I)/|I| dI/dx) with dI = Y_side diag(V) (j dVa + dVm/|V|): one real
        # sparse matrix maps [dVa_pq, dVm_pq] to loading derivatives
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
        y_w = sp.diags(weight) @ y_side[:, pq]
        d_load = sp.hstack(
            [(y_w @ sp.diags(1j * v[pq])).real, (y_w @ sp.diags(v[pq] / np.abs(v[pq]))).real]
        ).tocsr()
        vm_bus = pos[self.ppc_of_bus] >= 0
        vm_row = n + pos[self.ppc_of_bus][vm_bus]
        k = len(at_row)
        dvm = np.zeros((len(self.ppc_of_bus), k))
        dloading = np.empty((self.n_branch, k))
        # +1 kW of consumption is -1 kW of injection: dF/dP = +e_bus / S_base on the P rows
        for c0 in range(0, k, chunk):
            cols = np.arange(c0, min(c0 + chunk, k))
            rhs = np.zeros((2 * n, len(cols)))
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
    ) -> PowerFlowResult:
        """Fixed-point power flow for T snapshots at once (arrays of shape (T, n_bus))."""
        sbus = self.injections_pu(np.atleast_2d(p_kw), np.atleast_2d(q_kvar))
        pq, ref = self.pq, self.ref
        if self._lu is None:
            self._lu = self._zbus_solver()
            self._y_pq_ref = self.ybus[pq][:, [ref]].toarray().ravel()
        v_ref = self.v_init[ref]
        y_pq_ref = self._y_pq_ref
        vpq = np.tile(self.v_init[pq], (sbus.shape[0], 1)).T
        spq = sbus[:, pq].T
        converged = False
        iterations = 0
        while iterations < max_iter and not converged:
            iterations += 1
            rhs = np.conj(spq / vpq) - y_pq_ref[:, None] * v_ref
            new = self._lu(rhs)
            step = np.max(np.abs(new - vpq))
            vpq = new
            converged = step < tol_pu
        v = np.tile(self.v_init, (sbus.shape[0], 1)).astype(complex)
        v[:, pq] = vpq.T
        if not converged:
            msg = f"fixed-point power flow did not converge in {max_iter} iterations (last step {step:.3g} p.u.)"
            raise PowerFlowNotConverged(msg)
        return self._results(v, sbus, iterations, converged, squeeze=False)

    def _zbus_solver(self):
        """``rhs -> Ybus[pq, pq]^-1 rhs``: a dense inverse (one BLAS product per iteration) on
        feeders up to ``DENSE_ZBUS_MAX_BUSES``, a shared sparse LU factorisation beyond."""
        y_pq = self.ybus[self.pq][:, self.pq]
        if len(self.pq) <= DENSE_ZBUS_MAX_BUSES:
            zbus = np.linalg.inv(y_pq.toarray())
            return lambda rhs: zbus @ rhs
        return spla.splu(sp.csc_matrix(y_pq)).solve

    def _results(
        self, v: np.ndarray, sbus: np.ndarray, iterations: int, converged: bool, squeeze: bool
    ) -> PowerFlowResult:
        if self._y_ref is None:
            self._y_ref = self.ybus[[self.ref], :]
        s_ref = v[:, self.ref] * np.conj((self._y_ref @ v.T).ravel())
        s_ref_kw = s_ref * self.base_mva * 1e3
        i_from = np.abs(self.yf @ v.T).T * self.i_base_from_ka
        i_to = np.abs(self.yt @ v.T).T * self.i_base_to_ka
        loading = 100.0 * np.maximum(i_from / self.rating_from, i_to / self.rating_to)
        total_inj = sbus.real.sum(axis=1) - sbus[:, self.ref].real
        losses_kw = s_ref.real * self.base_mva * 1e3 + total_inj * self.base_mva * 1e3
        vb = v[:, self.ppc_of_bus]
        out = PowerFlowResult(
            vm_pu=np.abs(vb),
            va_deg=np.degrees(np.angle(vb)),
            branch_loading_pct=loading,
            p_slack_kw=s_ref_kw.real,
            q_slack_kvar=s_ref_kw.imag,
            losses_kw=losses_kw,
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


class _JacobianPattern:
    """The polar Newton-Raphson Jacobian on Ybus's fixed sparsity pattern.

    Entries of dS/dVa and dS/dVm are computed elementwise on the stored non-zeros of
    ``Ybus[pq, pq]`` and written into a CSC structure built once, so an iteration costs a few
    numpy operations instead of a dozen sparse-matrix constructions.
    """

    def __init__(self, ybus: sp.csr_matrix, pq: np.ndarray) -> None:
        coo = ybus.tocoo()
        pos = np.full(ybus.shape[0], -1)
        pos[pq] = np.arange(len(pq))
        keep = (pos[coo.row] >= 0) & (pos[coo.col] >= 0)
        self.i, self.j, self.y = coo.row[keep], coo.col[keep], coo.data[keep]
        self.diag = self.i == self.j
        n = len(pq)
        ri, cj = pos[self.i], pos[self.j]
        rows = np.r_[ri, ri, ri + n, ri + n]
        cols = np.r_[cj, cj + n, cj, cj + n]
        order = sp.csc_matrix(
            (np.arange(1, len(rows) + 1, dtype=float), (rows, cols)), shape=(2 * n, 2 * n)
        )
        self.perm = order.data.astype(int) - 1
        self.indices, self.indptr, self.shape = order.indices, order.indptr, order.shape

    def jacobian(self, v: np.ndarray, ibus: np.ndarray) -> sp.csc_matrix:
        vi, vj = v[self.i], v[self.j]
        d_va = -1j * vi * np.conj(self.y * vj)
        d_vm = vi * np.conj(self.y * vj / np.abs(vj))
        di = self.i[self.diag]
        d_va[self.diag] += 1j * v[di] * np.conj(ibus[di])
        d_vm[self.diag] += np.conj(ibus[di]) * v[di] / np.abs(v[di])
        data = np.r_[d_va.real, d_vm.real, d_va.imag, d_vm.imag][self.perm]
        return sp.csc_matrix((data, self.indices, self.indptr), shape=self.shape)


def build_powerflow_model(feeder: Feeder) -> PowerFlowModel:
    """Extract the admittance model of ``feeder`` with pandapower's builder (loads zeroed)."""
    import pandapower as pp

    net = copy.deepcopy(feeder.net)
    for table in ("load", "sgen", "storage"):
        if len(net[table]):
            net[table]["p_mw"] = 0.0
            net[table]["q_mvar"] = 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pp.runpp(net, numba=False)
    ppc = net._ppc
    internal = ppc["internal"]
    n_ppc = internal["Ybus"].shape[0]
    if ppc["branch"].shape[0] != internal["branch"].shape[0] or ppc["bus"].shape[0] != n_ppc:
        msg = "out-of-service branches or buses are not supported; remove them from the network"
        raise ValueError(msg)
    if len(internal["pv"]):
        msg = "voltage-controlled generators (PV buses) are not supported: GridSync models feeders with PQ injections"
        raise ValueError(msg)
    lookups = net._pd2ppc_lookups
    ppc_of_bus = lookups["bus"][feeder.bus_ids]
    bus_to_ppc = sp.csr_matrix(
        (np.ones(feeder.n_bus), (ppc_of_bus, np.arange(feeder.n_bus))), shape=(n_ppc, feeder.n_bus)
    )
    base_mva = float(ppc["baseMVA"])
    pos_of_ppc = np.zeros(n_ppc, dtype=int)
    pos_of_ppc[ppc_of_bus] = np.arange(feeder.n_bus)
    branch = internal["branch"]
    f_ppc = branch[:, 0].real.astype(int)
    t_ppc = branch[:, 1].real.astype(int)
    vn_kv_ppc = ppc["bus"][:, 9].real
    i_base_from = base_mva / (SQRT3 * vn_kv_ppc[f_ppc])
    i_base_to = base_mva / (SQRT3 * vn_kv_ppc[t_ppc])

    names, kinds, rating_from, rating_to = [], [], [], []
    lines = lookups["branch"].get("line")
    if lines:
        ln = net.line
        imax = (ln.max_i_ka * ln.df * ln.parallel).to_numpy(dtype=float)
        names += [f"line:{n}" for n in ln.name.astype(str)]
        kinds += ["line"] * len(ln)
        rating_from.append(imax)
        rating_to.append(imax)
    trafos = lookups["branch"].get("trafo")
    if trafos:
        tr = net.trafo
        scale = (tr.sn_mva * tr.df * tr.parallel).to_numpy(dtype=float)
        names += [f"trafo:{n}" for n in tr.name.astype(str)]
        kinds += ["trafo"] * len(tr)
        rating_from.append(scale / (SQRT3 * tr.vn_hv_kv.to_numpy(dtype=float)))
        rating_to.append(scale / (SQRT3 * tr.vn_lv_kv.to_numpy(dtype=float)))
    other = set(lookups["branch"]) - {"line", "trafo"}
    if other:
        msg = f"branch types {sorted(other)} are not supported yet (lines and 2-winding transformers are)"
        raise ValueError(msg)
    v_init = internal["V"].astype(complex)
    return PowerFlowModel(
        ybus=internal["Ybus"].tocsr(),
        yf=internal["Yf"].tocsr(),
        yt=internal["Yt"].tocsr(),
        base_mva=base_mva,
        ref=int(internal["ref"][0]),
        pq=np.sort(internal["pq"]).astype(int),
        v_init=v_init,
        bus_to_ppc=bus_to_ppc,
        ppc_of_bus=ppc_of_bus,
        branch_names=np.array(names),
        branch_kind=np.array(kinds),
        branch_from_pos=pos_of_ppc[f_ppc],
        branch_to_pos=pos_of_ppc[t_ppc],
        i_base_from_ka=i_base_from,
        i_base_to_ka=i_base_to,
        rating_from=np.concatenate(rating_from),
        rating_to=np.concatenate(rating_to),
    )
