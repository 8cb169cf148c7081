"""Per-step detector scores over a window of time-aligned telemetry (vectorised over steps).

Every detector turns a window into a score per reference step (higher = more anomalous) and,
where it can, a score per plan row (which measurement it points at). ``monitor`` sets the
thresholds from clean data and names the culprits. Temporal checks work on each meter's
*innovation* (reading minus its forecast, the pseudo-measurement of the same step):

* ``load_jump``: the innovation steps and stays (a level shift, seen one step later);
* ``spike``: it steps out and back (a one-step gross reading), in units of that reading's own
  clean spikes at that time of day (``spike_scale``): a household's evening is busier than
  its night, and one reading's normal spike is another's gross error;
* ``sustained``: it stays far off for ``w`` steps (a ramp that never jumps: a slowly
  injected fake load, or a real unscheduled one);
* ``pmu_cusum``: two-sided CUSUM of the PMU cross-check's standardised gaps, so a ramped
  attack that stays under the per-step PMU threshold still accumulates evidence.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gridsync.grid.estimation.measurements import P, Q
from gridsync.grid.estimation.twin import MeasurementPlan


@dataclass
class Score:
    """``value`` (T,) per step; ``by_row`` (T, len(rows)) per plan row in ``rows`` (or None);
    ``lookahead`` steps of later data the score needs (it is raised that much later)."""

    value: np.ndarray
    rows: np.ndarray | None = None
    by_row: np.ndarray | None = None
    lookahead: int = 0


def forward_fill(x: np.ndarray) -> np.ndarray:
    """Replace NaN by the last finite value above it in the same column (NaN before any)."""
    idx = np.where(np.isfinite(x), np.arange(len(x))[:, None], 0)
    np.maximum.accumulate(idx, axis=0, out=idx)
    return np.take_along_axis(x, idx, axis=0)


def run_lengths(mask: np.ndarray) -> np.ndarray:
    """For a (T, m) boolean mask, the length of the run of True ending at each cell."""
    out = np.zeros(mask.shape, dtype=np.int64)
    run = np.zeros(mask.shape[1], dtype=np.int64)
    for t in range(mask.shape[0]):
        run = np.where(mask[t], run + 1, 0)
        out[t] = run
    return out


def meter_rows(plan: MeasurementPlan) -> np.ndarray:
    """Plan rows of smart-meter P and Q readings (the ones with a load forecast)."""
    return np.flatnonzero(np.isin(plan.kind, (P, Q)) & (plan.source == "meter"))


def innovations(
    plan: MeasurementPlan, aligned: np.ndarray, pseudo_p_kw: np.ndarray, pseudo_q_kvar: np.ndarray
) -> np.ndarray:
    """(T, n_meter_rows) aligned meter P/Q readings minus the forecast of the same step."""
    rows = meter_rows(plan)
    bus = plan.loc[rows]
    fc = np.where(plan.kind[rows] == Q, pseudo_q_kvar[:, bus], pseudo_p_kw[:, bus])
    return aligned[:, rows] - fc


def _max_by_row(by_row: np.ndarray) -> np.ndarray:
    filled = np.nan_to_num(by_row, nan=-np.inf)
    best = filled.max(axis=1) if filled.shape[1] else np.full(len(filled), -np.inf)
    return np.where(np.isfinite(best), best, np.nan)


def jump_scores(innov: np.ndarray, scale: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(level shift, spike) scores per step and meter row, in units of ``scale`` (T, n)."""
    e = forward_fill(innov)  # a lost reading is not a reset
    prev, prev2, nxt = (np.full_like(e, np.nan) for _ in range(3))
    prev[1:], prev2[2:], nxt[:-1] = e[:-1], e[:-2], e[1:]
    up, down, held = e - prev, e - nxt, nxt - prev
    # the return from a spike is no level shift: the level must differ from two steps back too
    back2 = e - prev2
    with np.errstate(invalid="ignore"):
        spike = np.where(np.sign(up) == np.sign(down), np.minimum(abs(up), abs(down)), 0.0)
        same = (np.sign(up) == np.sign(held)) & (np.sign(up) == np.sign(back2))
        shift = np.where(same, np.minimum(np.minimum(abs(up), abs(held)), abs(back2)), 0.0)
    nan = ~np.isfinite(up) | ~np.isfinite(down)
    spike[nan], shift[nan] = np.nan, np.nan
    return shift / scale, spike / scale


def sustained_scores(innov: np.ndarray, scale: np.ndarray, steps: int) -> np.ndarray:
    """How far (in ``scale``) a meter's innovation stayed on one side over ``steps`` steps:
    the smallest |z| of the run when all have one sign, else 0 (T, n)."""
    z = forward_fill(innov) / scale
    lo = z.copy()
    hi = z.copy()
    for k in range(1, steps):
        prev = np.full_like(z, np.nan)
        prev[k:] = z[:-k]
        lo, hi = np.fmin(lo, prev), np.fmax(hi, prev)
        lo[:k], hi[:k] = np.nan, np.nan
    with np.errstate(invalid="ignore"):
        return np.where(lo > 0, lo, np.where(hi < 0, -hi, 0.0))


