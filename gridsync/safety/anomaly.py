"""Asset-behaviour anomalies: assets that do not follow their setpoints.

Telemetry anomalies (gross errors, frozen sensors, unexplained loads, false-data injection,
communication dropouts) are found by ``gridsync.safety.monitor`` on time-aligned telemetry.
"""

from __future__ import annotations

import numpy as np

from gridsync.safety.detectors import run_lengths


def _mark_runs(run: np.ndarray, min_run: int) -> np.ndarray:
    """Flag every cell of runs that reach ``min_run`` (not only the cells after it)."""
    hit = run >= min_run
    flags = hit.copy()
    for back in range(1, min_run):
        shifted = np.zeros_like(hit)
        shifted[:-back] = hit[back:] & (run[back:] == min_run)
        flags |= shifted
    return flags


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
    return _mark_runs(run_lengths(off), min_run)
