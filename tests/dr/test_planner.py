"""The event-planning LP against hand-solved cases and its own unscreened solution."""

from __future__ import annotations

import numpy as np
import pytest

from gridsync.dr.planner import Offers, plan_event


def _offers(customer, expected, cost, rebound=None):
    n = len(customer)
    return Offers(
        customer=np.asarray(customer),
        program=np.zeros(n, int),
        level_eur_per_kwh=np.ones(n),
        expected_kw=np.asarray(expected, float),
        rebound_kw=np.zeros(n) if rebound is None else np.asarray(rebound, float),
        cost_eur=np.asarray(cost, float),
    )


def test_cheapest_per_kw_first_hand_solved():
    # Per-kW costs: a 1.0, b 0.5, c 2.0. Target 5 kW: b (4 kW) then a (2 kW, rounded up).
    o = _offers([0, 1, 2], [2.0, 4.0, 3.0], [2.0, 2.0, 6.0])
    p = plan_event(o, target_kw=5.0)
    assert sorted(p.chosen.tolist()) == [0, 1]
    assert p.predicted_kw == pytest.approx(6.0)
    assert p.shortfall_kw == 0.0


def test_one_offer_per_customer_picks_cheaper_level():
    # Customer 0 has two levels: 3 kW for 3 EUR or 4 kW for 8 EUR; customer 1: 2 kW for 2 EUR.
    o = _offers([0, 0, 1], [3.0, 4.0, 2.0], [3.0, 8.0, 2.0])
    p = plan_event(o, target_kw=5.0)
    assert sorted(p.chosen.tolist()) == [0, 2]
    assert len(np.unique(o.customer[p.chosen])) == p.n_customers


def test_rebound_headroom_changes_choice():
    # Cheap offer rebounds 3 kW, dear offer 0 kW; no headroom after the event forbids the cheap one.
    o = _offers([0, 1], [4.0, 4.0], [1.0, 3.0], rebound=[3.0, 0.0])
    assert plan_event(o, 4.0).chosen.tolist() == [0]
    assert plan_event(
        o, 4.0, rebound_headroom_kw=0.0, rebound_eur_per_kw=100.0
    ).chosen.tolist() == [1]


def test_shortfall_when_flexibility_is_missing():
    o = _offers([0, 1], [1.0, 1.5], [1.0, 1.0])
    p = plan_event(o, target_kw=10.0)
    assert p.shortfall_kw == pytest.approx(7.5)
    assert p.n_customers == 2


def test_too_expensive_offers_are_left_out():
    # 1 kW for 100 EUR is worse than paying the 50 EUR/kW shortfall penalty.
    o = _offers([0], [1.0], [100.0])
    assert plan_event(o, target_kw=1.0, shortfall_eur_per_kw=50.0).n_customers == 0


def test_screening_matches_full_lp():
    rng = np.random.default_rng(3)
    n, levels = 3000, 3
    e = rng.uniform(0, 3, n * levels)
    o = _offers(
        np.repeat(np.arange(n), levels), e, e * rng.uniform(0.2, 2, n * levels) + 0.3, 0.4 * e
    )
    full = plan_event(o, 300.0, rebound_headroom_kw=200.0, screen=False)
    fast = plan_event(o, 300.0, rebound_headroom_kw=200.0, screen=True)
    assert fast.n_offers_solved < full.n_offers_solved
    assert fast.cost_eur == pytest.approx(full.cost_eur, rel=1e-6)


def test_bad_target_names_field():
    with pytest.raises(ValueError, match="target_kw"):
        plan_event(_offers([0], [1.0], [1.0]), target_kw=float("nan"))
