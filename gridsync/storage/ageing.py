"""Battery ageing of a fleet: capacity fade and resistance growth from SoC and temperature.

The history is cut into segments (a day by default). In each segment and for every battery:

- calendar ageing: the calendar coefficient (``Cell.calendar_rate``, by temperature and SoC) is
  averaged over the segment's points (trapezoidal, equal steps) and advances a power law in time;
- cycle ageing: the segment's SoC series is split into cycles by rainflow counting
  (``gridsync.storage.counting``); each cycle's depth sets its stress (``Cell.cycle_stress``),
  the coefficients are averaged weighted by each cycle's charge throughput and advance a power
  law in equivalent full cycles (EFC); C-rate is the segment's throughput per hour (steps
  slower than 0.01 C count as rest) and mean SoC the segment's mean (NMC active-material loss).

Power laws ``y = k x^p`` with a coefficient that changes from segment to segment are advanced
exactly along the current segment's trajectory: the state is mapped to its equivalent ``x``
under the new ``k`` and moved by the segment's ``dx`` (the "virtual time" method).

SoC is the fraction of the battery's *present* capacity; EFC are counted in nominal capacity
(a faded battery cycling its whole range passes fewer nominal kWh), as BLAST-Lite does.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from gridsync.storage.cells import Cell
from gridsync.storage.counting import blast_breakpoints, throughput_weighted

ZERO_C_K = 273.15
REST_C_RATE = 0.01  # below this |dSoC/dt| (1/h) a step counts as rest for the C-rate


@dataclass(frozen=True)
class AgeingState:
    """Per-battery ageing state (arrays of the fleet's length), fractions of nominal capacity."""

    q_cal: np.ndarray  # capacity lost to calendar ageing (lithium inventory)
    q_cyc: np.ndarray  # capacity lost to cycling (lithium inventory)
    q_lam: np.ndarray  # active material lost (NMC sigmoid; unused for LFP)
    r_cal: np.ndarray  # relative resistance gain from calendar ageing (NMC)
    r_cyc: np.ndarray  # relative resistance gain from cycling (NMC)
    t_days: np.ndarray
    efc: np.ndarray

    @classmethod
    def fresh(cls, n: int) -> AgeingState:
        z = np.zeros(n)
        return cls(z, z.copy(), np.full(n, 1e-8), z.copy(), z.copy(), z.copy(), z.copy())


def capacity_frac(state: AgeingState, cell: Cell) -> np.ndarray:
    """State of health: present capacity / nominal capacity."""
    lli = 1.0 - state.q_cal - state.q_cyc
    if cell.has_lam:
        return np.minimum(lli, 1.01 - state.q_lam)
    return lli


def resistance_factor(state: AgeingState, cell: Cell) -> np.ndarray:
    """Present internal resistance / beginning-of-life resistance."""
    if cell.has_lam:
        lam = -0.08 + 1.09 / (1.01 - state.q_lam)
        return np.maximum(1.0 + state.r_cal + state.r_cyc, lam)
    return 1.0 + cell.resistance_per_fade * (1.0 - capacity_frac(state, cell))


def _power_law_step(y0: np.ndarray, dx: np.ndarray, k: np.ndarray, p: float) -> np.ndarray:
    """Advance ``y = k x^p`` by ``dx`` from ``y0`` along the trajectory of coefficient ``k``.

    Where ``k`` is (near) zero the equivalent ``x`` is unbounded and the step adds nothing
    (the limit of ``y0 (1 + dx / x_eq)^p``): ``y0`` is kept instead of overflowing to NaN."""
    y0 = np.maximum(np.asarray(y0, dtype=float), 0.0)
    k = np.broadcast_to(np.asarray(k, dtype=float), y0.shape)
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        x_eq = (y0 / k) ** (1.0 / p)
        y = k * (x_eq + np.maximum(dx, 0.0)) ** p
    return np.where(np.isfinite(y) & (k > 0.0), np.maximum(y, y0), y0)


def _sigmoid_step(y0: np.ndarray, dx: np.ndarray, half_x: np.ndarray, p: float) -> np.ndarray:
    """Advance ``y = 1 - 2 / (1 + exp((x / half_x)^p))`` (0 to 1) by ``dx`` from ``y0``."""
    half_x = np.maximum(half_x, 1e-9)
    y0 = np.clip(y0, 1e-15, 1.0 - 1e-12)
    x_eq = half_x * np.log(2.0 / (1.0 - y0) - 1.0) ** (1.0 / p)
    z = ((x_eq + np.maximum(dx, 0.0)) / half_x) ** p
    return 1.0 - 2.0 / (1.0 + np.exp(np.minimum(z, 700.0)))


def _time_mean(values: np.ndarray) -> np.ndarray:
    """Trapezoidal mean along axis 1 of equally spaced points."""
    if values.shape[1] < 2:
        return values[:, 0]
    return (values[:, 1:] + values[:, :-1]).mean(axis=1) / 2.0


@dataclass(frozen=True)
class SegmentStress:
    """What one segment does to each battery (arrays of the fleet's length)."""

    days: float
    d_efc: np.ndarray  # nominal EFC
    k_cal: np.ndarray
    k_cyc: np.ndarray
    lam_half_efc: np.ndarray


def segment_stress(
    cell: Cell,
    soc: np.ndarray,
    temp_c: np.ndarray,
    dt_h: float,
    capacity: np.ndarray,
    depth: str = "rainflow",
) -> SegmentStress:
    """Stressors of one segment. ``soc`` and ``temp_c``: (n_batteries, n_points) including the
    segment's starting point; ``capacity``: present capacity fraction per battery.

    ``depth="rainflow"`` stresses each rainflow cycle by its own depth; ``"range"`` gives every
    cycle of the segment the segment's SoC range (BLAST-Lite's convention, for comparison).
    """
    soc = np.atleast_2d(np.asarray(soc, dtype=float))
    temp_k = np.broadcast_to(np.asarray(temp_c, dtype=float), soc.shape) + ZERO_C_K
    steps = soc.shape[1] - 1
    hours = max(steps * dt_h, 1e-12)
    dsoc = np.abs(np.diff(soc, axis=1))
    d_efc = dsoc.sum(axis=1) / 2.0 * capacity
    moving = dsoc / dt_h >= REST_C_RATE
    c_rate = (dsoc * moving).sum(axis=1) / hours * capacity
    k_cal = _time_mean(cell.calendar_rate(temp_k, soc))
    temp_factor = _time_mean(cell.cycle_temperature(temp_k))
    mean_soc = soc.mean(axis=1)
    dod = soc.max(axis=1) - soc.min(axis=1)
    if depth == "range":
        stress = cell.cycle_stress(dod, c_rate)
    else:
        stress = throughput_weighted(soc, lambda d, i: cell.cycle_stress(d, c_rate[i]))
    lam_half = _time_mean(cell.lam_half_life_efc(dod[:, None], mean_soc[:, None], temp_k))
    return SegmentStress(steps * dt_h / 24.0, d_efc, k_cal, stress * temp_factor, lam_half)


def advance(state: AgeingState, cell: Cell, s: SegmentStress) -> AgeingState:
    """The state after one segment's stress."""
    q_cal = _power_law_step(state.q_cal, np.full(len(s.k_cal), s.days), s.k_cal, cell.cal_exp)
    q_cyc = _power_law_step(state.q_cyc, s.d_efc, s.k_cyc, cell.cyc_exp)
    q_lam, r_cal, r_cyc = state.q_lam, state.r_cal, state.r_cyc
    if cell.has_lam:
        q_lam = _sigmoid_step(state.q_lam, s.d_efc, s.lam_half_efc, 10.0)
        a1, p1, a3, p3 = cell.resistance_coefficients()
        r_cal = _power_law_step(state.r_cal, np.full(len(s.k_cal), s.days), a1 * s.k_cal, p1)
        r_cyc = _power_law_step(state.r_cyc, s.d_efc, a3 * s.k_cyc, p3)
    return replace(
        state,
        q_cal=q_cal,
        q_cyc=q_cyc,
        q_lam=q_lam,
        r_cal=r_cal,
        r_cyc=r_cyc,
        t_days=state.t_days + s.days,
        efc=state.efc + s.d_efc,
    )


def age_window(
    state: AgeingState,
    cell: Cell,
    soc: np.ndarray,
    temp_c: np.ndarray,
    dt_h: float,
    segment_h: float = 24.0,
) -> AgeingState:
    """Age a fleet over a window of present-capacity SoC, (n, T+1) points incl. the start."""
    soc = np.atleast_2d(soc)
    temp_c = np.broadcast_to(np.asarray(temp_c, dtype=float), soc.shape)
    per = max(int(round(segment_h / dt_h)), 1)
    for a in range(0, soc.shape[1] - 1, per):
        b = min(a + per, soc.shape[1] - 1)
        cap = capacity_frac(state, cell)
        stress = segment_stress(cell, soc[:, a : b + 1], temp_c[:, a : b + 1], dt_h, cap)
        state = advance(state, cell, stress)
    return state


def age_profile(
    cell: Cell,
    soc_bol: np.ndarray,
    temp_c: np.ndarray,
    dt_h: float,
    repeats: int = 1,
    segment_h: float = 24.0,
    state: AgeingState | None = None,
    depth: str = "rainflow",
    replay: str = "continuous",
) -> tuple[AgeingState, np.ndarray, np.ndarray]:
    """Repeat a beginning-of-life duty cycle ``repeats`` times, conserving energy throughput.

    ``soc_bol`` (n, T+1) is the SoC profile of a new battery; as capacity fades the same kWh
    swing is a deeper SoC swing: each segment's changes from its first point are scaled by
    1 / capacity and clipped to 0-1 (past what the faded battery can hold the duty is cut).
    Returns the final state, the days and the capacity fraction (n, segments) after every
    segment.

    ``replay`` says where segments start and which steps are aged, which only matters once
    clipping starts:

    - ``"continuous"``: segments of ``segment_h`` sharing their end points, each starting from
      the SoC the previous one ended at (each repeat from the profile's first value); every
      step is aged.
    - ``"blast"``: BLAST-Lite 1.1.1's replay (one profile at a time, n = 1): segments end at
      ``counting.blast_breakpoints``, each starts from the beginning-of-life profile's own value
      there, and the step from one segment's end to the next one's start is not aged (its time
      and throughput are skipped, as BLAST-Lite's ``simulate_battery_life`` does).
    """
    soc_bol = np.atleast_2d(np.asarray(soc_bol, dtype=float))
    n, npts = soc_bol.shape
    temp_c = np.broadcast_to(np.asarray(temp_c, dtype=float), soc_bol.shape)
    state = state or AgeingState.fresh(n)
    if replay == "continuous":
        per = max(int(round(segment_h / dt_h)), 1)
        bounds = [(a, min(a + per, npts - 1)) for a in range(0, npts - 1, per)]
    elif replay == "blast":
        if n != 1:
            msg = f"soc_bol: {n} profiles given; replay='blast' replays one profile at a time"
            raise ValueError(msg)
        ends = blast_breakpoints(soc_bol[0], dt_h)
        bounds = list(zip([0] + [e + 1 for e in ends[:-1]], ends, strict=True))
    else:
        msg = f"replay: {replay!r}; expected 'continuous' or 'blast'"
        raise ValueError(msg)
    days, caps = [], []
    for _ in range(repeats):
        start = soc_bol[:, 0]
        for a, b in bounds:
            cap = capacity_frac(state, cell)
            seg = soc_bol[:, a : b + 1]
            if replay == "blast":
                start = seg[:, 0]
            soc = np.clip(start[:, None] + (seg - seg[:, :1]) / cap[:, None], 0.0, 1.0)
            stress = segment_stress(cell, soc, temp_c[:, a : b + 1], dt_h, cap, depth)
            state = advance(state, cell, stress)
            start = soc[:, -1]
            days.append(state.t_days.copy())
            caps.append(capacity_frac(state, cell))
    return state, np.array(days).T, np.array(caps).T
