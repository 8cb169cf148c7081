"""Weighted-least-squares state estimation with observability check and bad-data processing.

Gauss-Newton on ``min sum ((z - h(x)) / std)^2`` with the sparse Jacobian of
``MeasurementFunction``. After convergence the chi-squared test on the objective and the
largest-normalised-residual (LNR) test identify gross errors; the worst measurement is
removed and the state re-estimated (warm-started) until the set is clean.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.linalg
import scipy.sparse as sp
import scipy.sparse.linalg as spla
from scipy.stats import chi2
from threadpoolctl import ThreadpoolController

from gridsync.grid.estimation.measurements import MeasurementFunction, MeasurementSet
from gridsync.grid.powerflow import PowerFlowModel

# Small dense factorisations are ~40x slower with multi-threaded BLAS on a busy machine.
_BLAS = ThreadpoolController()


class UnobservableError(ValueError):
    """The measurements do not determine the state; ``buses`` lists feeder bus positions
    whose voltage cannot be estimated (add a measurement or pseudo-measurement there)."""

    def __init__(self, message: str, buses: np.ndarray) -> None:
        super().__init__(message)
        self.buses = buses


class EstimationNotConverged(RuntimeError):
    """Gauss-Newton did not converge (usually inconsistent measurements or a bad start)."""


@dataclass
class Rejection:
    """A measurement removed as bad data, with its normalised residual at removal time."""

    index: int
    normalized_residual: float


@dataclass
class EstimateResult:
    """Estimated state by feeder bus position, and the bad-data outcome.

    ``used`` masks the input measurements kept in the final estimate; ``rejected`` lists the
    removed ones in removal order. ``objective`` is the final weighted sum of squared residuals
    and ``chi2_threshold`` the test threshold for its degrees of freedom.
    """

    vm_pu: np.ndarray
    va_rad: np.ndarray
    v: np.ndarray
    iterations: int
    objective: float
    chi2_threshold: float
    dof: int
    used: np.ndarray
    rejected: list[Rejection] = field(default_factory=list)
    residual: np.ndarray | None = None

    @property
    def rejected_indices(self) -> np.ndarray:
        return np.array([r.index for r in self.rejected], dtype=np.int64)

    @property
    def passes_chi2(self) -> bool:
        return self.objective <= self.chi2_threshold


def _positions_of_ppc(pf: PowerFlowModel, ppc_idx: np.ndarray) -> np.ndarray:
    pos = np.full(pf.ybus.shape[0], -1)
    pos[pf.ppc_of_bus] = np.arange(len(pf.ppc_of_bus))
    return np.unique(pos[ppc_idx])


def _gain(hx: sp.csr_matrix, w: np.ndarray) -> sp.csc_matrix:
    return (hx.T @ sp.diags(w) @ hx).tocsc()


def check_observability(
    pf: PowerFlowModel, ms: MeasurementSet, v: np.ndarray | None = None, rtol: float = 1e-10
) -> None:
    """Raise ``UnobservableError`` naming the buses whose state the measurements do not fix.

    Numerical observability: the gain matrix ``H' W H`` at ``v`` (flat start by default) must
    be non-singular. Singular states are located from the LU pivots.
    """
    fn = MeasurementFunction(pf, ms.kind, ms.loc)
    v = pf.v_init if v is None else v
    hx = fn.jacobian(v)
    n_state = fn.n_state
    bus_of_state = np.r_[fn.nonref, np.arange(fn.n)]
    untouched = np.flatnonzero(np.asarray(abs(hx).sum(axis=0)).ravel() == 0)
    if len(untouched):
        buses = _positions_of_ppc(pf, bus_of_state[untouched])
        msg = (
            f"unobservable: no measurement depends on the voltage at {len(buses)} bus(es) "
            f"(positions {buses[:10].tolist()}{'...' if len(buses) > 10 else ''}); "
            "add meters or pseudo-measurements there"
        )
        raise UnobservableError(msg, buses)
    if len(ms) < n_state:
        msg = (
            f"unobservable: {len(ms)} measurements for {n_state} state variables; "
            "at least as many measurements as states are needed"
        )
        raise UnobservableError(msg, np.arange(len(pf.ppc_of_bus)))
    # unit-norm rows: observability is a property of the layout, not of the weights
    row_norm = np.sqrt(np.asarray(hx.multiply(hx).sum(axis=1)).ravel())
    g = _gain(hx, np.divide(1.0, row_norm**2, out=np.zeros_like(row_norm), where=row_norm > 0))
    scale = 1.0 / np.sqrt(np.maximum(g.diagonal(), 1e-300))
    g = (sp.diags(scale) @ g @ sp.diags(scale)).tocsc()
    try:
        lu = spla.splu(g)
        pivots = np.abs(lu.U.diagonal())
        weak = np.flatnonzero(pivots < rtol * pivots.max())
        weak_states = lu.perm_c[weak]
    except RuntimeError:
        weak_states = np.arange(n_state)
    if len(weak_states):
        buses = _positions_of_ppc(pf, bus_of_state[weak_states])
        msg = (
            f"unobservable: the gain matrix is singular ({len(weak_states)} of {n_state} state "
            f"variables undetermined, near bus positions {buses[:10].tolist()}); "
            "add voltage, power or pseudo-measurements there"
        )
        raise UnobservableError(msg, buses)


def _gauss_newton(
    fn: MeasurementFunction,
    ms: MeasurementSet,
    v0: np.ndarray,
    va_ref: float,
    tol: float,
    max_iter: int,
) -> tuple[np.ndarray, int, sp.csr_matrix, sp.csc_matrix]:
    w = 1.0 / ms.std**2
    x = fn.v_to_state(v0)
    v = v0
    for it in range(1, max_iter + 1):
        hx = fn.jacobian(v)
        r = ms.value - fn.h(v)
        gain = _gain(hx, w)
        dx = spla.splu(gain).solve(hx.T @ (w * r))
        x = x + dx
        v = fn.state_to_v(x, va_ref)
        if np.max(np.abs(dx)) < tol:
            return v, it, hx, gain
    msg = f"WLS did not converge in {max_iter} iterations (last step {np.max(np.abs(dx)):.3g})"
    raise EstimationNotConverged(msg)


def normalized_residuals(hx: sp.csr_matrix, std: np.ndarray, r: np.ndarray) -> np.ndarray:
    """|r_i| / sqrt(Omega_ii) with Omega = R - H G^-1 H' (NaN for critical measurements).

    ``Omega_ii = std_i^2 (1 - K_ii)`` with the leverages ``K_ii`` taken from a thin QR of
    ``R^-1/2 H``. Going through ``G^-1`` instead loses every digit: precise meters make the
    gain matrix's condition number ~1e14 and their leverages are close to 1.
    """
    with _BLAS.limit(limits=1, user_api="blas"):
        q, _ = scipy.linalg.qr((hx / std[:, None]).toarray(), mode="economic")
    spread = 1.0 - np.einsum("ij,ij->i", q, q)
    critical = spread < 1e-8
    omega = std**2 * np.where(critical, 1.0, spread)
    return np.where(critical, np.nan, np.abs(r) / np.sqrt(omega))


def estimate(
    pf: PowerFlowModel,
    ms: MeasurementSet,
    v0: np.ndarray | None = None,
    bad_data: str = "lnr",
    alpha: float = 0.01,
    lnr_threshold: float = 4.0,
    max_rejections: int = 10,
    tol: float = 1e-7,
    max_iter: int = 30,
    check: bool = True,
) -> EstimateResult:
    """Estimate bus voltages from ``ms``.

    ``bad_data``: ``"lnr"`` runs the largest-normalised-residual test after every estimate,
    ``"chi2"`` only when the chi-squared test at significance ``alpha`` fails (cheaper), and
    ``"off"`` skips bad-data processing. A measurement whose normalised residual exceeds
    ``lnr_threshold`` is removed and the state re-estimated, up to ``max_rejections`` times.
    ``virtual`` (zero-injection) rows are never removed. ``v0`` warm-starts (complex voltages in
    pandapower's internal order, e.g. the previous estimate's ``v``).
    """
    if bad_data not in ("lnr", "chi2", "off"):
        msg = f"bad_data={bad_data!r}: expected 'lnr', 'chi2' or 'off'"
        raise ValueError(msg)
    if check:
        check_observability(pf, ms, v0)
    va_ref = float(np.angle(pf.v_init[pf.ref]))
    v = (pf.v_init if v0 is None else v0).astype(complex)
    used = np.ones(len(ms), dtype=bool)
    rejected: list[Rejection] = []
    total_it = 0
    while True:
        sub = ms.subset(used)
        fn = MeasurementFunction(pf, sub.kind, sub.loc)
        v, it, hx, gain = _gauss_newton(fn, sub, v, va_ref, tol, max_iter)
        total_it += it
        r = sub.value - fn.h(v)
        objective = float(np.sum((r / sub.std) ** 2))
        dof = max(len(sub) - fn.n_state, 1)
        threshold = float(chi2.ppf(1.0 - alpha, dof))
        test = bad_data == "lnr" or (bad_data == "chi2" and objective > threshold)
        if not test or len(rejected) >= max_rejections:
            break
        rn = normalized_residuals(hx, sub.std, r)
        rn[sub.source == "virtual"] = np.nan
        if np.all(np.isnan(rn)) or np.nanmax(rn) <= lnr_threshold:
            break
        worst = int(np.nanargmax(rn))
        original = int(np.flatnonzero(used)[worst])
        rejected.append(Rejection(original, float(rn[worst])))
        used[original] = False
    vb = v[pf.ppc_of_bus]
    full_r = np.full(len(ms), np.nan)
    full_r[used] = r
    return EstimateResult(
        vm_pu=np.abs(vb),
        va_rad=np.angle(vb),
        v=v,
        iterations=total_it,
        objective=objective,
        chi2_threshold=threshold,
        dof=dof,
        used=used,
        rejected=rejected,
        residual=full_r,
    )
