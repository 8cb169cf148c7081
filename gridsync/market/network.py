"""Network-limit check of cleared trades on the digital twin.

Trades between neighbours that only re-label energy which flows anyway (a PV surplus bought by
the neighbour instead of the retailer) do not change the physics. Trades backed by flexibility
(a battery that charges or discharges because it traded) do. For each interval the twin solves
the AC power flow with and without the flexible trades; the market may not push a bus voltage
outside the band or a branch over its loading limit, and where the band is already violated
without the market it may not make that worse. The order contributing most to the worst
violation (by a finite-difference sensitivity on the twin) is removed and the interval re-
cleared, so prices re-form without it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gridsync.grid.powerflow import PowerFlowModel, PowerFlowResult
from gridsync.market.auction import ClearingResult, PricingRule, clear
from gridsync.market.orders import OrderBook

FLEX = 1
_TOL_PU = 1e-6
_TOL_PCT = 1e-4


@dataclass
class Limits:
    voltage_min_pu: float = 0.95
    voltage_max_pu: float = 1.05
    loading_max_pct: float = 100.0


@dataclass
class Rejection:
    interval: int
    participant: int
    energy_kwh: float
    reason: str


@dataclass
class Violation:
    kind: str  # "over-voltage", "under-voltage", "overload"
    where: int  # bus position or branch index
    value: float
    excess: float


def violations(
    res: PowerFlowResult, ref: PowerFlowResult | None, limits: Limits
) -> list[Violation]:
    """Limit breaches in ``res`` that are absent from, or worse than, those in ``ref``."""
    vmax = limits.voltage_max_pu if ref is None else np.maximum(limits.voltage_max_pu, ref.vm_pu)
    vmin = limits.voltage_min_pu if ref is None else np.minimum(limits.voltage_min_pu, ref.vm_pu)
    lmax = (
        limits.loading_max_pct
        if ref is None
        else np.maximum(limits.loading_max_pct, ref.branch_loading_pct)
    )
    out = []
    for kind, excess, value in (
        ("over-voltage", res.vm_pu - vmax - _TOL_PU, res.vm_pu),
        ("under-voltage", vmin - res.vm_pu - _TOL_PU, res.vm_pu),
        ("overload", res.branch_loading_pct - lmax - _TOL_PCT, res.branch_loading_pct),
    ):
        for k in np.flatnonzero(excess > 0):
            out.append(Violation(kind, int(k), float(value[k]), float(excess[k])))
    return out


def flex_delta_kw(
    book: OrderBook, result: ClearingResult, bus_of: np.ndarray, n_bus: int, dt_h: float
) -> np.ndarray:
    """Change in bus consumption (kW) caused by filled flexibility orders (buy = charge)."""
    flex = book.kind == FLEX
    delta = np.zeros(n_bus)
    kw = book.side[flex] * result.filled_kwh[flex] / dt_h
    np.add.at(delta, bus_of[book.participant[flex]], kw)
    return delta


def enforce_limits(
    pf: PowerFlowModel,
    book: OrderBook,
    p_ref_kw: np.ndarray,
    q_kvar: np.ndarray,
    bus_of: np.ndarray,
    dt_h: float,
    limits: Limits,
    rule: PricingRule = "uniform",
    max_rounds: int = 200,
) -> tuple[OrderBook, ClearingResult, list[Rejection]]:
    """Clear one interval's ``book`` so that its flexible trades respect the network.

    ``p_ref_kw``/``q_kvar`` are bus loads without the flexible trades. Returns the book actually
    cleared (rejected orders removed), its clearing and the rejections with their reasons.
    """
    result = clear(book, rule)
    if not np.any(result.filled_kwh[book.kind == FLEX] > 0):
        return book, result, []
    ref, v_ref = pf.solve(p_ref_kw, q_kvar)
    rejections: list[Rejection] = []
    for _ in range(max_rounds):
        delta = flex_delta_kw(book, result, bus_of, len(p_ref_kw), dt_h)
        res, _ = pf.solve(p_ref_kw + delta, q_kvar, v0=v_ref)
        bad = violations(res, ref, limits)
        if not bad:
            return book, result, rejections
        worst = max(bad, key=lambda v: v.excess)
        culprit = _worst_contributor(
            pf, book, result, p_ref_kw + delta, q_kvar, bus_of, dt_h, worst, res
        )
        label = pf.branch_names[worst.where] if worst.kind == "overload" else f"bus {worst.where}"
        unit = "%" if worst.kind == "overload" else " pu"
        rejections.append(
            Rejection(
                interval=int(book.interval[culprit]),
                participant=int(book.participant[culprit]),
                energy_kwh=float(book.energy_kwh[culprit]),
                reason=f"{worst.kind} at {label}: {worst.value:.4f}{unit}",
            )
        )
        book = book.subset(np.arange(len(book)) != culprit)
        result = clear(book, rule)
    msg = f"network check did not settle after {max_rounds} rejections"
    raise RuntimeError(msg)


def _worst_contributor(pf, book, result, p_kw, q_kvar, bus_of, dt_h, worst: Violation, base):
    """The filled flexible order whose removal relieves ``worst`` most (finite differences)."""
    flex = np.flatnonzero((book.kind == FLEX) & (result.filled_kwh > 0))
    buses = bus_of[book.participant[flex]]
    kw = book.side[flex] * result.filled_kwh[flex] / dt_h
    uniq = np.unique(buses)
    step_kw = 1.0
    p = np.tile(p_kw, (len(uniq), 1))
    p[np.arange(len(uniq)), uniq] += step_kw
    pert = pf.solve_batch(p, np.tile(q_kvar, (len(uniq), 1)))
    if worst.kind == "overload":
        sens = (
            pert.branch_loading_pct[:, worst.where] - base.branch_loading_pct[worst.where]
        ) / step_kw
    else:
        sens = (pert.vm_pu[:, worst.where] - base.vm_pu[worst.where]) / step_kw
        if worst.kind == "under-voltage":
            sens = -sens
    contribution = sens[np.searchsorted(uniq, buses)] * kw
    return int(flex[np.argmax(contribution)])
