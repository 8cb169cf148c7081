"""Numerical observability and measurement redundancy of a WLS measurement layout.

Observability: a state variable is determined by the measurements exactly when no direction in
the null space of the measurement Jacobian ``H`` (at the flat start, rows scaled to unit norm)
moves it. A column-pivoted QR of ``H`` gives its rank ``r`` and a null-space basis
``N = P [-R11^-1 R12; I]``; the unobservable state variables are the rows of ``N`` that are
not zero, and a bus is unobservable when its angle or magnitude is. This names exactly the
buses whose voltage the estimator cannot fix (an unobservable island as a whole, since its
angle relative to the reference is free), not "buses near a small pivot".

Redundancy: the leverage ``K_ii`` of each measurement (diagonal of the hat matrix
``R^-1/2 H G^-1 H' R^-1/2``, from a thin QR) says how much the estimate follows that one
reading. A critical measurement (``K_ii = 1``) has a zero residual whatever its error; a
gross error ``e`` shows up in the normalised residual as ``e sqrt(1 - K_ii) / std``, so the
largest-normalised-residual test at threshold ``t`` can only see errors above
``t std / sqrt(1 - K_ii)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.linalg
import scipy.sparse as sp
from threadpoolctl import ThreadpoolController

_BLAS = ThreadpoolController()
RANK_RTOL = 1e-9
CRITICAL_SPREAD = 1e-8


def _clearly_full_rank(h: sp.spmatrix) -> bool:
    """Sparse screen: the LU of the scaled gain matrix has no pivot anywhere near zero. A
    rank-deficient ``h`` always leaves a (rounding-size) pivot, so True is safe; False only
    sends the layout to the exact dense test."""
    import scipy.sparse.linalg as spla

    norm = np.sqrt(np.asarray(h.multiply(h).sum(axis=1)).ravel())
    hn = sp.diags(np.divide(1.0, norm, out=np.zeros_like(norm), where=norm > 0)) @ h
    g = (hn.T @ hn).tocsc()
    d = g.diagonal()
    if np.any(d <= 0):
        return False
    scale = sp.diags(1.0 / np.sqrt(d))
    try:
        lu = spla.splu((scale @ g @ scale).tocsc(), permc_spec="MMD_AT_PLUS_A")
    except RuntimeError:
        return False
    pivots = np.abs(lu.U.diagonal())
    return bool(pivots.min() > 1e-6 * pivots.max())


def unobservable_states(h: sp.spmatrix | np.ndarray, rtol: float = RANK_RTOL) -> np.ndarray:
    """Indices of the state variables (columns of ``h``) the measurements do not determine.

    Layouts a sparse LU screen shows to be clearly observable return at once; the others get
    the exact dense rank-revealing QR."""
    if sp.issparse(h) and _clearly_full_rank(sp.csr_matrix(h)):
        return np.zeros(0, dtype=np.int64)
    h = h.toarray() if sp.issparse(h) else np.asarray(h, dtype=float)
    norm = np.linalg.norm(h, axis=1)
    h = h[norm > 0] / norm[norm > 0, None]
    n = h.shape[1]
    if h.shape[0] == 0:
        return np.arange(n)
    with _BLAS.limit(limits=1, user_api="blas"):
        _, r, perm = scipy.linalg.qr(h, mode="economic", pivoting=True)
        diag = np.abs(np.diag(r))
        rank = int(np.sum(diag > rtol * max(diag[0], 1e-300)))
        if rank == n:
            return np.zeros(0, dtype=np.int64)
        null = np.zeros((n, n - rank))
        null[perm[:rank]] = -scipy.linalg.solve_triangular(r[:rank, :rank], r[:rank, rank:])
        null[perm[rank:]] = np.eye(n - rank)
    null /= np.linalg.norm(null, axis=0)
    # orthonormal basis: a row's weight is the state's share of the unobservable subspace
    q, _ = np.linalg.qr(null)
    weight = np.sqrt(np.einsum("ij,ij->i", q, q))
    return np.flatnonzero(weight > 1e-6)


@dataclass
class Redundancy:
    """Per measurement: the leverage ``K_ii``, whether it is critical, and the smallest gross
    error (same units as the measurement) the LNR test at ``lnr_threshold`` can detect."""

    leverage: np.ndarray
    critical: np.ndarray
    min_detectable_error: np.ndarray
    redundancy: float


def redundancy(h: sp.spmatrix, std: np.ndarray, lnr_threshold: float) -> Redundancy:
    """Leverages from a thin QR of ``R^-1/2 H`` (through ``G^-1`` precise meters lose every
    digit: the gain matrix's condition number reaches ~1e14)."""
    with _BLAS.limit(limits=1, user_api="blas"):
        q, _ = scipy.linalg.qr((h / std[:, None]).toarray(), mode="economic")
    leverage = np.einsum("ij,ij->i", q, q)
    spread = 1.0 - leverage
    critical = spread < CRITICAL_SPREAD
    with np.errstate(divide="ignore"):
        mde = np.where(critical, np.inf, lnr_threshold * std / np.sqrt(np.maximum(spread, 1e-300)))
    return Redundancy(leverage, critical, mde, h.shape[0] / max(h.shape[1], 1))
