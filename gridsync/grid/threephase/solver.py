"""Three-phase unbalanced power flow: fixed-point current injection over the nodal matrix.

With the slack nodes s held at their source voltages, the free nodes f satisfy
``Y_ff V_f = I_load(V) - Y_fs V_s``. ``Y_ff`` is factorised once (sparse LU) and shared by
every snapshot and iteration; each iteration evaluates the load currents of every component
and snapshot at once (numpy arrays of shape (T, n)) and solves for all snapshots with one
multi-right-hand-side back-substitution. This is the implicit Z-bus (Gauss) method that
OpenDSS also uses by default; it converges in a handful of iterations on distribution feeders
and its answer does not depend on the method, only on the network model.

Results are reported per node in p.u. of the node's base voltage, with the unbalance KPIs:
voltage unbalance factor per three-phase bus and the residual (neutral plus earth-return)
current of each branch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla
from threadpoolctl import ThreadpoolController

from gridsync.grid.threephase.elements import vuf_pct
from gridsync.grid.threephase.network import (
    LOAD_MODEL_PQ,
    LOAD_MODEL_Z,
    ThreePhaseNetwork,
)

_CONTROLLER: list[ThreadpoolController] = []


def _blas() -> ThreadpoolController:
    """One BLAS thread in the hot path (shared cores); the controller is built once because
    ``threadpool_limits`` rescans the loaded libraries on every call (~0.3 ms)."""
    if not _CONTROLLER:
        _CONTROLLER.append(ThreadpoolController())
    return _CONTROLLER[0]


class ThreePhaseNotConverged(RuntimeError):
    """The three-phase power flow did not converge for the named snapshots."""


@dataclass
class ThreePhaseResult:
    """Complex node voltages (T, n_node) in volts and derived p.u. magnitudes.

    ``converged[t]`` is False for snapshots that did not converge within the iteration limit
    (their voltages are the last iterate, not a solution).
    """

    v: np.ndarray
    vm_pu: np.ndarray
    iterations: int
    converged: np.ndarray
    s_slack_kva: np.ndarray


DENSE_COLUMNS_MAX = 20_000_000  # entries of Z[:, load nodes] kept dense (complex: 16 B each)


class ThreePhaseSolver:
    """Factorised model of one network; ``solve`` takes component powers for T snapshots.

    Loads inject current only at their own nodes, so the iteration runs on those nodes with
    the reduced impedance matrix ``Z_LL = (Y_ff^-1)[L, L]`` (dense, n_load_nodes^2) and every
    other node voltage follows once at the end from ``Z[:, L]`` (dense when it fits in
    ``DENSE_COLUMNS_MAX`` entries, else one sparse back-substitution).
    """

    def __init__(self, net: ThreePhaseNetwork) -> None:
        self.net = net
        n = net.n_node
        is_slack = np.zeros(n, dtype=bool)
        is_slack[net.slack] = True
        loads = net.loads
        if is_slack[loads.node_from].any() or is_slack[loads.node_to[loads.node_to >= 0]].any():
            msg = f"network {net.name}: a load is connected to a slack (source) node"
            raise ValueError(msg)
        self.free = np.nonzero(~is_slack)[0]
        pos = np.full(n, -1)
        pos[self.free] = np.arange(len(self.free))
        y = net.y.tocsr()
        with _blas().limit(limits=1):
            self.lu = spla.splu(y[self.free][:, self.free].tocsc())
            i_slack = -(y[self.free][:, net.slack] @ net.v_slack)
            self.v0_free = self.lu.solve(i_slack)
            self.y_slack_rows = y[net.slack]
            touched = np.r_[loads.node_from, loads.node_to[loads.node_to >= 0]]
            self.load_nodes = np.unique(pos[touched])  # free positions of load nodes
            at = np.full(len(self.free), -1)
            at[self.load_nodes] = np.arange(len(self.load_nodes))
            n_l = len(self.load_nodes)
            unit = np.zeros((len(self.free), n_l), dtype=complex)
            unit[self.load_nodes, np.arange(n_l)] = 1.0
            z_cols = self.lu.solve(np.asfortranarray(unit)) if n_l else unit
        self.z_ll = np.ascontiguousarray(z_cols[self.load_nodes])
        self.z_cols = z_cols if z_cols.size <= DENSE_COLUMNS_MAX else None
        rows = np.r_[at[pos[loads.node_from]], at[pos[np.maximum(loads.node_to, 0)]]]
        vals = np.r_[-np.ones(loads.n), np.ones(loads.n)]
        cols = np.r_[np.arange(loads.n), np.arange(loads.n)]
        keep = np.r_[np.ones(loads.n, bool), loads.node_to >= 0]
        self.inject = sp.csr_matrix((vals[keep], (rows[keep], cols[keep])), shape=(n_l, loads.n))
        # load-node (and free-node) voltage change per unit of component current: one dense
        # product per iteration, (T, n_comp) @ (n_comp, n_l)
        self.z_comp_t = np.ascontiguousarray(self.inject.T @ self.z_ll.T)
        self.z_cols_comp_t = (
            np.ascontiguousarray(self.inject.T @ self.z_cols.T) if self.z_cols is not None else None
        )
        self._inv_vbase = 1.0 / loads.vbase_v
        self._vmin, self._vmax = loads.vmin_pu, loads.vmax_pu
        self._is_pq = loads.model == LOAD_MODEL_PQ
        self._is_z = loads.model == LOAD_MODEL_Z
        local = np.full(n, -1)
        local[self.free[self.load_nodes]] = np.arange(n_l)
        self.comp_from = local[loads.node_from]
        self.comp_to = np.where(loads.node_to >= 0, local[np.maximum(loads.node_to, 0)], 0)
        self._to_mask = (loads.node_to >= 0).astype(float)  # 0: the component is grounded

    def _load_currents(self, v_l: np.ndarray, s_va: np.ndarray) -> np.ndarray:
        """Consumption current (from -> to) of every component, (T, n_comp), from the load
        nodes' voltages ``v_l`` (T, n_load_nodes).

        With r = |V| / V_base and k = r / clip(r, vmin, vmax), the power drawn is S_nom times
        k^2 (constant power, impedance outside the band), r k (constant current) or r^2
        (constant impedance)."""
        vc = v_l[:, self.comp_from] - v_l[:, self.comp_to] * self._to_mask
        mag = np.abs(vc)
        ratio = mag * self._inv_vbase
        with np.errstate(invalid="ignore", divide="ignore"):
            k = ratio / np.clip(ratio, self._vmin, self._vmax)
            scale = np.where(self._is_z, ratio, k) * np.where(self._is_pq, k, ratio)
            i = np.conj(s_va * scale / vc)
        return np.where(mag > 0, i, 0.0)

    def solve(
        self,
        p_kw: np.ndarray,
        q_kvar: np.ndarray,
        tol_pu: float = 1e-8,
        max_iter: int = 100,
        strict: bool = True,
    ) -> ThreePhaseResult:
        """Solve T snapshots of component powers ``p_kw``/``q_kvar`` (consumption, (T, n_comp)
        or (n_comp,)) until no load-node voltage moves more than ``tol_pu`` of its base.

        ``strict`` raises ``ThreePhaseNotConverged`` naming the snapshots that did not
        converge; otherwise they are flagged in ``converged``.
        """
        p = np.atleast_2d(np.asarray(p_kw, dtype=float))
        q = np.atleast_2d(np.asarray(q_kvar, dtype=float))
        if p.shape != q.shape or p.shape[1] != self.net.loads.n:
            msg = f"expected powers of shape (T, {self.net.loads.n}), got {p.shape} and {q.shape}"
            raise ValueError(msg)
        bad = ~(np.isfinite(p) & np.isfinite(q))
        if bad.any():
            t, k = (int(x[0]) for x in np.nonzero(bad))
            loads = self.net.loads
            node = self.net.node_names[loads.node_from[k]]
            msg = (
                f"load power is not finite at snapshot {t}, component {k} "
                f"({self.net.load_names[loads.element[k]]} at node {node}); "
                f"{int(bad.sum())} value(s) in snapshots {np.unique(np.nonzero(bad)[0])[:10].tolist()}"
            )
            raise ValueError(msg)
        s_va = (p + 1j * q) * 1000.0
        T = p.shape[0]
        v0_l = self.v0_free[self.load_nodes]
        vb = self.net.vbase_v[self.free[self.load_nodes]]
        v_l = np.tile(v0_l, (T, 1))
        cur = np.zeros((T, self.net.loads.n), dtype=complex)
        active = np.ones(T, dtype=bool)
        it = 0
        with _blas().limit(limits=1):
            while it < max_iter and active.any():
                it += 1
                idx = np.nonzero(active)[0]
                c = self._load_currents(v_l[idx], s_va[idx])
                v_new = v0_l + c @ self.z_comp_t
                change = np.max(np.abs(v_new - v_l[idx]) / vb, axis=1, initial=0.0)
                v_l[idx], cur[idx] = v_new, c
                active[idx[change < tol_pu]] = False
            if self.z_cols_comp_t is not None:
                dv = (cur @ self.z_cols_comp_t).T
            else:
                inj = self.inject @ cur.T
                dv = self.lu.solve(
                    np.asfortranarray(_scatter(self.load_nodes, inj, len(self.free)))
                )
        converged = ~active
        if strict and not converged.all():
            msg = (
                f"three-phase power flow did not converge in {max_iter} iterations for "
                f"snapshots {np.nonzero(~converged)[0][:10].tolist()}"
            )
            raise ThreePhaseNotConverged(msg)
        v = np.empty((T, self.net.n_node), dtype=complex)
        v[:, self.net.slack] = self.net.v_slack
        v[:, self.free] = self.v0_free + dv.T
        s_slack = v[:, self.net.slack] * np.conj((self.y_slack_rows @ v.T).T)
        return ThreePhaseResult(
            v=v,
            vm_pu=np.abs(v) / self.net.vbase_v,
            iterations=it,
            converged=converged,
            s_slack_kva=s_slack.sum(axis=1) / 1000.0,
        )


def _scatter(rows: np.ndarray, values: np.ndarray, n: int) -> np.ndarray:
    out = np.zeros((n, values.shape[1]), dtype=complex)
    out[rows] = values
    return out


def no_load_voltages(net: ThreePhaseNetwork) -> np.ndarray:
    """Complex node voltages (V) with every load off: the network's own response to the source."""
    is_slack = np.zeros(net.n_node, dtype=bool)
    is_slack[net.slack] = True
    free = np.nonzero(~is_slack)[0]
    y = net.y.tocsr()
    v = np.zeros(net.n_node, dtype=complex)
    v[net.slack] = net.v_slack
    v[free] = spla.spsolve(y[free][:, free].tocsc(), -(y[free][:, net.slack] @ net.v_slack))
    return v


