"""The tie-break makes the MPC's plan unique: nearly identical states give nearly identical
plans, and the plan still has the hand-solved real cost."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from gridsync.dispatch.lp import LinearProgram
from gridsync.dispatch.mpc import MPCConfig, MPCController
from gridsync.dispatch.tiebreak import add_tie_break
from gridsync.model.assets import BatteryFleet
from gridsync.sim.forecasts import PerfectForecaster
from tests.dispatch.conftest import empty_fleet, tiny_scenario
from tests.dispatch.test_mpc_cases import TWO_PRICE, observe


def _twins(n: int = 2) -> BatteryFleet:
    """``n`` identical empty 10 kWh / 5 kW batteries on the same bus: exact substitutes."""
    one = np.ones(n)
    return BatteryFleet(
        bus=np.full(n, 2),
        capacity_kwh=one * 10.0,
        power_kw=one * 5.0,
        efficiency_charge=one * 0.9,
        efficiency_discharge=one * 0.9,
        soc_min_frac=one * 0.0,
        soc_max_frac=one * 1.0,
        soc_initial_frac=one * 0.0,
        degradation_eur_per_kwh=one * 0.0,
    )


def _plan(s, energy_kwh, **cfg):
    config = MPCConfig(horizon_steps=len(s.index), network=False, ev_deadline_margin_steps=0, **cfg)
    c = MPCController(PerfectForecaster(), config)
    c.reset(s)
    return c.plan(observe(s, battery_energy_kwh=energy_kwh))


def test_nearly_identical_states_give_nearly_identical_plans():
    s = tiny_scenario(dataclasses.replace(empty_fleet(), battery=_twins()), TWO_PRICE)
    e0 = np.zeros(2)
    a = _plan(s, e0)
    for bump in (np.array([1e-6, 0.0]), np.array([0.0, 1e-6]), np.full(2, 1e-6)):
        b = _plan(s, e0 + bump)
        assert a.status == b.status == "optimal"
        # a state 1 mWh apart moves no battery's power by more than what that energy allows
        assert np.abs(b.battery_kw - a.battery_kw).max() < 1e-4


def test_the_plan_keeps_the_hand_solved_real_cost():
    """Two empty 10 kWh batteries fill at 0.1 EUR/kWh (20/0.9 kWh bought) and return
    0.9 x 10 kWh each at 0.3, below the 5 kW base load at bus 2 (as in the one-battery case)."""
    s = tiny_scenario(dataclasses.replace(empty_fleet(), battery=_twins()), TWO_PRICE)
    plan = _plan(s, np.zeros(2))
    p = plan.battery_kw.sum(axis=1)
    assert p[:4].sum() == pytest.approx(20 / 0.9, abs=1e-6)
    assert -p[4:].sum() == pytest.approx(18.0, abs=1e-6)
    expected = 0.1 * (20 + 20 / 0.9) + 0.3 * (20 - 18)
    assert plan.objective_eur == pytest.approx(expected, abs=1e-6)
    plain = _plan(s, np.zeros(2), tie_break_eur_per_kwh=0.0)
    assert plain.objective_eur == pytest.approx(expected, abs=1e-6)


def test_tie_break_prices_each_pair_differently_and_refuses_real_prices():
    lp = LinearProgram()

    class Lay:  # two assets x three steps of battery charge; nothing else
        H = 3
        bat_c = lp.add_cols("c", 6)
        bat_d = th_p = ev_c = ev_pair_sess = ev_t = np.zeros(0, int)
        dfr_p = dfr_j = dfr_t = pv_q = pv_i = pv_t = np.zeros(0, int)

    added = add_tie_break(lp, Lay, np.full(3, 0.25), 1e-4)
    assert len(np.unique(added)) == 6 and added.min() > 0
    assert lp.cost == pytest.approx(added)
    assert added.max() <= 2.7071 * 1e-4 * 0.25
    with pytest.raises(ValueError, match="tie_break_eur_per_kwh"):
        add_tie_break(lp, Lay, np.full(3, 0.25), 0.05)
