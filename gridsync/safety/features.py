"""Per-step evidence from the state estimator on time-aligned snapshots.

For every reference step the estimator runs on the readings *of* that step (``plan.align``),
so the residuals carry device noise only. It yields the chi-squared statistic (as a standard
normal score), every device row's normalised residual, and the signed z-scores of a PMU
cross-check: the PMU phasors predicted from the state estimated *without* them, against what
the GPS-synchronised PMUs read. Detectors, thresholds and naming live in ``monitor``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.linalg
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from gridsync.grid.estimation.measurements import MeasurementFunction, MeasurementSet
from gridsync.grid.estimation.twin import MeasurementPlan
from gridsync.grid.estimation.wls import (
    _BLAS,
    EstimationNotConverged,
    estimate,
    normalized_residuals,
)
from gridsync.grid.powerflow import PowerFlowModel
from gridsync.safety.config import raise_if_stopped
from gridsync.safety.detectors import forward_fill

DEVICE_SOURCES = ("scada", "pmu", "meter")
# forecasts (pseudo-measurements) off by more than this many std of their residual are widened
PSEUDO_RN = 4.0
PSEUDO_PASSES = 3


def chi2_z(objective: float | np.ndarray, dof: float | np.ndarray) -> np.ndarray:
    """Wilson-Hilferty transform: a chi-squared value with ``dof`` degrees of freedom as an
    (approximately) standard normal score, so snapshots with different dof share one scale."""
    k = np.asarray(dof, dtype=float)
    c = 2.0 / (9.0 * k)
    return ((np.asarray(objective) / k) ** (1.0 / 3.0) - (1.0 - c)) / np.sqrt(c)


@dataclass
class SnapshotFeatures:
    """Estimator evidence for reference steps ``0..T-1`` (NaN where not computed).

    ``rn`` (T, m) is each plan row's normalised residual (NaN: absent, or critical with no
    redundancy); ``pmu_z`` (T, n_pmu) the signed PMU cross-check gaps in std of the gap.
    """

    chi2_z: np.ndarray
    rn: np.ndarray
    pmu_z: np.ndarray
    converged: np.ndarray

    @classmethod
    def empty(cls, n_t: int, m: int, n_pmu: int) -> SnapshotFeatures:
        return cls(
            np.full(n_t, np.nan),
            np.full((n_t, m), np.nan),
            np.full((n_t, n_pmu), np.nan),
            np.ones(n_t, dtype=bool),
        )

    def copy(self) -> SnapshotFeatures:
        return SnapshotFeatures(
            self.chi2_z.copy(), self.rn.copy(), self.pmu_z.copy(), self.converged.copy()
        )

    def lnr(self, device: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Largest normalised residual over ``device`` rows per step and its plan row."""
        rn = np.where(device[None, :], self.rn, -np.inf)
        rn = np.nan_to_num(rn, nan=-np.inf)
        row = np.argmax(rn, axis=1)
        best = rn[np.arange(len(rn)), row]
        return np.where(np.isfinite(best), best, np.nan), row