def assign_voltage_bases(net: ThreePhaseNetwork, bases_kv_ll: np.ndarray) -> None:
    """Give every bus the listed line-to-line base nearest its first node's no-load voltage (as
    OpenDSS's CalcVoltageBases does); without a list the no-load voltage itself is the base."""
    v0 = np.abs(no_load_voltages(net))
    first = np.full(len(net.bus_names), -1)
    first[net.node_bus[::-1]] = np.arange(net.n_node)[::-1]
    bus_v = v0[first]
    if len(bases_kv_ll):
        ln = np.asarray(bases_kv_ll) * 1000.0 / np.sqrt(3.0)
        bus_base = ln[np.argmin(np.abs(bus_v[:, None] - ln[None, :]), axis=1)]
    else:
        bus_base = bus_v
    net.vbase_v = bus_base[net.node_bus]


def unbalance(net: ThreePhaseNetwork, v: np.ndarray) -> dict[str, np.ndarray]:
    """Unbalance KPIs of solved voltages ``v`` (T, n_node):

    * ``vuf_pct`` (T, n_bus): |V2|/|V1| in percent at buses with all three phases (NaN else);
    * ``residual_current_a`` (T, n_branch): |sum of the phase currents| at each branch's
      sending end, i.e. the current returning through the neutral and earth (in a
      Kron-reduced model neutral and earth are not separated);
    * ``phase_current_a`` (T, n_conductor): sending-end conductor current magnitudes.
    """
    pm = net.phase_matrix()
    full = (pm >= 0).all(axis=1)
    vuf = np.full((v.shape[0], len(net.bus_names)), np.nan)
    vuf[:, full] = vuf_pct(v[:, pm[full]])
    br = net.branches
    i_cond = (br.current @ v.T).T
    phase = (br.conductor_phase >= 1) & (br.conductor_phase <= 3)
    agg = sp.csr_matrix(
        (phase.astype(float), (br.conductor_branch, np.arange(len(phase)))),
        shape=(len(br.names), len(phase)),
    )
    return {
        "vuf_pct": vuf,
        "residual_current_a": np.abs((agg @ i_cond.T).T),
        "phase_current_a": np.abs(i_cond),
    }
