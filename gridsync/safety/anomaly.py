"""Anomaly detectors for grid telemetry and asset behaviour.

Time-series detectors work on a readings matrix (T steps x m device rows, NaN = nothing
arrived) and return a boolean flag per reading:

* ``frozen_flags``: a sensor repeating the exact same value (real readings carry noise);
* ``dropout_flags``: a channel silent for several consecutive steps (not a lost packet);
* ``load_jump_flags``: a meter's consumption stepping away from its pseudo-measurement
  (yesterday's load minus today's PV) and staying there: a load nobody scheduled;
* ``spike_flags``: a one-step spike of a meter's unexplained load (a gross meter error that
  the snapshot estimator cannot see: a customer's own meter is nearly its only witness);
* ``setpoint_flags``: an asset whose telemetry does not follow its (physically clipped) command.

Per-snapshot checks run the state estimator (``StateChecker``): the largest-normalised-
residual test names gross errors, the chi-squared test flags inconsistent snapshots
(non-stealthy false-data injection), and a PMU cross-check compares the secure,
GPS-synchronised PMU phasors against the state estimated *without* them, which exposes
stealthy ``a = H c`` injections into SCADA/meter data whenever ``c`` moves a PMU-observed bus.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from gridsync.grid.estimation.measurements import MeasurementFunction, MeasurementSet, P, Q
from gridsync.grid.estimation.twin import MeasurementPlan
from gridsync.grid.estimation.wls import estimate
from gridsync.grid.powerflow import PowerFlowModel

DEVICE_SOURCES = ("scada", "pmu", "meter")


def _run_lengths(mask: np.ndarray) -> np.ndarray:
    """For a (T, m) boolean mask, the length of the run of True ending at each cell."""
    out = np.zeros(mask.shape, dtype=np.int64)
    run = np.zeros(mask.shape[1], dtype=np.int64)
    for t in range(mask.shape[0]):
        run = np.where(mask[t], run + 1, 0)
        out[t] = run
    return out


def _mark_runs(run: np.ndarray, min_run: int) -> np.ndarray:
    """Flag every cell of runs that reach ``min_run`` (not only the cells after it)."""
    hit = run >= min_run
    flags = hit.copy()
    for back in range(1, min_run):
        shifted = np.zeros_like(hit)
        shifted[:-back] = hit[back:] & (run[back:] == min_run)
        flags |= shifted
    return flags


def frozen_flags(readings: np.ndarray, period: np.ndarray, min_run: int = 3) -> np.ndarray:
    """Flag readings equal to the previous update for ``min_run`` consecutive updates.

    ``period`` (m,) is each device's update period in steps (held values are not frozen).
    """
    if min_run < 2:
        msg = f"min_run = {min_run}: a frozen sensor needs at least 2 equal updates"
        raise ValueError(msg)
    t_len = readings.shape[0]
    lag = np.asarray(period, dtype=np.int64)
    prev_idx = np.arange(t_len)[:, None] - lag[None, :]
    prev = np.take_along_axis(readings, np.clip(prev_idx, 0, t_len - 1), axis=0)
    same = (readings == prev) & (prev_idx >= 0) & np.isfinite(readings)
    return _mark_runs(_run_lengths(same), min_run - 1)


def dropout_flags(readings: np.ndarray, min_run: int = 3) -> np.ndarray:
    """Flag readings missing for ``min_run`` or more consecutive steps (a comms outage)."""
    return _mark_runs(_run_lengths(~np.isfinite(readings)), min_run)


@dataclass
class LoadJumpModel:
    """Per-meter thresholds on the step change of (reading - pseudo-measurement)."""

    rows: np.ndarray
    bus: np.ndarray
    threshold_kw: np.ndarray


def calibrate_load_jumps(
    plan: MeasurementPlan,
    readings: np.ndarray,
    pseudo_p_kw: np.ndarray,
    pseudo_q_kvar: np.ndarray | None = None,
    quantile: float = 99.9,
    factor: float = 1.5,
    floor_kw: float = 1.0,
) -> LoadJumpModel:
    """Thresholds from a clean history: ``factor`` x the ``quantile`` of |jump| per meter row
    (P rows, and Q rows too when ``pseudo_q_kvar`` is given)."""
    kinds = (P, Q) if pseudo_q_kvar is not None else (P,)
    rows = np.flatnonzero(np.isin(plan.kind, kinds) & (plan.source == "meter"))
    resid = readings[:, rows] - _aligned_pseudo(plan, rows, pseudo_p_kw, pseudo_q_kvar)
    jumps = np.abs(np.diff(_forward_fill(resid), axis=0))
    q = np.nanpercentile(jumps, quantile, axis=0)
    threshold = np.maximum(factor * np.nan_to_num(q, nan=floor_kw), floor_kw)
    return LoadJumpModel(rows, plan.loc[rows], threshold)


def _aligned_pseudo(
    plan: MeasurementPlan,
    rows: np.ndarray,
    pseudo_p_kw: np.ndarray,
    pseudo_q_kvar: np.ndarray | None = None,
) -> np.ndarray:
    """Pseudo-measurements (P or Q by row) at the time each delayed reading refers to."""
    lat = plan.latency[rows]
    t = np.clip(np.arange(len(pseudo_p_kw))[:, None] - lat[None, :], 0, None)
    bus = plan.loc[rows][None, :]
    is_q = plan.kind[rows] == Q
    if is_q.any() and pseudo_q_kvar is None:
        msg = "the load-jump model has reactive-power rows: pass pseudo_q_kvar as well"
        raise ValueError(msg)
    out = pseudo_p_kw[t, bus]
    if is_q.any():
        out = np.where(is_q[None, :], pseudo_q_kvar[t, bus], out)
    return out


def load_jump_flags(
    model: LoadJumpModel,
    plan: MeasurementPlan,
    readings: np.ndarray,
    pseudo_p_kw: np.ndarray,
    pseudo_q_kvar: np.ndarray | None = None,
) -> np.ndarray:
    """Flag meter readings where the unexplained load steps by more than the threshold and
    is still there one step later (a level shift, not a one-off spike). Other rows stay False."""
    resid = readings[:, model.rows] - _aligned_pseudo(plan, model.rows, pseudo_p_kw, pseudo_q_kvar)
    thr = model.threshold_kw
    # a lost reading is not a reset: compare with the last one that arrived
    resid = _forward_fill(resid)
    # a spike is not a level shift: hold the previous value over it before looking for steps
    spikes = _spikes(resid, thr)
    for t in np.flatnonzero(spikes.any(axis=1)):
        if t > 0:
            resid[t, spikes[t]] = resid[t - 1, spikes[t]]
    jump = np.zeros_like(resid)
    jump[1:] = resid[1:] - resid[:-1]
    held = np.zeros_like(resid)
    held[1:-1] = resid[2:] - resid[:-2]
    held[-1] = jump[-1]
    shift = (np.abs(jump) > thr) & (np.abs(held) > 0.5 * thr) & (np.sign(jump) == np.sign(held))
    flags = np.zeros(readings.shape, dtype=bool)
    flags[:, model.rows] = np.nan_to_num(shift, nan=False).astype(bool)
    return flags


def spike_flags(
    model: LoadJumpModel,
    plan: MeasurementPlan,
    readings: np.ndarray,
    pseudo_p_kw: np.ndarray,
    pseudo_q_kvar: np.ndarray | None = None,
) -> np.ndarray:
    """Flag one-step spikes of a meter's unexplained load: away from both neighbours by more
    than the jump threshold, in opposite directions (a gross reading, not a load change)."""
    resid = readings[:, model.rows] - _aligned_pseudo(plan, model.rows, pseudo_p_kw, pseudo_q_kvar)
    flags = np.zeros(readings.shape, dtype=bool)
    flags[:, model.rows] = _spikes(resid, model.threshold_kw)
    return flags


def _forward_fill(x: np.ndarray) -> np.ndarray:
    """Replace NaN by the last finite value above it in the same column (NaN before any)."""
    idx = np.where(np.isfinite(x), np.arange(len(x))[:, None], 0)
    np.maximum.accumulate(idx, axis=0, out=idx)
    return np.take_along_axis(x, idx, axis=0)


def _spikes(resid: np.ndarray, thr: np.ndarray) -> np.ndarray:
    up = np.full_like(resid, np.nan)
    down = np.full_like(resid, np.nan)
    up[1:] = resid[1:] - resid[:-1]
    down[:-1] = resid[:-1] - resid[1:]
    return (np.abs(up) > thr) & (np.abs(down) > thr) & (np.sign(up) == np.sign(down))


def setpoint_flags(
    commanded_kw: np.ndarray,
    measured_kw: np.ndarray,
    rating_kw: np.ndarray,
    tolerance_frac: float = 0.05,
    min_run: int = 2,
) -> np.ndarray:
    """Flag assets whose measured power misses the command by more than ``tolerance_frac`` of
    the rating (plus 0.1 kW) for ``min_run`` consecutive steps. Commands must already be the
    physically feasible ones (e.g. the shield's output), so SoC clipping is not a deviation."""
    off = np.abs(measured_kw - commanded_kw) > tolerance_frac * rating_kw + 0.1
    return _mark_runs(_run_lengths(off), min_run)


@dataclass
class StepVerdict:
    """Estimator-based findings for one snapshot.

    ``rejected_rows`` are device rows (indices into the plan) removed as gross errors;
    ``chi2_alarm`` is the chi-squared test before any removal; ``pmu_score`` is the largest
    normalised mismatch between PMU readings and the PMU-free estimate.
    """

    rejected_rows: np.ndarray
    chi2_alarm: bool
    pmu_score: float
    pmu_alarm: bool
    vm_pu: np.ndarray


class StateChecker:
    """Runs the estimator-based checks on snapshots of one plan."""

    def __init__(
        self,
        pf: PowerFlowModel,
        plan: MeasurementPlan,
        lnr_threshold: float = 4.0,
        alpha: float = 1e-4,
        pmu_threshold: float = 6.0,
    ) -> None:
        self.pf, self.plan = pf, plan
        self.lnr_threshold, self.alpha, self.pmu_threshold = lnr_threshold, alpha, pmu_threshold
        self._v = None

    def reset(self) -> None:
        """Forget the warm start (e.g. before checking an unrelated snapshot)."""
        self._v = None

    def check(self, ms: MeasurementSet, device_rows: np.ndarray) -> StepVerdict:
        """``device_rows[i]`` is the plan row of ``ms`` row i (-1 for pseudo/virtual rows)."""
        raw = estimate(self.pf, ms, v0=self._v, bad_data="off", check=False, alpha=self.alpha)
        chi2_alarm = not raw.passes_chi2
        est = estimate(
            self.pf, ms, v0=raw.v, lnr_threshold=self.lnr_threshold, check=False, alpha=self.alpha
        )
        self._v = est.v
        rejected = device_rows[est.rejected_indices] if est.rejected else np.zeros(0, np.int64)
        rejected = rejected[rejected >= 0]
        score = self._pmu_score(ms)
        return StepVerdict(rejected, chi2_alarm, score, score > self.pmu_threshold, est.vm_pu)

    def _pmu_score(self, ms: MeasurementSet) -> float:
        is_pmu = ms.source == "pmu"
        if not np.any(is_pmu):
            return 0.0
        rest = ms.subset(~is_pmu)
        est = estimate(
            self.pf,
            rest,
            v0=self._v,
            lnr_threshold=self.lnr_threshold,
            check=False,
            alpha=self.alpha,
        )
        kept = rest.subset(est.used)
        fn = MeasurementFunction(self.pf, kept.kind, kept.loc)
        h_rest = fn.jacobian(est.v)
        gain = (h_rest.T @ sp.diags(1.0 / kept.std**2) @ h_rest).tocsc()
        pmu = ms.subset(is_pmu)
        fn_pmu = MeasurementFunction(self.pf, pmu.kind, pmu.loc)
        h_pmu = fn_pmu.jacobian(est.v)
        var = np.asarray(
            h_pmu.multiply(spla.splu(gain).solve(h_pmu.T.toarray()).T).sum(axis=1)
        ).ravel()
        gap = pmu.value - fn_pmu.h(est.v)
        return float(np.max(np.abs(gap) / np.sqrt(pmu.std**2 + np.maximum(var, 0.0))))


def device_rows_of(readings_row: np.ndarray, ms: MeasurementSet) -> np.ndarray:
    """Plan row of each snapshot row (device rows come first, in plan order; -1 otherwise)."""
    ok = np.flatnonzero(np.isfinite(readings_row))
    out = np.full(len(ms), -1, dtype=np.int64)
    out[: len(ok)] = ok
    return out
