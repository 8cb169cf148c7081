"""Marginal ageing costs for dispatch, from the cell model, the cell price and the battery's age.

Under the integration of ``gridsync.storage.ageing`` a loss ``y = k x^p`` with a coefficient
that changes from segment (day) to segment ends at ``y_end = (sum_days k_day^(1/p) dx_day)^p``,
``k_day`` being the day's mean coefficient (calendar: time mean over the day's points;
cycling: throughput-weighted mean over the day's rainflow cycles). Perturbing one day of a life
spent at the reference stress ``k_ref`` (``x_end`` its virtual time at the valuation horizon,
the warranty's end) therefore changes ``y_end`` by (first order):

- one hour at SoC ``s`` (the day's mean calendar coefficient moves by ``k(s) / 24``):
  ``x_end^(p-1) k(s) / 24`` per hour (``calendar_cost_eur_per_h``); only differences between
  SoCs matter to dispatch, and these are exact in ``k(s) - k(s')``;
- one more cycle of depth ``d`` (``d`` more EFC and the day's mean stress pulled toward
  ``k(d)``): ``x_end^(p-1) d (k(d) - (1 - p) k_ref)`` (``cycle_cost_eur``; convex in ``d`` as
  ``d k(d)`` is, the cycle-depth stress function of Shi et al. 2018). With ``k(d) = k_ref`` it
  is the power law's slope ``p k x_end^(p-1)`` per EFC.

A unit of capacity fraction is worth the pack's replacement cost spread over the fade it is
allowed before end of life (``replacement / (1 - end_of_life_frac)``).
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
    slope = x_end ** (cell.cyc_exp - 1.0)
    k = cell.cycle_stress(depth, econ.c_rate_per_h) * cell.cycle_temperature(temp_k)[:, None]
    loss = depth * (k - (1.0 - cell.cyc_exp) * k_ref[:, None]) * slope[:, None]
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
    slope = t_end ** (cell.cal_exp - 1.0)
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
