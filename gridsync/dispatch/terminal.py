"""What the dispatch LP is worth at the end of its horizon: the end-state settlement of the
KPIs (``gridsync.sim.accounting``) written as LP terms, so the receding MPC does not drain
batteries or leave buildings cold at its horizon end and the full-window bound minimises
exactly the KPI it bounds.

- batteries: ``-credit * e_end`` (the KPI's constant ``credit * e_start`` is added by the
  caller), or with ``start_level`` a shortfall slack ``s >= e_start - e_end`` at the
  shortfall price;
- EV sessions still plugged in at the horizon end: their target (``EVHorizon.need_kwh``,
  pro rata at the window end) with the shortfall at the shortfall price when
  ``pro_rata_end``, else at the unmet-energy weight (the MPC's hard-ish target); energy
  beyond the target, up to the session's whole need, credited;
- buildings: a deficit slack ``d >= mode * (T_ref - T_end)``, ``T_ref`` the start temperature
  clipped to the band, priced ``C / COP`` kWh per °C at the shortfall price.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gridsync.dispatch.lp import INF, LinearProgram
from gridsync.sim.accounting import EndPrices, thermal_kwh_per_c, thermal_reference_c


@dataclass(frozen=True)
class TerminalValue:
    """Prices of the state at the horizon end (EUR/kWh). ``start_level``: batteries are not
    credited, only charged for ending below their start. ``pro_rata_end``: EV sessions and
    appliance jobs crossing the end owe their need pro rata (the KPI's window-end rule)."""

    credit_eur_per_kwh: float
    shortfall_eur_per_kwh: float
    start_level: bool = False
    pro_rata_end: bool = False
    # levels to hand back (the window's start at the window end); None = the horizon's start
    battery_start_kwh: np.ndarray | None = None
    thermal_start_c: np.ndarray | None = None

    @classmethod
    def from_scenario(
        cls,
        scenario,
        pro_rata_end: bool = False,
        battery_start_kwh: np.ndarray | None = None,
        thermal_start_c: np.ndarray | None = None,
    ) -> TerminalValue:
        prices = EndPrices.from_scenario(scenario)
        return cls(
            prices.credit_eur_per_kwh,
            prices.shortfall_eur_per_kwh,
            scenario.config.accounting.end_valuation == "start_level",
            pro_rata_end,
            battery_start_kwh,
            thermal_start_c,
        )

    def battery_ref_kwh(self, e0_kwh: np.ndarray) -> np.ndarray:
        return e0_kwh if self.battery_start_kwh is None else self.battery_start_kwh

    def thermal_ref_c(self, temp0_c: np.ndarray) -> np.ndarray:
        return temp0_c if self.thermal_start_c is None else self.thermal_start_c

    def battery_constant_eur(self, e0_kwh: np.ndarray) -> float:
        """The KPI's ``credit * e_start`` term the LP leaves out (it does not depend on x)."""
        ref = self.battery_ref_kwh(e0_kwh)
        return 0.0 if self.start_level else self.credit_eur_per_kwh * float(np.sum(ref))


def battery_end_cost(tv: TerminalValue | None, import_eur_per_kwh: np.ndarray) -> float:
    """Objective coefficient of each battery's energy at the horizon end (EUR/kWh). Without
    a terminal value the energy is worth the horizon's cheapest import price."""
    if tv is None:
        return -float(import_eur_per_kwh.min()) if len(import_eur_per_kwh) else 0.0
    return 0.0 if tv.start_level else -tv.credit_eur_per_kwh


def add_battery_shortfall(
    lp: LinearProgram, tv: TerminalValue | None, e_end: np.ndarray, e0_kwh: np.ndarray
) -> None:
    """``start_level``: a slack per battery with ``e_end + s >= e_start`` at the shortfall price."""
    if tv is None or not tv.start_level or len(e_end) == 0:
        return
    n = len(e_end)
    s = lp.add_cols("bat_end_short", n, 0.0, INF, tv.shortfall_eur_per_kwh)
    r = np.arange(n)
    lp.add_rows(
        "battery_end", n, np.r_[r, r], np.r_[e_end, s], 1.0, tv.battery_ref_kwh(e0_kwh), INF
    )


def ev_end_prices(
    tv: TerminalValue | None,
    crossing: np.ndarray,
    unmet_eur_per_kwh: float,
) -> tuple[np.ndarray, float]:
    """Price of each session's shortfall below its target and the credit per kWh beyond it
    (only for sessions still plugged in at the horizon end)."""
    short = np.full(len(crossing), unmet_eur_per_kwh)
    if tv is None:
        return short, 0.0
    if tv.pro_rata_end:
        short = np.where(crossing, tv.shortfall_eur_per_kwh, short)
    return short, tv.credit_eur_per_kwh


def add_thermal_deficit(
    lp: LinearProgram,
    tv: TerminalValue | None,
    thermal,
    temp_end: np.ndarray,
    temp0_c: np.ndarray,
    mode_end: float,
) -> None:
    """A deficit slack per building, ``d >= mode (T_ref - T_end)`` in °C, priced C/COP kWh/°C."""
    if tv is None or len(temp_end) == 0:
        return
    n = len(temp_end)
    price = tv.shortfall_eur_per_kwh * thermal_kwh_per_c(thermal)
    d = lp.add_cols("th_end_deficit", n, 0.0, INF, price)
    r = np.arange(n)
    ref = thermal_reference_c(thermal, tv.thermal_ref_c(temp0_c))
    # d + mode * T_end >= mode * T_ref
    lp.add_rows(
        "thermal_end",
        n,
        np.r_[r, r],
        np.r_[d, temp_end],
        np.r_[np.ones(n), np.full(n, mode_end)],
        mode_end * ref,
        INF,
    )
