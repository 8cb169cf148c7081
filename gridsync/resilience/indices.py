"""IEEE 1366 reliability indices from load-point failure rates and outage times.

SAIFI = sum(lambda_i N_i) / sum(N_i) interruptions per customer·yr, SAIDI = sum(U_i N_i) /
sum(N_i) h per customer·yr, CAIDI = SAIDI / SAIFI h per interruption, ASAI = 1 - SAIDI / 8760,
ENS = sum(U_i L_i) with L_i the average load, in MWh/yr.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

HOURS_PER_YEAR = 8760.0


@dataclass(frozen=True)
class SystemIndices:
    saifi: float
    saidi_h: float
    caidi_h: float
    asai: float
    ens_mwh: float

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def system_indices(failure_rate_per_yr, unavailability_h_per_yr, customers,
                   average_load_kw) -> SystemIndices:
    """System indices from per-load-point arrays (any shape broadcasting over the last axis)."""
    lam = np.asarray(failure_rate_per_yr, dtype=float)
    u = np.asarray(unavailability_h_per_yr, dtype=float)
    n = np.asarray(customers, dtype=float)
    load_mw = np.asarray(average_load_kw, dtype=float) / 1000.0
    saifi = float(lam @ n / n.sum())
    saidi = float(u @ n / n.sum())
    return SystemIndices(
        saifi=saifi,
        saidi_h=saidi,
        caidi_h=saidi / saifi if saifi > 0 else 0.0,
        asai=1.0 - saidi / HOURS_PER_YEAR,
        ens_mwh=float(u @ load_mw),
    )


@dataclass(frozen=True)
class LoadPointIndices:
    """Per load point: failure rate (1/yr), annual outage time (h/yr), customers, load (kW)."""

    ids: list[str]
    failure_rate_per_yr: np.ndarray
    unavailability_h_per_yr: np.ndarray
    customers: np.ndarray
    average_load_kw: np.ndarray

    @property
    def outage_duration_h(self) -> np.ndarray:
        lam = self.failure_rate_per_yr
        return np.divide(self.unavailability_h_per_yr, lam, out=np.zeros_like(lam), where=lam > 0)

    @property
    def ens_mwh(self) -> np.ndarray:
        return self.unavailability_h_per_yr * self.average_load_kw / 1000.0

    def system(self) -> SystemIndices:
        return system_indices(self.failure_rate_per_yr, self.unavailability_h_per_yr,
                              self.customers, self.average_load_kw)

    def rows(self) -> list[dict]:
        return [
            {"id": i, "failure_rate_per_yr": float(lam), "outage_duration_h": float(r),
             "unavailability_h_per_yr": float(u), "ens_mwh": float(e)}
            for i, lam, r, u, e in zip(self.ids, self.failure_rate_per_yr, self.outage_duration_h,
                                       self.unavailability_h_per_yr, self.ens_mwh, strict=True)
        ]
