"""Linear sensitivities of voltages and branch currents to bus consumption at a power-flow point.

``d q / d p_b`` for any quantity ``q(x)`` of the polar state follows from one sparse solve with
the transposed power-flow Jacobian: ``J' y = dq/dx`` gives ``y`` = sensitivity to the
consumption (kW, load convention) at every non-slack bus. The shield uses it to pick the
setpoints that fix a violation with the least change.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from gridsync.grid.estimation.measurements import IIM, IRE, MeasurementFunction, P, Q
from gridsync.grid.powerflow import PowerFlowModel


class GridSensitivity:
    """Sensitivities of |V| and branch |I| to consumption, by feeder bus position."""

    def __init__(self, pf: PowerFlowModel) -> None:
        n_ppc = pf.ybus.shape[0]
        if len(pf.ppc_of_bus) != n_ppc or len(np.unique(pf.ppc_of_bus)) != n_ppc:
            msg = (
                "GridSensitivity needs one internal bus per feeder bus (no fused bus-bus switches)"
            )
            raise ValueError(msg)
        self.pf = pf
        pos_of_ppc = np.empty(n_ppc, dtype=np.int64)
        pos_of_ppc[pf.ppc_of_bus] = np.arange(n_ppc)
        self.pq_pos = pos_of_ppc[pf.pq]
        n_pq = len(pf.pq)
        self.flow = MeasurementFunction(
            pf, np.r_[np.full(n_pq, P), np.full(n_pq, Q)], np.r_[self.pq_pos, self.pq_pos]
        )
        # state columns: angles of non-reference buses, then magnitudes of pq buses
        nonref = self.flow.nonref
        self.cols = np.r_[np.arange(len(nonref)), len(nonref) + pf.pq]
        self.vm_col = len(nonref) + pf.ppc_of_bus
        n_branch = pf.n_branch
        self.current = MeasurementFunction(
            pf,
            np.r_[np.full(n_branch, IRE), np.full(n_branch, IIM)],
            np.r_[np.arange(n_branch), np.arange(n_branch)],
        )
        self._lu = None
        self._v = None

    def at(self, v: np.ndarray) -> GridSensitivity:
        """Linearise at complex voltages ``v`` (pandapower internal order)."""
        jac = self.flow.jacobian(v)[:, self.cols]
        self._lu = spla.splu(sp.csc_matrix(jac.T))
        self._v = v
        return self

    def _to_consumption(self, grad_state: np.ndarray, reactive: bool = False) -> np.ndarray:
        y = self._lu.solve(grad_state[self.cols])
        out = np.zeros(len(self.pf.ppc_of_bus))
        n = len(self.pq_pos)
        out[self.pq_pos] = y[n:] if reactive else y[:n]
        return out

    def voltage(self, bus_pos: int, reactive: bool = False) -> np.ndarray:
        """d|V_bus| / d p_kw at every bus (p.u. per kW of extra consumption); with
        ``reactive``, d|V_bus| / d q_kvar (p.u. per kvar of extra reactive consumption)."""
        g = np.zeros(self.flow.n_state)
        g[self.vm_col[bus_pos]] = 1.0
        return self._to_consumption(g, reactive)

    def current_ka(self, branch: int) -> np.ndarray:
        """d|I_from| / d p_kw at every bus (kA per kW) for one branch."""
        jac = self.current.jacobian(self._v)
        i = self.current.h(self._v)
        n_branch = self.pf.n_branch
        re, im = i[branch], i[n_branch + branch]
        mag = max(np.hypot(re, im), 1e-12)
        g = (
            re * jac[branch].toarray().ravel() + im * jac[n_branch + branch].toarray().ravel()
        ) / mag
        return self._to_consumption(g)
