"""Degradation-aware LP (Shi et al. 2018 cycle-depth segments, calendar bands), hand-solved."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from gridsync.dispatch.degradation import AgeingCosts
from gridsync.dispatch.formulation import Options, Weights, build_dispatch_lp
from gridsync.dispatch.mpc import MPCConfig, MPCController
from gridsync.sim.forecasts import PerfectForecaster
from gridsync.storage.ageing import AgeingState
from gridsync.storage.calibration import AgeingEconomics
from gridsync.storage.cells import NMC, graphite_potential_v
from tests.dispatch.conftest import battery, empty_fleet, ev, tiny_scenario
from tests.dispatch.test_mpc_cases import observe


def horizon(fleet, prices):
    s = tiny_scenario(fleet, prices)
    c = MPCController(
        PerfectForecaster(),
        MPCConfig(horizon_steps=len(prices), network=False, ev_deadline_margin_steps=0),
    )
    c.reset(s)
    hd = c.horizon(observe(s))
    hd.terminal = None  # stored energy at the end is worth the horizon's cheapest import price
    return hd


def solve(hd, costs):
    lp, lay = build_dispatch_lp(
        hd, Weights(carbon_price_eur_per_kg=0.0), opts=Options(ageing=costs)
    )
    sol = lp.solve()
    assert sol.ok
    return sol, lay


def nmc_costs(n=1, capacity_kwh=10.0):
    econ = AgeingEconomics(NMC, np.full(n, capacity_kwh), replacement_eur_per_kwh=300.0)
    return AgeingCosts(econ, AgeingState.fresh(n), segments=4, bands=4)


def test_segment_costs_increase_with_depth():
    seg = nmc_costs().depth_eur_per_kwh(np.array([2.5]))[0]
    assert np.all(np.diff(seg) > 0)


def test_cycles_only_the_segments_cheaper_than_the_spread():
    """Shi's threshold structure: with a price spread between the 2nd and 3rd segment's
    marginal cost the battery cycles exactly two of four segments (5 of 10 kWh)."""
    costs = nmc_costs()
    seg = costs.depth_eur_per_kwh(np.array([2.5]))[0]
    spread = 0.5 * (seg[1] + seg[2])
    # holding a kWh for the two hours between buying and selling costs less than the margins
    hold = 2 * costs.band_eur_per_kwh_h(np.array([0.0]), np.array([10.0])).max()
    assert hold < min(spread - seg[1], seg[2] - spread)
    fleet = dataclasses.replace(empty_fleet(), battery=battery(eta=1.0, soc0=0.0, power_kw=5.0))
    sol, lay = solve(horizon(fleet, [0.1, 0.1, 0.1 + spread, 0.1 + spread]), costs)
    assert sol.x[lay.bat_d].sum() == pytest.approx(5.0, abs=1e-6)
    # without ageing costs (constant wear 0) it cycles the whole battery
    lp, lay0 = build_dispatch_lp(
        horizon(fleet, [0.1, 0.1, 0.1 + spread, 0.1 + spread]), Weights(carbon_price_eur_per_kg=0.0)
    )
    assert lp.solve().x[lay0.bat_d].sum() == pytest.approx(10.0, abs=1e-6)


def test_calendar_cost_charges_just_in_time():
    """Flat cheap price then one expensive hour: ageing at high SoC makes the LP charge in the
    last cheap hour rather than any earlier one (without it the timing is a tie)."""
    fleet = dataclasses.replace(empty_fleet(), battery=battery(eta=1.0, soc0=0.0, power_kw=5.0))
    sol, lay = solve(horizon(fleet, [0.1, 0.1, 0.1, 0.1, 0.6]), nmc_costs())
    c = sol.x[lay.bat_c]
    assert c[:3] == pytest.approx(0.0, abs=1e-9)
    assert c[3] > 1.0


def test_holding_a_full_battery_costs_exactly_the_calendar_rate():
    """A battery that cannot move (0 kW) held full for 4 h against the same battery held empty:
    the LP's objective differs by 4 h of the model's calendar cost between SoC 1 and 0, by hand:
    V T^(p-1) (k(1) - k(0)) / 24 per hour (V = 300 EUR/kWh x 10 kWh / 0.2, T = 3650 days,
    k the Kokam NMC calendar coefficient at 25 C); the bands' slopes add up to it exactly."""
    objective = []
    for soc0 in (0.0, 1.0):
        fleet = dataclasses.replace(empty_fleet(), battery=battery(power_kw=0.0, soc0=soc0))
        sol, _ = solve(horizon(fleet, [0.2] * 4), nmc_costs())
        objective.append(sol.objective)
    tn = 298.15 / 308.15
    k = (
        2.66e7
        * np.exp(-17.8 / tn)
        * np.exp(-5.21 * graphite_potential_v(np.array([0.0, 1.0])) / 0.123 / tn)
    )
    want = 4 * 15000.0 * 3650.0 ** (0.357 - 1) * (k[1] - k[0]) / 24
    # less the stored 10 kWh, worth the horizon's cheapest import price at its end
    assert objective[1] - objective[0] == pytest.approx(want - 10 * 0.2, rel=1e-6)


def test_v2g_is_priced_by_depth_instead_of_constant_wear():
    car = ev(power_kw=7.0, eta=1.0, arrival=0, departure=6, need_kwh=5.0, v2g_floor=10.0)
    car.v2g_degradation_eur_per_kwh = np.array([100.0])  # the constant wear would forbid V2G
    fleet = dataclasses.replace(empty_fleet(), ev=car)
    costs = dataclasses.replace(
        nmc_costs(n=0), ev=AgeingEconomics(NMC, np.array([60.0])), ev_state=AgeingState.fresh(1)
    )
    hd = horizon(fleet, [0.5, 0.1, 0.1, 0.1, 0.1, 0.1])
    lp, lay = build_dispatch_lp(
        hd, Weights(carbon_price_eur_per_kg=0.0), opts=Options(ageing=costs)
    )
    sol = lp.solve()
    # gives back 5 kWh (the 5 kW base load; export earns nothing) in the expensive hour despite
    # 100 EUR/kWh of constant wear, booked on the shallowest depth segments (10 kWh / 4 each)
    assert sol.x[lay.ev_d][0] == pytest.approx(5.0)
    seg = sol.x[lp.cols("age_v2g_seg")][:4]
    assert seg == pytest.approx([2.5, 2.5, 0.0, 0.0], abs=1e-9)


def test_ageing_costs_and_aggregation_are_refused_together():
    with pytest.raises(ValueError, match="ageing_costs = True with aggregate = True"):
        MPCConfig(ageing_costs=True, aggregate=True)
