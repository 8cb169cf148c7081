"""Event planning: which customers, in which program, at which price or rebate, to reach a
target reduction at least cost.

Each candidate offer ``k`` = (customer, program, incentive level) has an expected reduction
``e_k`` (kW, averaged over the event window), an expected rebound ``r_k`` (kW, averaged over
the rebound window after it) and an expected cost ``c_k`` (EUR). The LP (HiGHS) is::

    min  sum_k c_k x_k + M_s * s + M_r * u
    s.t. sum_k e_k x_k + s >= target_kw          (reach the target, or pay for the shortfall)
         sum_k r_k x_k - u <= rebound_headroom_kw (the rebound must fit under the limit)
         sum_{k of customer i} x_k <= 1           (one offer per customer)
         0 <= x_k <= 1, s, u >= 0

It is a multiple-choice knapsack relaxation: a basic optimum has at most two fractional
customers, which are rounded to the nearest integer. For
very large portfolios, offers far down the cost-per-kW ranking cannot enter an optimum that
needs only a fraction of them, so only the cheapest offers covering ``screen_factor`` times
the target are passed to HiGHS (``screen=False`` disables this; tests compare both).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import highspy
import numpy as np
import scipy.sparse as sp


class PlanningError(RuntimeError):
    """The planning LP could not be solved; the message says why and what to change."""


@dataclass
class Offers:
    """Candidate offers as parallel arrays (length K)."""

    customer: np.ndarray
    program: np.ndarray
    level_eur_per_kwh: np.ndarray
    expected_kw: np.ndarray
    rebound_kw: np.ndarray
    cost_eur: np.ndarray

    def __len__(self) -> int:
        return len(self.customer)

    def take(self, idx: np.ndarray) -> Offers:
        return Offers(
            customer=self.customer[idx],
            program=self.program[idx],
            level_eur_per_kwh=self.level_eur_per_kwh[idx],
            expected_kw=self.expected_kw[idx],
            rebound_kw=self.rebound_kw[idx],
            cost_eur=self.cost_eur[idx],
        )


@dataclass
class Plan:
    """The chosen offers (indices into the ``Offers`` passed in) and what they should deliver."""

    chosen: np.ndarray
    target_kw: float
    predicted_kw: float
    predicted_rebound_kw: float
    cost_eur: float
    shortfall_kw: float
    n_offers: int
    n_offers_solved: int
    solve_s: float

    @property
    def n_customers(self) -> int:
        return len(self.chosen)


def _screen(offers: Offers, target_kw: float, factor: float) -> np.ndarray:
    ratio = offers.cost_eur / np.maximum(offers.expected_kw, 1e-9)
    order = np.argsort(ratio, kind="stable")
    covered = np.cumsum(offers.expected_kw[order])
    n_keep = int(np.searchsorted(covered, factor * target_kw)) + 1
    keep_customers = np.unique(offers.customer[order[:n_keep]])
    return np.flatnonzero(np.isin(offers.customer, keep_customers))


def plan_event(
    offers: Offers,
    target_kw: float,
    rebound_headroom_kw: float = np.inf,
    shortfall_eur_per_kw: float = 50.0,
    rebound_eur_per_kw: float | None = None,
    screen: bool | None = None,
    screen_factor: float = 4.0,
) -> Plan:
    """Solve the least-cost offer selection for one event (see the module docstring)."""
    if not np.isfinite(target_kw) or target_kw < 0:
        msg = f"target_kw must be a finite number >= 0, got {target_kw!r}"
        raise ValueError(msg)
    t0 = time.perf_counter()
    useful = np.flatnonzero(offers.expected_kw > 1e-6)
    if screen is None:
        screen = len(useful) > 20_000
    if screen and len(useful):
        useful = useful[_screen(offers.take(useful), target_kw, screen_factor)]
    sub = offers.take(useful)
    k = len(sub)
    if k == 0 or target_kw <= 0:
        return Plan(np.zeros(0, int), target_kw, 0.0, 0.0, 0.0, target_kw, len(offers), 0, 0.0)

    m_r = shortfall_eur_per_kw if rebound_eur_per_kw is None else rebound_eur_per_kw
    cust, inv = np.unique(sub.customer, return_inverse=True)
    n_var = k + 2
    rows = np.r_[np.zeros(k, int), np.ones(k, int), 2 + inv, 0, 1]
    cols = np.r_[np.arange(k), np.arange(k), np.arange(k), k, k + 1]
    vals = np.r_[sub.expected_kw, sub.rebound_kw, np.ones(k), 1.0, -1.0]
    a = sp.csc_matrix((vals, (rows, cols)), shape=(2 + len(cust), n_var))
    headroom = float(rebound_headroom_kw) if np.isfinite(rebound_headroom_kw) else highspy.kHighsInf
    inf = highspy.kHighsInf

    lp = highspy.HighsLp()
    lp.num_col_ = n_var
    lp.num_row_ = a.shape[0]
    lp.col_cost_ = np.r_[sub.cost_eur, shortfall_eur_per_kw, m_r]
    lp.col_lower_ = np.zeros(n_var)
    lp.col_upper_ = np.r_[np.ones(k), inf, inf]
    lp.row_lower_ = np.r_[target_kw, -inf, np.full(len(cust), -inf)]
    lp.row_upper_ = np.r_[inf, max(headroom, 0.0), np.ones(len(cust))]
    lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    lp.a_matrix_.start_ = a.indptr.astype(np.int32)
    lp.a_matrix_.index_ = a.indices.astype(np.int32)
    lp.a_matrix_.value_ = a.data
    h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    h.passModel(lp)
    h.run()
    status = h.getModelStatus()
    if status != highspy.HighsModelStatus.kOptimal:
        msg = (
            f"DR planning LP ended with status {h.modelStatusToString(status)} "
            f"({k} offers, target {target_kw:.1f} kW); check offer costs and expected kW are finite"
        )
        raise PlanningError(msg)
    x = np.asarray(h.getSolution().col_value)[:k]
    # One offer per customer: keep the largest x of each customer; the (at most two) fractional
    # customers are rounded to the nearest, so the plan neither systematically over- nor
    # under-shoots the target.
    picked = np.flatnonzero(x >= 0.5)
    best = {}
    for j in picked[np.argsort(-x[picked], kind="stable")]:
        best.setdefault(int(sub.customer[j]), int(j))
    chosen_local = np.array(sorted(best.values()), dtype=int)
    chosen = useful[chosen_local]
    predicted = float(offers.expected_kw[chosen].sum())
    return Plan(
        chosen=chosen,
        target_kw=float(target_kw),
        predicted_kw=predicted,
        predicted_rebound_kw=float(offers.rebound_kw[chosen].sum()),
        cost_eur=float(offers.cost_eur[chosen].sum()),
        shortfall_kw=max(float(target_kw) - predicted, 0.0),
        n_offers=len(offers),
        n_offers_solved=k,
        solve_s=time.perf_counter() - t0,
    )