def cusum(z: np.ndarray, drift: float) -> np.ndarray:
    """Two-sided CUSUM statistic per step and channel of standardised series ``z`` (T, c);
    missing values add nothing."""
    z = np.nan_to_num(z, nan=0.0)
    up = np.zeros(z.shape[1])
    dn = np.zeros(z.shape[1])
    out = np.zeros_like(z)
    for t in range(len(z)):
        up = np.maximum(0.0, up + z[t] - drift)
        dn = np.maximum(0.0, dn - z[t] - drift)
        out[t] = np.maximum(up, dn)
    return out


def poisson_binomial_sf(p: np.ndarray) -> np.ndarray:
    """P(N >= k) for k = 0..len(p), N the number of independent events with probabilities p."""
    pmf = np.zeros(len(p) + 1)
    pmf[0] = 1.0
    for pi in p:
        pmf[1:] = pmf[1:] * (1 - pi) + pmf[:-1] * pi
        pmf[0] *= 1 - pi
    return np.cumsum(pmf[::-1])[::-1]


def dropout_limits(dropout: np.ndarray, rate: float, min_run: int) -> tuple[int, int]:
    """(missing-row count, per-channel silent run) that clean telemetry with independent
    losses at ``dropout`` per reading exceeds with probability at most ``rate`` per step each."""
    sf = poisson_binomial_sf(np.asarray(dropout, dtype=float))
    count = int(np.argmax(sf <= rate))
    run = min_run
    while np.sum(np.asarray(dropout, dtype=float) ** run) > rate:
        run += 1
    return count, run


def frozen_runs(aligned: np.ndarray, period: np.ndarray) -> np.ndarray:
    """Length of the run of exact repeats of the previous update ending at each cell (T, m)."""
    t_len = len(aligned)
    lag = np.asarray(period, dtype=np.int64)
    prev_idx = np.arange(t_len)[:, None] - lag[None, :]
    prev = np.take_along_axis(aligned, np.clip(prev_idx, 0, t_len - 1), axis=0)
    same = (aligned == prev) & (prev_idx >= 0) & np.isfinite(aligned)
    return run_lengths(same) + 1


TOD_BLOCKS = 12  # time-of-day classes of the spike scale (2 h each)
SPIKE_FLOOR_KW = 0.05


def tod_block(step_of_day: np.ndarray, steps_per_day: int) -> np.ndarray:
    """Time-of-day class (0..TOD_BLOCKS-1) of each step."""
    return np.asarray(step_of_day) * TOD_BLOCKS // steps_per_day


def spike_scale(
    spikes: np.ndarray, block: np.ndarray, row_quantile: float = 99.0, tod_quantile: float = 99.5
) -> tuple[np.ndarray, np.ndarray]:
    """(per-row scale (n,), per-time-of-day factor (TOD_BLOCKS,)) of clean spike statistics
    ``spikes`` (T, n) from ``jump_scores`` in kW, at steps of time-of-day class ``block`` (T,):
    each reading's ``row_quantile`` percentile, then the ``tod_quantile`` percentile of the
    pooled scaled spikes in each class (1 where a class has no data)."""
    row = np.nan_to_num(np.nanpercentile(spikes, row_quantile, axis=0), nan=1.0)
    row = np.maximum(row, SPIKE_FLOOR_KW)
    z = spikes / row
    tod = np.ones(TOD_BLOCKS)
    for b in range(TOD_BLOCKS):
        zb = z[block == b]
        if np.isfinite(zb).sum() >= 100:
            tod[b] = max(float(np.nanpercentile(zb, tod_quantile)), 0.1)
    return row, tod


def series_scores(
    plan: MeasurementPlan,
    aligned: np.ndarray,
    innov: np.ndarray,
    jump_scale: np.ndarray,
    spike_scale_t: np.ndarray,
    dev_scale: np.ndarray,
    sustained_steps: int,
) -> dict[str, Score]:
    """The time-series detectors' scores (everything that needs no estimator);
    ``spike_scale_t`` (T, n) scales the spikes of each step and meter row."""
    rows = meter_rows(plan)
    shift, spike = jump_scores(innov, 1.0)
    shift, spike = shift / jump_scale, spike / spike_scale_t
    sus = sustained_scores(innov, dev_scale, sustained_steps)
    sus[:, plan.kind[rows] != P] = np.nan  # a fake or unscheduled load shows in P
    device = np.isin(plan.source, ("scada", "pmu", "meter"))
    missing = ~np.isfinite(aligned) & device[None, :]
    runs = run_lengths(missing)
    frozen = frozen_runs(aligned, plan.period)
    all_rows = np.arange(len(plan))
    return {
        "load_jump": Score(_max_by_row(shift), rows, shift, lookahead=1),
        "spike": Score(_max_by_row(spike), rows, spike, lookahead=1),
        "sustained": Score(_max_by_row(sus), rows, sus),
        "dropout_count": Score(missing.sum(axis=1).astype(float), all_rows, missing.astype(float)),
        "dropout_run": Score(runs.max(axis=1).astype(float), all_rows, runs.astype(float)),
        "frozen": Score(frozen.max(axis=1).astype(float), all_rows, frozen.astype(float)),
    }
