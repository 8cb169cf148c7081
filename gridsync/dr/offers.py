"""Candidate DR offers for one event window: (customer, program, incentive level) with the
expected reduction, rebound and cost, vectorised over customers."""

from __future__ import annotations

import numpy as np

from gridsync.dr.config import Program
from gridsync.dr.planner import Offers
from gridsync.dr.response import CustomerTraits, shed_fraction


def make_offers(
    programs: list[Program],
    end_use_mask: np.ndarray,
    eligible: np.ndarray,
    flex_kw: np.ndarray,
    beliefs: CustomerTraits,
    recent_calls: np.ndarray,
    normal_price_eur_per_kwh: float,
    lead_h: float,
    dur_h: float,
    rebound_share: np.ndarray,
    rebound_h: float,
    participation_scale: np.ndarray | None = None,
) -> Offers:
    """Offers for one event window, vectorised over customers (one block per program/level).

    ``eligible`` (n, P) is enrolment minus customers at their weekly event cap; ``flex_kw``
    (n, 5) the expected sheddable power per end use. Programs whose notice or duration rules
    the window breaks get no offers. Expected cost = fixed payment per called customer +
    per-kWh incentive (rebate, or the program's per-kWh payment) on the expected reduction.
    ``participation_scale`` (n,) corrects each customer's modelled response rate by what the
    agent has observed of them (see ``DRAgent._learn``).
    """
    parts = []
    for j, p in enumerate(programs):
        if p.notice_h > lead_h + 1e-9 or not (
            p.min_duration_h - 1e-9 <= dur_h <= p.max_duration_h + 1e-9
        ):
            continue
        cust = np.flatnonzero(eligible[:, j])
        if len(cust) == 0:
            continue
        eu_kw = flex_kw[cust] * end_use_mask[j]
        base_kw = eu_kw.sum(axis=1)
        rb_kw = (eu_kw * rebound_share).sum(axis=1) * dur_h / rebound_h
        b = beliefs
        for level in p.incentive_levels():
            frac = shed_fraction(
                p.kind,
                level,
                normal_price_eur_per_kwh,
                b.elasticity[cust],
                b.opt_out[cust],
                b.fatigue[cust],
                recent_calls[cust],
            )
            if participation_scale is not None:
                frac = np.clip(frac * participation_scale[cust], 0.0, 1.0)
            expected = frac * base_kw
            if p.kind == "peak_time_rebate":
                per_kwh = level
            elif p.kind in ("direct_load_control", "emergency"):
                per_kwh = p.cost_eur_per_kwh
            else:
                per_kwh = 0.0
            cost = p.cost_eur_per_customer_event + per_kwh * expected * dur_h
            n = len(cust)
            parts.append((cust, np.full(n, j), np.full(n, level), expected, frac * rb_kw, cost))
    if not parts:
        z = np.zeros(0)
        return Offers(z.astype(int), z.astype(int), z, z, z, z)
    return Offers(*(np.concatenate(c) for c in zip(*parts, strict=True)))
