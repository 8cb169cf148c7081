"""A tiny tie-breaking cost that makes the dispatch LP's optimum unique.

Many dispatch decisions are exact substitutes for the objective: which of several identical
batteries discharges, at which of several equally priced steps an appliance runs, which car
slows when the peak binds. The LP then has a whole face of optima and the simplex solver
returns one of its vertices; which one depends on the last digits of the inputs. In closed
loop that is chaos: a battery state of charge rounded to SunSpec's 0.01 % moved single
batteries by several kW in the next plan and the day's mpc+shield cost by percents.

The tie-break prices each kWh of flexible power (battery charge and discharge, EV charge,
appliances, heat pumps, PV curtailment) at ``eps x (1 + step/H + 0.7071 x rank/n)`` EUR, with
``rank`` the asset's position among the ``n`` of its kind: among plans of equal real cost the
LP prefers less throughput, earlier steps (cars and appliances finish sooner) and lower-ranked
assets, and no two (asset, step) pairs cost the same (the irrational factor keeps the step and
rank terms from cancelling). ``eps`` (default 1e-4 EUR/kWh in ``MPCConfig``) is three orders
below real price differences, so a plan pays at most ``2.7 eps`` per kWh moved for it, while
the differences between (asset, step) pairs, ``eps / max(n, H)``, stay well above the solver's
dual tolerance (1e-7).
"""

from __future__ import annotations

import numpy as np

from gridsync.dispatch.lp import LinearProgram

RANK_WEIGHT = 0.7071  # ~1/sqrt(2): step and rank terms never cancel for integer steps and ranks


def _price(eps: float, rank: np.ndarray, n: int, t: np.ndarray, H: int) -> np.ndarray:
    return eps * (1.0 + t / max(H, 1) + RANK_WEIGHT * rank / max(n, 1))


def add_tie_break(lp: LinearProgram, lay, step_h: np.ndarray, eps: float) -> np.ndarray:
    """Add the tie-break (``eps`` EUR/kWh scale) to the flexible-power columns of a dispatch
    LP built by ``formulation.build_dispatch_lp`` (``lay`` is its ``Layout``); returns the
    cost added per column (``added @ x`` is what a solution ``x`` pays for it)."""
    if not 0.0 <= eps <= 1e-2:
        msg = f"tie_break_eur_per_kwh = {eps!r}; expected a tiny cost in [0, 0.01] EUR/kWh"
        raise ValueError(msg)
    added = np.zeros(lp.n_col)
    if eps == 0.0:
        return added
    H = lay.H
    dt = np.asarray(step_h, float)[:H]
    for cols in (lay.bat_c, lay.bat_d, lay.th_p):  # asset-major (asset, step) grids
        n = len(cols) // H if H else 0
        rank, t = np.repeat(np.arange(n), H), np.tile(np.arange(H), n)
        added[cols] = _price(eps, rank, n, t, H) * dt[t]
    for cols, rank, t in (
        (lay.ev_c, lay.ev_pair_sess, lay.ev_t),
        (lay.dfr_p, lay.dfr_j, lay.dfr_t),
        (lay.pv_q, lay.pv_i, lay.pv_t),
    ):
        n = int(rank.max()) + 1 if len(rank) else 0
        added[cols] = _price(eps, rank, n, t, H) * dt[t]
    lp.add_cost(np.arange(lp.n_col), added)
    return added
