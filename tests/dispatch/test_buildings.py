"""Buildings-only battery LP on hand-solved cases."""

from __future__ import annotations

import numpy as np
import pytest

from gridsync.dispatch.buildings import (
    BuildingsPlanner,
    buildings_horizon,
    plan_battery_schedule,
)
from gridsync.model.citylearn_battery import CityLearnBatteryParams

FLAT = {"power_efficiency_curve": ((0.0, 1.0), (1.0, 1.0)),
        "capacity_power_curve": ((0.0, 1.0), (1.0, 1.0)), "loss_coefficient": 0.0}


def test_lossless_arbitrage_charges_cheap_and_discharges_at_the_power_limit():
    bat = CityLearnBatteryParams(4.0, 2.0, **FLAT)
    s = plan_battery_schedule(np.array([0.1, 0.1, 0.5, 0.5]), np.array([0.0, 0.0, 3.0, 3.0]), bat)
    assert s.battery_kwh[0] == pytest.approx([2.0, 2.0, -2.0, -2.0], abs=1e-6)
    assert s.objective == pytest.approx(0.1 * 4 + 0.5 * (1 + 1), abs=1e-3)  # + tie-breakers


def test_carbon_is_priced_on_each_buildings_import_in_explicit_units():
    bat = CityLearnBatteryParams(0.0, 0.0)  # no flexibility: objective = emissions x price
    s = plan_battery_schedule(np.zeros(2), np.array([1.0, -1.0]), bat,
                              carbon_g_per_kwh=500.0, carbon_price_per_kg=0.1)
    assert s.objective == pytest.approx(1.0 * 0.5 * 0.1, rel=1e-4)


def test_per_building_carbon_makes_a_building_keep_its_own_surplus():
    # A (battery) exports 2 kWh then imports 2; B (no battery) mirrors it: the district sum is 0
    # in both hours, so only per-building carbon rewards storing A's surplus for A's deficit.
    bat = CityLearnBatteryParams(4.0, 2.0, **FLAT)
    planner = BuildingsPlanner([bat], 2, carbon_price_per_kg=1.0)
    horizon = buildings_horizon(np.array([[-2.0, 2.0]]), 0.0, carbon_g_per_kwh=400.0,
                                other_net_kwh=np.array([2.0, -2.0]))
    s = planner.plan(horizon)
    assert s.battery_kwh[0] == pytest.approx([2.0, -2.0], abs=1e-6)


def test_terminal_value_decides_what_is_left_at_the_end():
    bat = CityLearnBatteryParams(4.0, 2.0, **FLAT)
    planner = BuildingsPlanner([bat], 2)
    net = np.array([[-2.0, -2.0]])  # PV surplus, nothing to use it for inside the horizon
    kept = planner.plan(buildings_horizon(net, 0.2, terminal_value_per_kwh=0.1))
    assert kept.soc_kwh[0, -1] == pytest.approx(4.0)
    # warm re-solve with a negative value for stored energy: the battery stays empty
    empty = planner.plan(buildings_horizon(net, 0.2, terminal_value_per_kwh=-0.1))
    assert empty.soc_kwh[0, -1] == pytest.approx(0.0, abs=1e-9)


def test_district_cap_holds_grid_charging_below_the_cap():
    bat = CityLearnBatteryParams(4.0, 2.0, **FLAT)
    s = plan_battery_schedule(np.array([0.1, 0.5]), np.array([1.0, 2.0]), bat, peak_cap_kw=2.0)
    assert s.net_kwh[0, 0] <= 2.0 + 1e-6
    assert s.battery_kwh[0] == pytest.approx([1.0, -1.0], abs=1e-6)


def test_shape_errors_name_the_input():
    with pytest.raises(ValueError, match="peak_cap_kw"):
        buildings_horizon(np.zeros((1, 3)), 0.1, peak_cap_kw=np.zeros(2))


def test_two_point_net_values_storing_surplus_for_an_uncertain_deficit():
    # hour 1's net is 0 on average but -1 or +1: only the two-point import sees that the
    # stored kWh avoids 1 kWh of import half of the time
    bat = CityLearnBatteryParams(4.0, 2.0, **FLAT)
    horizon = buildings_horizon(np.array([[-1.0, 0.0]]), 0.0, carbon_g_per_kwh=1000.0,
                                net_spread_kwh=np.array([[0.0, 1.0]]))
    mean_only = BuildingsPlanner([bat], 2, carbon_price_per_kg=1.0).plan(horizon)
    two_point = BuildingsPlanner([bat], 2, carbon_price_per_kg=1.0, outcomes=2).plan(horizon)
    assert mean_only.battery_kwh[0, 0] == pytest.approx(0.0, abs=1e-6)
    assert two_point.battery_kwh[0, 0] == pytest.approx(1.0, abs=1e-6)
    assert two_point.objective == pytest.approx(0.0, abs=1e-3)  # 0.5 x 0 + 0.5 x (1 - 1)
