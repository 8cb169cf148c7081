"""The perfect-foresight bound: hand-solved LPs with the end-state valuation, and the bound
below every controller's total cost including penalties on the real feeder."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from gridsync.dispatch.mpc import MPCConfig, MPCController
from gridsync.dispatch.oracle import PerfectForesightBound
from gridsync.dispatch.rules import TouController, UncontrolledController
from gridsync.sim.kpi import compute_kpis
from gridsync.sim.simulator import simulate
from tests.dispatch.conftest import battery, empty_fleet, ev, tiny_scenario


def _battery_case(prices, valuation="mean_import_price"):
    fleet = dataclasses.replace(empty_fleet(), battery=battery(capacity_kwh=10, soc0=0.5))
    s = tiny_scenario(fleet, [*prices, 0.1, 0.1, 0.1, 0.1], n_steps=len(prices))
    data = {**s.config.model_dump(), "accounting": {"end_valuation": valuation}}
    return dataclasses.replace(s, config=type(s.config).model_validate(data))


@pytest.mark.parametrize(
    ("prices", "valuation", "expected"),
    [
        # buy 10 kWh at 0.1 twice, serve the 5 kW load from the battery at 0.4; end at 5 kWh
        ([0.1, 0.4, 0.1, 0.4], "mean_import_price", 0.1 * 10 + 0.1 * 10),
        # mean price 0.175 > 0.1: end full (10 kWh), credited 0.175 * (10 - 5)
        ([0.1, 0.4, 0.1, 0.1], "mean_import_price", 0.1 * 10 + 0.1 * 10 + 0.1 * 5 - 0.875),
        # start level: no credit, the battery only has to end at its 5 kWh
        ([0.1, 0.4, 0.1, 0.1], "start_level", 0.1 * 10 + 0.1 * 5 + 0.1 * 5),
    ],
)
def test_bound_equals_the_hand_optimum_with_the_end_valuation(prices, valuation, expected):
    s = _battery_case(prices, valuation)
    ctrl = PerfectForesightBound(MPCConfig(network=False))
    res = simulate(s, ctrl)
    assert ctrl.bound_eur == pytest.approx(expected, abs=1e-6)
    # played on the twin the same plan costs the bound plus the feeder's losses
    k = compute_kpis(res, s)
    assert ctrl.bound_eur <= k["total_cost_incl_penalties_eur"] + 1e-9
    assert k["total_cost_incl_penalties_eur"] == pytest.approx(expected, rel=0.05)


def test_bound_owes_a_crossing_ev_only_its_pro_rata_share():
    # plugged steps 1..7, window of 4 steps: owes 8 * (4 - 1) / (7 - 1) = 4 kWh inside it;
    # it gets exactly that at the cheapest steps (0.1 at steps 2 and 3, 2 kW each)
    fleet = dataclasses.replace(
        empty_fleet(), ev=ev(power_kw=2.0, arrival=1, departure=7, need_kwh=8.0)
    )
    s = tiny_scenario(fleet, [0.3, 0.3, 0.1, 0.1, 0.5, 0.5, 0.5, 0.5], n_steps=4)
    ctrl = PerfectForesightBound(MPCConfig(network=False))
    res = simulate(s, ctrl)
    assert res.ev_kw == pytest.approx([0, 0, 2, 2], abs=1e-6)
    # mean price 0.2 < 0.5 later: charging beyond the 4 kWh owed (credited at 0.2) never pays
    assert ctrl.bound_eur == pytest.approx(0.3 * 5 * 2 + 0.1 * 7 * 2, abs=1e-6)
    assert res.unmet_ev_kwh_per_session.sum() == pytest.approx(0.0, abs=1e-6)


@pytest.mark.slow
def test_bound_is_below_every_controller_on_the_real_feeder(scenario_1day):
    # the bound is for the nominal model: the twin runs the model as plant
    s = dataclasses.replace(scenario_1day, plant=None)
    bound_ctrl = PerfectForesightBound()
    played = compute_kpis(simulate(s, bound_ctrl), s)
    bound = bound_ctrl.bound_eur
    assert np.isfinite(bound)
    key = "total_cost_incl_penalties_eur"
    mpc = MPCController(config=MPCConfig(resolve_every=8))
    for ctrl in (UncontrolledController(), TouController(), mpc):
        k = compute_kpis(simulate(s, ctrl), s)
        assert bound <= k[key], ctrl.name
    # the plan played on the AC twin lands within 1 % of the LP's figure
    assert played[key] == pytest.approx(bound, rel=0.01)
    assert played["voltage_violation_bus_steps"] == 0
