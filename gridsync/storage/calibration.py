"""Marginal ageing costs for dispatch, from the cell model, the cell price and the battery's age.

Under the power laws of ``gridsync.storage.ageing`` a battery's loss is ``k x^p`` in its
virtual time (days for calendar ageing, EFC for cycling). An extra cycle today advances the
virtual time, so what it costs is the capacity it takes from the battery at the END of the
valuation period (its warranty): ``k p x_end^(p-1)`` per EFC, where ``x_end`` is the virtual
time reached by then at the assumed use. A unit of capacity fraction is worth the pack's
replacement cost spread over the fade it is allowed before end of life
(``replacement / (1 - end_of_life_frac)``), so:

- a cycle of depth ``d`` costs ``V d stress(d) T(temp) p_cyc x_end^(p_cyc - 1)`` EUR
  (``cycle_cost_eur``; convex in ``d``, the cycle-depth stress function of Shi et al. 2018);
- an hour at state of charge ``s`` costs ``V k_cal(temp, s) p_cal t_end^(p_cal - 1) / 24`` EUR
  (``calendar_cost_eur_per_h``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gridsync.storage.ageing import ZERO_C_K, AgeingState
from gridsync.storage.cells import Cell


@dataclass(frozen=True)
class AgeingEconomics:
    """What a battery's ageing is worth. Arrays are per battery (or broadcast scalars).

    ``efc_per_year``: assumed use, to project the virtual time at the warranty's end;
    ``c_rate_per_h``: the time-averaged C-rate the cycling stress is evaluated at (LFP).
    """

    cell: Cell
    capacity_kwh: np.ndarray
    replacement_eur_per_kwh: float = 300.0
    end_of_life_frac: float = 0.8
    warranty_years: float = 10.0
    temp_c: np.ndarray | float = 25.0
    efc_per_year: float = 250.0
    c_rate_per_h: float = 0.05

    def eur_per_capacity_frac(self) -> np.ndarray:
        """EUR per unit of capacity fraction lost (x 0.01 for EUR per percentage point)."""
        cap = np.asarray(self.capacity_kwh, dtype=float)
        return self.replacement_eur_per_kwh * cap / (1.0 - self.end_of_life_frac)

    def _years_left(self, state: AgeingState) -> np.ndarray:
        return np.maximum(self.warranty_years - state.t_days / 365.0, 1.0)

    def _temp_k(self, n: int) -> np.ndarray:
        return np.broadcast_to(np.asarray(self.temp_c, dtype=float), (n,)) + ZERO_C_K


def cycle_cost_eur(econ: AgeingEconomics, state: AgeingState, depth: np.ndarray) -> np.ndarray:
    """EUR that one cycle of each ``depth`` (fraction of present capacity) costs each battery,
    shape (n_batteries, n_depths); ``depth`` is (n_depths,) or per battery (n, n_depths)."""
    cell = econ.cell
    n = len(state.t_days)
    temp_k = econ._temp_k(n)
    depth = np.atleast_2d(np.asarray(depth, dtype=float))
    k_ref = cell.cycle_rate(0.8, econ.c_rate_per_h, temp_k)
    x_now = (np.maximum(state.q_cyc, 0.0) / k_ref) ** (1.0 / cell.cyc_exp)
    x_end = np.maximum(x_now + econ.efc_per_year * econ._years_left(state), 1.0)
    slope = cell.cyc_exp * x_end ** (cell.cyc_exp - 1.0)
    stress = cell.cycle_stress(depth, econ.c_rate_per_h)
    k = stress * cell.cycle_temperature(temp_k)[:, None]
    loss = depth * k * slope[:, None]
    return loss * econ.eur_per_capacity_frac()[:, None]


def calendar_cost_eur_per_h(
    econ: AgeingEconomics, state: AgeingState, soc: np.ndarray
) -> np.ndarray:
    """EUR per hour each battery spends at each ``soc`` ((n_soc,) or (n, n_soc)), shape
    (n_batteries, n_soc)."""
    cell = econ.cell
    n = len(state.t_days)
    temp_k = econ._temp_k(n)
    t_end = np.maximum(state.t_days + 365.0 * econ._years_left(state), 1.0)
    slope = cell.cal_exp * t_end ** (cell.cal_exp - 1.0)
    k = cell.calendar_rate(temp_k[:, None], np.atleast_2d(np.asarray(soc, dtype=float)))
    return k * slope[:, None] / 24.0 * econ.eur_per_capacity_frac()[:, None]


def convex_slopes(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Slopes of the greatest convex minorant of points (x, y) (x increasing) on each interval
    ``[x_i, x_{i+1}]``: non-decreasing, so an LP filling cheaper pieces first is exact."""
    hull = [0]
    for i in range(1, len(x)):
        while len(hull) >= 2:
            a, b = hull[-2], hull[-1]
            cross = (x[b] - x[a]) * (y[i] - y[a]) - (y[b] - y[a]) * (x[i] - x[a])
            if cross > 0:
                break
            hull.pop()
        hull.append(i)
    slopes = np.empty(len(x) - 1)
    for a, b in zip(hull[:-1], hull[1:], strict=True):
        slopes[a:b] = (y[b] - y[a]) / (x[b] - x[a])
    return slopes
