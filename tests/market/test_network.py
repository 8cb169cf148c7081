"""Network check on the real SimBench feeder: flexible trades that break limits are rejected."""

from __future__ import annotations

import numpy as np

from gridsync.market.network import FLEX, Limits, enforce_limits, violations
from gridsync.market.orders import BUY, SELL, OrderBook

NET = 0


def _setup(scenario):
    pf = scenario.powerflow()
    t = scenario.start_step + 76  # 19:00, evening load
    p_ref = scenario.net_inflexible_kw(t)
    q = scenario.base_load_kvar[t]
    res, _ = pf.solve(p_ref, q)
    cust = scenario.feeder.customer_buses
    far = int(cust[np.argmin(res.vm_pu[cust])])
    near = int(cust[np.argmax(res.vm_pu[cust])])
    return pf, t, p_ref, q, far, near


def test_overloading_or_undervolting_charge_is_rejected_and_small_one_kept(scenario_1day):
    pf, t, p_ref, q, far, near = _setup(scenario_1day)
    dt = scenario_1day.dt_h
    bus_of = np.array([far, near, near])  # participants 0, 1 charge; 2 sells PV surplus
    book = OrderBook.build(
        participant=[0, 1, 2],
        side=[BUY, BUY, SELL],
        energy_kwh=[100.0, 1.0, 101.0],  # 400 kW at the far end, 4 kW near the transformer
        price_eur_per_kwh=[0.30, 0.25, 0.10],
        interval=[t] * 3,
        kind=[FLEX, FLEX, NET],
    )
    limits = Limits(**scenario_1day.config.limits.model_dump())
    kept, res, rejected = enforce_limits(pf, book, p_ref, q, bus_of, dt, limits)
    assert [r.participant for r in rejected] == [0]
    assert "under-voltage" in rejected[0].reason or "overload" in rejected[0].reason
    np.testing.assert_allclose(res.filled_kwh, [1.0, 1.0])  # re-cleared without the big bid
    # The delivered interval respects the limits on an independent AC solve.
    p = p_ref.copy()
    p[near] += 1.0 / dt
    after, _ = pf.solve(p, q)
    ref, _ = pf.solve(p_ref, q)
    assert violations(after, ref, limits) == []
    # ...while the rejected trade really would have broken them.
    p_bad = p.copy()
    p_bad[far] += 100.0 / dt
    bad, _ = pf.solve(p_bad, q)
    assert violations(bad, ref, limits)


def test_tight_loading_limit_rejects_by_overload(scenario_1day):
    pf, t, p_ref, q, far, near = _setup(scenario_1day)
    dt = scenario_1day.dt_h
    ref, _ = pf.solve(p_ref, q)
    limits = Limits(
        voltage_min_pu=0.5 + 1e-9,
        voltage_max_pu=1.49,
        loading_max_pct=float(ref.branch_loading_pct.max()) + 1.0,
    )
    book = OrderBook.build([0, 1], [BUY, SELL], [10.0, 10.0], [0.3, 0.1], [t, t], [FLEX, NET])
    _, res, rejected = enforce_limits(pf, book, p_ref, q, np.array([far, near]), dt, limits)
    assert len(rejected) == 1 and "overload" in rejected[0].reason
    assert res.traded_kwh.sum() == 0


def test_trades_that_only_relabel_energy_are_never_rejected(scenario_1day):
    pf, t, p_ref, q, far, near = _setup(scenario_1day)
    book = OrderBook.build([0, 1], [BUY, SELL], [500.0, 500.0], [0.3, 0.1], [t, t], [NET, NET])
    tight = Limits(loading_max_pct=1.0)
    _, res, rejected = enforce_limits(pf, book, p_ref, q, np.array([far, near]), 0.25, tight)
    assert rejected == [] and res.traded_kwh.sum() == 500.0
