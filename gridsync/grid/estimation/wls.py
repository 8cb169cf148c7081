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
from gridsync.grid.estimation.observability import redundancy, unobservable_states
from gridsync.grid.powerflow import PowerFlowModel

# Small dense factorisations are ~40x slower with multi-threaded BLAS on a busy machine.
_BLAS = ThreadpoolController()
WEAK_DETECTION_STD = 20.0  # an error this many std's large is "poorly detectable"


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
    and ``chi2_threshold`` the test threshold for its degrees of freedom. ``critical`` lists the
    input measurements whose gross errors cannot be detected at all (zero residual whatever
    their error), ``min_detectable_error`` the smallest gross error per input measurement the
    LNR test can see (its units; inf when critical, NaN when not used), ``redundancy`` the
    measurements per state variable, and ``detectability`` says in words when meter errors go
    undetected (empty when every used measurement is redundant).
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
    critical: np.ndarray | None = None
    min_detectable_error: np.ndarray | None = None
    redundancy: float = float("nan")
    detectability: str = ""

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

    Numerical observability (``observability.unobservable_states``): the state variables
    moved by the null space of ``H`` at ``v`` (flat start by default) are undetermined; the
    error lists exactly their buses.
    """
    fn = MeasurementFunction(pf, ms.kind, ms.loc)
    v = pf.v_init if v is None else v
    hx = fn.jacobian(v)
    n_state = fn.n_state
    bus_of_state = np.r_[fn.nonref, np.arange(fn.n)]
    untouched = np.asarray(abs(hx).sum(axis=0)).ravel() == 0
    # observability is a property of the layout, not of the weights: the rank of H
    weak_states = unobservable_states(hx)
    if len(weak_states):
        buses = _positions_of_ppc(pf, bus_of_state[weak_states])
        blind = _positions_of_ppc(pf, bus_of_state[np.flatnonzero(untouched)])
        msg = (
            f"unobservable: the measurements leave {len(weak_states)} of {n_state} state "
            f"variables undetermined ({len(ms)} measurements), at {len(buses)} bus(es): "
            f"{_bus_labels(pf, buses)}"
        )
        if len(blind):
            msg += f"; no measurement depends on the voltage at {_bus_labels(pf, blind)}"
        raise UnobservableError(msg + "; add voltage, power or pseudo-measurements there", buses)


def _bus_labels(pf: PowerFlowModel, buses: np.ndarray, limit: int = 12) -> str:
    names = pf.bus_names[buses] if pf.bus_names is not None else buses
    out = ", ".join(
        f"{name} (position {pos})" for name, pos in zip(names[:limit], buses[:limit], strict=True)
    )
    return out + (" ..." if len(buses) > limit else "")


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
    detectability: bool | None = None,
) -> EstimateResult:
    """Estimate bus voltages from ``ms``.

    ``bad_data``: ``"lnr"`` runs the largest-normalised-residual test after every estimate,
    ``"chi2"`` only when the chi-squared test at significance ``alpha`` fails (cheaper), and
    ``"off"`` skips bad-data processing. A measurement whose normalised residual exceeds
    ``lnr_threshold`` is removed and the state re-estimated, up to ``max_rejections`` times.
    ``virtual`` (zero-injection) rows are never removed. ``v0`` warm-starts (complex voltages in
    pandapower's internal order, e.g. the previous estimate's ``v``). ``detectability``
    (default: when bad-data processing is on) fills ``critical``, ``min_detectable_error`` and
    the ``detectability`` sentence from the measurements' leverages (one dense QR).
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
    extra = {}
    if bad_data != "off" if detectability is None else detectability:
        red = redundancy(hx, sub.std, lnr_threshold)
        used_idx = np.flatnonzero(used)
        mde = np.full(len(ms), np.nan)
        mde[used] = red.min_detectable_error
        real = sub.source != "virtual"
        critical = used_idx[red.critical & real]
        weak_mask = ~red.critical & (red.min_detectable_error > WEAK_DETECTION_STD * sub.std)
        weak = used_idx[weak_mask & real]
        extra = {
            "critical": critical,
            "min_detectable_error": mde,
            "redundancy": red.redundancy,
            "detectability": _detectability(ms, critical, weak, red.redundancy),
        }
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
        **extra,
    )


def _detectability(ms: MeasurementSet, critical: np.ndarray, weak: np.ndarray, ratio: float) -> str:
    """Sentences naming the measurements (by source) that cannot reveal a gross error, or only
    one larger than ``WEAK_DETECTION_STD`` standard deviations."""

    def by_source(idx):
        src, counts = np.unique(ms.source[idx].astype(str), return_counts=True)
        return ", ".join(f"{c} {s}" for s, c in zip(src, counts, strict=True))

    out = []
    if len(critical):
        out.append(
            f"gross errors are not detectable in {len(critical)} critical measurement(s) "
            f"({by_source(critical)}): their residual is zero whatever their error"
        )
    if len(weak):
        out.append(
            f"{len(weak)} {'more' if len(critical) else 'measurement(s)'} ({by_source(weak)}) "
            "reveal a gross error only above "
            f"{WEAK_DETECTION_STD:.0f} standard deviations"
        )
    if out:
        out.append(
            f"redundancy is {ratio:.2f} measurements per state variable; add meters or "
            "pseudo-measurements around them"
        )
    return "; ".join(out)