class SnapshotAnalyzer:
    """Runs the estimator-based evidence for one measurement plan."""

    def __init__(self, pf: PowerFlowModel, plan: MeasurementPlan) -> None:
        self.pf, self.plan = pf, plan
        self.pmu_rows = np.flatnonzero(plan.source == "pmu")
        self._v: np.ndarray | None = None

    def snapshot(self, aligned: np.ndarray, step: int, pseudo_p_kw, pseudo_q_kvar):
        """The aligned snapshot of ``step`` and the plan row of each of its rows (-1: pseudo or
        virtual)."""
        ms = self.plan.snapshot(aligned, step, pseudo_p_kw, pseudo_q_kvar, aligned=True)
        ok = np.flatnonzero(np.isfinite(aligned[step]))
        rows = np.full(len(ms), -1, dtype=np.int64)
        rows[: len(ok)] = ok
        return ms, rows

    def analyze(
        self,
        aligned: np.ndarray,
        pseudo_p_kw: np.ndarray,
        pseudo_q_kvar: np.ndarray,
        steps: np.ndarray,
        out: SnapshotFeatures | None = None,
        stop=None,
    ) -> SnapshotFeatures:
        """Evidence for every step in ``steps`` (warm-started along the sequence); a set
        ``stop`` event ends it between steps (``FitCancelled``)."""
        m = len(self.plan)
        out = out or SnapshotFeatures.empty(len(aligned), m, len(self.pmu_rows))
        for t in np.asarray(steps, dtype=np.int64):
            raise_if_stopped(stop)
            ms, rows = self.snapshot(aligned, t, pseudo_p_kw[t], pseudo_q_kvar[t])
            try:
                chi, rn, pz = self._one(ms, rows)
            except EstimationNotConverged:
                self._v = None
                out.converged[t] = False
                out.chi2_z[t] = np.inf  # an inconsistent snapshot is an alarm, not a crash
                continue
            out.chi2_z[t], out.pmu_z[t] = chi, pz
            out.rn[t] = np.nan
            keep = rows >= 0
            out.rn[t, rows[keep]] = rn[keep]
        return out

    def _one(self, ms: MeasurementSet, rows: np.ndarray):
        """Estimate, then down-weight forecasts that are plainly wrong (``_robust_pseudo``)
        and report the evidence of the re-weighted snapshot."""
        est = estimate(self.pf, ms, v0=self._v, bad_data="off", check=False)
        fn = MeasurementFunction(self.pf, ms.kind, ms.loc)
        for _ in range(PSEUDO_PASSES):
            r = ms.value - fn.h(est.v)
            rn = normalized_residuals(fn.jacobian(est.v), ms.std, r)
            if not self._robust_pseudo(ms, rn):
                break
            est = estimate(self.pf, ms, v0=est.v, bad_data="off", check=False)
        else:
            r = ms.value - fn.h(est.v)
            rn = normalized_residuals(fn.jacobian(est.v), ms.std, r)
        self._v = est.v
        return float(chi2_z(est.objective, est.dof)), rn, self._pmu_z(ms, rows, est.v)

    @staticmethod
    def _robust_pseudo(ms: MeasurementSet, rn: np.ndarray) -> bool:
        """Widen (in place) the std of pseudo-measurements whose normalised residual exceeds
        ``PSEUDO_RN`` and every device reading's: a forecast missing an EV that started
        charging is not a faulty device, and a Gaussian forecast error would blame the
        accurate meters around it. Returns whether any was widened."""
        pseudo = ms.source == "pseudo"
        device = np.isin(ms.source, DEVICE_SOURCES)
        worst_device = np.nanmax(rn[device], initial=0.0)
        off = pseudo & (np.nan_to_num(rn) > max(PSEUDO_RN, worst_device))
        ms.std[off] *= rn[off] / 2.0
        return bool(off.any())

    def _pmu_z(self, ms: MeasurementSet, rows: np.ndarray, v0: np.ndarray) -> np.ndarray:
        """Signed gaps between PMU readings and their prediction from everything else, in std
        of the gap (PMU noise plus the prediction's own uncertainty)."""
        out = np.full(len(self.pmu_rows), np.nan)
        is_pmu = ms.source == "pmu"
        if not is_pmu.any():
            return out
        rest = ms.subset(~is_pmu)
        est = estimate(self.pf, rest, v0=v0, bad_data="off", check=False)
        fn = MeasurementFunction(self.pf, rest.kind, rest.loc)
        h_rest = fn.jacobian(est.v)
        gain = (h_rest.T @ sp.diags(1.0 / rest.std**2) @ h_rest).tocsc()
        pmu = ms.subset(is_pmu)
        fn_pmu = MeasurementFunction(self.pf, pmu.kind, pmu.loc)
        h_pmu = fn_pmu.jacobian(est.v)
        var = np.asarray(
            h_pmu.multiply(spla.splu(gain).solve(h_pmu.T.toarray()).T).sum(axis=1)
        ).ravel()
        z = (pmu.value - fn_pmu.h(est.v)) / np.sqrt(pmu.std**2 + np.maximum(var, 0.0))
        where = np.searchsorted(self.pmu_rows, rows[is_pmu])
        out[where] = z
        return out

    def identify(
        self,
        aligned: np.ndarray,
        step: int,
        pseudo_p_kw: np.ndarray,
        pseudo_q_kvar: np.ndarray,
        threshold: float,
        max_named: int,
    ) -> list[tuple[int, float]]:
        """Plan rows removed by the largest-normalised-residual loop at ``step`` (worst
        first) with their normalised residual at removal; pseudo/virtual rows are skipped."""
        ms, rows = self.snapshot(aligned, step, pseudo_p_kw, pseudo_q_kvar)
        try:
            est = estimate(
                self.pf,
                ms,
                v0=self._v,
                lnr_threshold=threshold,
                max_rejections=max_named + 4,
                check=False,
            )
        except EstimationNotConverged:
            return []
        named = [(int(rows[r.index]), r.normalized_residual) for r in est.rejected]
        return [(row, rn) for row, rn in named if row >= 0][:max_named]

    def redundancy(
        self, aligned: np.ndarray, step: int, pseudo_p_kw: np.ndarray, pseudo_q_kvar: np.ndarray
    ) -> np.ndarray:
        """Share of a gross error's variance left in each plan row's own residual
        (``1 - K_ii``; 0 = critical, no redundancy: the estimator cannot see an error there),
        for the layout with every device present (missing readings filled with the last one)."""
        full = forward_fill(aligned[: step + 1])
        ms, rows = self.snapshot(full, step, pseudo_p_kw, pseudo_q_kvar)
        est = estimate(self.pf, ms, v0=self._v, bad_data="off", check=False)
        fn = MeasurementFunction(self.pf, ms.kind, ms.loc)
        hx = fn.jacobian(est.v) / ms.std[:, None]
        with _BLAS.limit(limits=1, user_api="blas"):
            q, _ = scipy.linalg.qr(hx.toarray(), mode="economic")
        out = np.full(len(self.plan), np.nan)
        keep = rows >= 0
        out[rows[keep]] = (1.0 - np.einsum("ij,ij->i", q, q))[keep]
        return out
