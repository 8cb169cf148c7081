"""Sequential (chronological) Monte Carlo of load-point interruptions, vectorised and seeded.

Every component alternates up and down: time to failure exponential with its failure rate, time
to repair exponential with its mean repair time. Each failure interrupts the load points its
``OutageMatrix`` row says, for the switching time or the sampled repair time, in the year the
failure falls in. Annual system indices are then averaged over the simulated years; the 95 %
confidence intervals are normal intervals over the years for SAIFI, SAIDI, ASAI and ENS, and over
batches of years for the ratio CAIDI. Overlapping outages on one load point are counted as the
separate events they are (the analytical method makes the same first-order approximation), and
a load point restored by switching is out for the switching time even when the sampled repair
happens to be shorter, as in the analytical model (crews switch before they know the repair time).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gridsync.resilience.fmea import OutageMatrix
from gridsync.resilience.indices import HOURS_PER_YEAR, LoadPointIndices, SystemIndices

Z95 = 1.959964


@dataclass(frozen=True)
class MonteCarloResult:
    years: int
    seed: int
    mean: SystemIndices
    ci95_low: SystemIndices
    ci95_high: SystemIndices
    load_points: LoadPointIndices
    annual_saidi_h: np.ndarray
    annual_saifi: np.ndarray

    def contains(self, name: str, value: float) -> bool:
        return getattr(self.ci95_low, name) <= value <= getattr(self.ci95_high, name)


def _failure_events(rate_per_yr: np.ndarray, repair_h: np.ndarray, horizon_h: float,
                    rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(component, failure time h, repair duration h) of every failure before ``horizon_h``."""
    comps, times, repairs = [], [], []
    for c in np.flatnonzero(rate_per_yr > 0):
        mttf_h = HOURS_PER_YEAR / rate_per_yr[c]
        n = int(horizon_h / (mttf_h + repair_h[c]) * 1.1 + 10 * np.sqrt(horizon_h / mttf_h) + 20)
        t_fail = np.empty(0)
        ttr = np.empty(0)
        clock = 0.0
        while clock < horizon_h:
            up = rng.exponential(mttf_h, n)
            down = rng.exponential(repair_h[c], n)
            cycle_end = clock + np.cumsum(up + down)
            fail_at = cycle_end - down
            t_fail = np.concatenate([t_fail, fail_at])
            ttr = np.concatenate([ttr, down])
            clock = float(cycle_end[-1])
        keep = t_fail < horizon_h
        comps.append(np.full(int(keep.sum()), c))
        times.append(t_fail[keep])
        repairs.append(ttr[keep])
    return np.concatenate(comps), np.concatenate(times), np.concatenate(repairs)


def simulate(matrix: OutageMatrix, customers: np.ndarray, average_load_kw: np.ndarray,
             years: int = 100_000, seed: int = 0, batch_years: int = 100) -> MonteCarloResult:
    """Simulate ``years`` years; return mean annual indices with 95 % confidence intervals."""
    rng = np.random.default_rng(seed)
    comp, t_fail, ttr = _failure_events(matrix.failure_rate_per_yr, matrix.repair_time_h,
                                        years * HOURS_PER_YEAR, rng)
    year = np.minimum((t_fail // HOURS_PER_YEAR).astype(int), years - 1)
    cat = matrix.category[comp]
    switched_h = np.minimum(matrix.switching_time_h, matrix.repair_time_h[comp])[:, None]
    dur = np.where(cat == 1, switched_h, np.where(cat == 2, ttr[:, None], 0.0))
    n = np.asarray(customers, dtype=float)
    load_mw = np.asarray(average_load_kw, dtype=float) / 1000.0
    hit = (cat > 0).astype(float)
    saifi_y = np.bincount(year, hit @ n, minlength=years) / n.sum()
    saidi_y = np.bincount(year, dur @ n, minlength=years) / n.sum()
    ens_y = np.bincount(year, dur @ load_mw, minlength=years)
    lp_rate = hit.sum(axis=0) / years
    lp_hours = dur.sum(axis=0) / years

    def interval(x: np.ndarray) -> tuple[float, float, float]:
        m, half = float(x.mean()), Z95 * float(x.std(ddof=1)) / float(np.sqrt(len(x)))
        return m, m - half, m + half

    saifi, saidi, ens = interval(saifi_y), interval(saidi_y), interval(ens_y)
    n_batch = max(years // batch_years, 2)
    used = n_batch * (years // n_batch)
    b_saifi = saifi_y[:used].reshape(n_batch, -1).mean(axis=1)
    b_saidi = saidi_y[:used].reshape(n_batch, -1).mean(axis=1)
    caidi_b = np.divide(b_saidi, b_saifi, out=np.zeros_like(b_saidi), where=b_saifi > 0)
    caidi_mean = saidi[0] / saifi[0] if saifi[0] > 0 else 0.0
    caidi_half = Z95 * float(caidi_b.std(ddof=1)) / float(np.sqrt(n_batch))

    def indices(k: int, caidi: float) -> SystemIndices:
        return SystemIndices(saifi=saifi[k], saidi_h=saidi[k], caidi_h=caidi,
                             asai=1.0 - saidi[k] / HOURS_PER_YEAR, ens_mwh=ens[k])

    low, high = indices(1, caidi_mean - caidi_half), indices(2, caidi_mean + caidi_half)
    low_asai = SystemIndices(**{**low.as_dict(), "asai": 1.0 - saidi[2] / HOURS_PER_YEAR})
    high_asai = SystemIndices(**{**high.as_dict(), "asai": 1.0 - saidi[1] / HOURS_PER_YEAR})
    return MonteCarloResult(
        years=years,
        seed=seed,
        mean=indices(0, caidi_mean),
        ci95_low=low_asai,
        ci95_high=high_asai,
        load_points=LoadPointIndices(
            ids=matrix.load_point_ids,
            failure_rate_per_yr=lp_rate,
            unavailability_h_per_yr=lp_hours,
            customers=n,
            average_load_kw=np.asarray(average_load_kw, dtype=float),
        ),
        annual_saidi_h=saidi_y,
        annual_saifi=saifi_y,
    )
