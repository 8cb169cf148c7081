"""Newton-Raphson in polar form on a fixed admittance matrix: slack (any number), PV and PQ
buses, voltage-dependent (ZIP) loads.

Unknowns are the angles of the PV and PQ buses and the magnitudes of the PQ buses; equations
are the active-power mismatch at PV and PQ buses and the reactive mismatch at PQ buses (all
per unit). The Jacobian is filled elementwise on Ybus's fixed sparsity pattern.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla


@dataclass
class NewtonResult:
    v: np.ndarray
    converged: bool
    iterations: int
    max_mismatch_pu: float


class JacobianPattern:
    """The polar Jacobian [[dP/dVa, dP/dVm], [dQ/dVa, dQ/dVm]] on a fixed CSC structure.

    Rows: P at ``pvpq``, Q at ``pq``; columns: Va at ``pvpq``, Vm at ``pq``. Entries come from
    the stored non-zeros of Ybus plus its diagonal (where ZIP loads add dS/dVm), written
    through a precomputed permutation, so an iteration costs a few numpy operations.
    """

    def __init__(self, ybus: sp.csr_matrix, pvpq: np.ndarray, pq: np.ndarray) -> None:
        n_bus = ybus.shape[0]
        struct = (sp.csr_matrix(ybus, copy=True) != 0).astype(float) + sp.eye(n_bus, format="csr")
        coo = struct.tocoo()
        ybus = sp.csr_matrix(ybus)
        self.n_bus = n_bus
        self.pvpq, self.pq = pvpq, pq
        pos_a = np.full(n_bus, -1)
        pos_a[pvpq] = np.arange(len(pvpq))
        pos_m = np.full(n_bus, -1)
        pos_m[pq] = np.arange(len(pq))
        keep = (pos_a[coo.row] >= 0) & (pos_a[coo.col] >= 0)
        i, j = coo.row[keep], coo.col[keep]
        self.i, self.j = i, j
        self.y = np.asarray(ybus[i, j]).ravel()
        self.diag = i == j
        na = len(pvpq)
        b11 = np.ones(len(i), bool)
        b12 = pos_m[j] >= 0
        b21 = pos_m[i] >= 0
        b22 = b12 & b21
        self.blocks = (b11, b12, b21, b22)
        rows = np.r_[pos_a[i[b11]], pos_a[i[b12]], na + pos_m[i[b21]], na + pos_m[i[b22]]]
        cols = np.r_[pos_a[j[b11]], na + pos_m[j[b12]], pos_a[j[b21]], na + pos_m[j[b22]]]
        size = na + len(pq)
        order = sp.csc_matrix(
            (np.arange(1, len(rows) + 1, dtype=float), (rows, cols)), shape=(size, size)
        )
        self.perm = order.data.astype(int) - 1
        self.indices, self.indptr, self.shape = order.indices, order.indptr, order.shape

    def jacobian(
        self, v: np.ndarray, ibus: np.ndarray, dload_dvm: np.ndarray | None = None
    ) -> sp.csc_matrix:
        """Jacobian of the mismatch ``V conj(I) - S_inj(|V|)`` at ``v`` (``ibus = Ybus v``);
        ``dload_dvm`` is the derivative of the voltage-dependent consumption per bus."""
        vi, vj = v[self.i], v[self.j]
        d_va = -1j * vi * np.conj(self.y * vj)
        d_vm = vi * np.conj(self.y * vj / np.abs(vj))
        di = self.i[self.diag]
        d_va[self.diag] += 1j * v[di] * np.conj(ibus[di])
        d_vm[self.diag] += np.conj(ibus[di]) * v[di] / np.abs(v[di])
        if dload_dvm is not None:
            d_vm[self.diag] += dload_dvm[di]
        b11, b12, b21, b22 = self.blocks
        data = np.r_[d_va.real[b11], d_vm.real[b12], d_va.imag[b21], d_vm.imag[b22]][self.perm]
        return sp.csc_matrix((data, self.indices, self.indptr), shape=self.shape)


def injections(
    s_inj: np.ndarray, s_i: np.ndarray | None, s_z: np.ndarray | None, vm: np.ndarray
) -> np.ndarray:
    """Injected power at ``vm``: scheduled ``s_inj`` less the current- and impedance-type load."""
    out = s_inj
    if s_i is not None:
        out = out - s_i * vm
    if s_z is not None:
        out = out - s_z * vm**2
    return out


class JacobianCache:
    """The LU factors of the last Jacobian, reused as a chord (dishonest Newton) step while the
    mismatch keeps falling fast; a warm-started time series then mostly costs triangular
    solves instead of a factorisation per iteration."""

    def __init__(self) -> None:
        self.lu = None


def newton(
    ybus: sp.csr_matrix,
    pattern: JacobianPattern,
    s_inj: np.ndarray,
    v0: np.ndarray,
    s_i: np.ndarray | None = None,
    s_z: np.ndarray | None = None,
    tol_pu: float = 1e-8,
    max_iter: int = 20,
    cache: JacobianCache | None = None,
) -> NewtonResult:
    """Solve ``V conj(Ybus V) = s_inj - s_i |V| - s_z |V|^2`` at the PV/PQ buses of ``pattern``.

    Magnitudes of slack and PV buses and angles of slack buses stay at ``v0``. With a
    ``cache``, a step first tries the cached factors and refactorises at the current point
    when the mismatch fell by less than half; ``max_iter`` counts factorisations.
    """
    pvpq, pq = pattern.pvpq, pattern.pq
    na = len(pvpq)
    v = np.asarray(v0, dtype=complex).copy()
    va, vm = np.angle(v), np.abs(v)
    it, max_mis, prev_mis, factorisations = 0, np.inf, np.inf, 0
    chord = cache is not None and cache.lu is not None
    saved = (v, va, vm, None, None, max_mis)  # the state before the last step
    for it in range(4 * max_iter + 1):
        ibus = ybus @ v
        mis = v * np.conj(ibus) - injections(s_inj, s_i, s_z, vm)
        f = np.r_[mis[pvpq].real, mis[pq].imag]
        max_mis = float(np.max(np.abs(f))) if len(f) else 0.0
        if not np.isfinite(max_mis):
            break
        if max_mis < tol_pu:
            return NewtonResult(v, True, it, max_mis)
        if chord and max_mis >= 0.5 * prev_mis:
            chord = False
            if max_mis > prev_mis:  # the chord step made it worse: refactorise where it began
                v, va, vm, ibus, f, max_mis = saved
        if not chord:
            if factorisations == max_iter:
                break
            dload = None
            if s_i is not None or s_z is not None:
                dload = np.zeros(len(v), dtype=complex)
                if s_i is not None:
                    dload += s_i
                if s_z is not None:
                    dload += 2.0 * s_z * vm
            jac = pattern.jacobian(v, ibus, dload)
            factorisations += 1
            if cache is None:
                dx = spla.spsolve(jac, -f)
            else:
                cache.lu = spla.splu(jac, permc_spec="MMD_AT_PLUS_A")
                dx = cache.lu.solve(-f)
                chord = True
        else:
            dx = cache.lu.solve(-f)
        saved = (v, va.copy(), vm.copy(), ibus, f, max_mis)
        prev_mis = max_mis
        va[pvpq] += dx[:na]
        vm[pq] += dx[na:]
        v = vm * np.exp(1j * va)
    return NewtonResult(v, False, it, max_mis)
