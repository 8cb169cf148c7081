"""The per-step correction layer: plan setpoints re-balanced against the metered load and PV."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from gridsync.dispatch.mpc import MPCConfig, MPCController
from gridsync.dispatch.realtime import PlanTarget, deferrable_floor_kw, ev_floor_kw, rebalance
from gridsync.model import physics
from gridsync.model.assets import DeferrableFleet, PVFleet, ThermalFleet
from gridsync.sim.controller import Setpoints
from gridsync.sim.forecasts import ExogenousForecast, PerfectForecaster
from gridsync.sim.simulator import simulate
from tests.dispatch.conftest import battery, empty_fleet, ev, tiny_scenario
from tests.dispatch.test_mpc_cases import exact, observe

FLAT = [0.2] * 8


def setpoints(fleet, battery_kw=0.0, ev_kw=0.0) -> Setpoints:
    sp = Setpoints.zeros(fleet)
    sp.battery_kw = np.full(len(fleet.battery), battery_kw)
    sp.ev_kw = np.full(len(fleet.ev), ev_kw)
    return sp


def one_battery(soc0=0.5, power_kw=5.0, eta=1.0):
    fleet = dataclasses.replace(
        empty_fleet(), battery=battery(capacity_kwh=10.0, power_kw=power_kw, eta=eta, soc0=soc0)
    )
    # base load 5 kW at bus 2, 15-min steps
    return fleet, tiny_scenario(fleet, FLAT, base_kw_bus2=5.0, dt_h=0.25)


def test_load_above_forecast_is_discharged_from_the_battery():
    fleet, s = one_battery()
    obs = observe(s, battery_energy_kwh=np.array([5.0]))
    # the plan assumed 3 kW of inflexible load and 1 kW of charging: 4 kW at the feeder
    target = PlanTarget(feeder_kw=4.0, inflexible_kw=3.0, peak_kw=100.0)
    sp, corr = rebalance(fleet, obs, setpoints(fleet, 1.0), target, exact(s))
    assert corr.deviation_kw == pytest.approx(2.0)
    assert sp.battery_kw[0] == pytest.approx(1.0 - 2.0)
    assert corr.expected_feeder_kw == pytest.approx(4.0)


def test_load_below_forecast_charges_the_battery_and_half_gain_absorbs_half():
    fleet, s = one_battery()
    obs = observe(s, battery_energy_kwh=np.array([5.0]))
    target = PlanTarget(feeder_kw=8.0, inflexible_kw=8.0, peak_kw=100.0)  # 3 kW less load
    sp, _ = rebalance(fleet, obs, setpoints(fleet), target, exact(s))
    assert sp.battery_kw[0] == pytest.approx(3.0)
    sp, _ = rebalance(fleet, obs, setpoints(fleet), target, exact(s), track_gain=0.5)
    assert sp.battery_kw[0] == pytest.approx(1.5)


def test_correction_stops_at_the_power_rating_and_the_soc_window():
    fleet, s = one_battery(power_kw=5.0)
    target = PlanTarget(feeder_kw=0.0, inflexible_kw=-5.0, peak_kw=100.0)  # 10 kW more load
    full = observe(s, battery_energy_kwh=np.array([10.0]))
    sp, corr = rebalance(fleet, full, setpoints(fleet), target, exact(s))
    assert sp.battery_kw[0] == pytest.approx(-5.0)  # rating
    assert corr.expected_feeder_kw == pytest.approx(5.0)
    # 0.5 kWh left: at most 2 kW over a 15-min step
    low = observe(s, battery_energy_kwh=np.array([0.5]))
    sp, _ = rebalance(fleet, low, setpoints(fleet), target, exact(s))
    assert sp.battery_kw[0] == pytest.approx(-2.0)
    # a full battery cannot take a PV surplus
    surplus = PlanTarget(feeder_kw=0.0, inflexible_kw=9.0, peak_kw=100.0)
    sp, _ = rebalance(fleet, full, setpoints(fleet), surplus, exact(s))
    assert sp.battery_kw[0] == pytest.approx(0.0)


def test_without_tracking_only_import_above_the_peak_target_is_shaved():
    fleet, s = one_battery()
    obs = observe(s, battery_energy_kwh=np.array([5.0]))
    below = PlanTarget(feeder_kw=2.0, inflexible_kw=2.0, peak_kw=8.0)  # 5 kW actual -> 5 < 8
    sp, _ = rebalance(fleet, obs, setpoints(fleet), below, exact(s), track_gain=0.0)
    assert sp.battery_kw[0] == pytest.approx(0.0)
    above = PlanTarget(feeder_kw=2.0, inflexible_kw=2.0, peak_kw=3.5)  # 5 kW actual -> 1.5 over
    sp, _ = rebalance(fleet, obs, setpoints(fleet), above, exact(s), track_gain=0.0)
    assert sp.battery_kw[0] == pytest.approx(-1.5)
    # tracking a load drop never charges above the peak target
    drop = PlanTarget(feeder_kw=3.0, inflexible_kw=8.0, peak_kw=1.0)  # 3 kW less: 0 kW import
    sp, _ = rebalance(fleet, obs, setpoints(fleet), drop, exact(s))
    assert sp.battery_kw[0] == pytest.approx(1.0)


def test_ev_charging_is_slowed_for_the_peak_only_as_far_as_the_deadline_allows():
    # 7 kW charger, car leaves after 4 steps of 15 min and needs 5 kWh: charging at full power
    # for the 3 later steps gives 5.25 kWh, so this step could drop to 0; needing 6 kWh, the
    # floor is (6 - 5.25) / 0.25 = 3 kW.
    for need, floor in ((5.0, 0.0), (6.0, 3.0)):
        fleet = dataclasses.replace(empty_fleet(), ev=ev(power_kw=7.0, departure=4, need_kwh=need))
        s = tiny_scenario(fleet, FLAT, base_kw_bus2=5.0, dt_h=0.25)
        obs = observe(s)
        assert ev_floor_kw(fleet, obs, later_share=1.0)[0] == pytest.approx(floor)
        target = PlanTarget(feeder_kw=12.0, inflexible_kw=5.0, peak_kw=6.0)
        sp, corr = rebalance(
            fleet, obs, setpoints(fleet, ev_kw=7.0), target, exact(s), later_share=1.0
        )
        assert sp.ev_kw[0] == pytest.approx(max(floor, 1.0))
        assert corr.flex_delta_kw == pytest.approx(max(floor, 1.0) - 7.0)


class _Underforecast:
    """The truth, except that the load at bus 2 is forecast ``missing_kw`` too low."""

    def __init__(self, missing_kw: float) -> None:
        self.missing_kw = missing_kw

    def forecast(self, scenario, step, horizon) -> ExogenousForecast:
        fc = PerfectForecaster().forecast(scenario, step, horizon)
        load = fc.base_load_kw.copy()
        load[:, 2] -= self.missing_kw
        return dataclasses.replace(fc, base_load_kw=load)


def test_mpc_holds_its_planned_peak_between_re_plans_with_the_correction_layer():
    # Flat price, a demand charge: the plan keeps the import flat at the forecast 3 kW; the
    # actual 5 kW is covered from the battery only with the layer on, once the first interval
    # has shown the error (step 0 has no measurement before it, so it is left out).
    fleet = dataclasses.replace(
        empty_fleet(), battery=battery(capacity_kwh=20.0, power_kw=5.0, soc0=1.0)
    )
    s = tiny_scenario(
        fleet, [0.2] * 16, base_kw_bus2=5.0, dt_h=0.25, demand_eur_per_kw_month=300.0, n_steps=8
    )
    peaks = {}
    for on in (False, True):
        cfg = MPCConfig(horizon_steps=8, resolve_every=4, network=False, realtime=on)
        res = simulate(s, MPCController(_Underforecast(2.0), cfg))
        peaks[on] = float(res.feeder_kw[1:].max())
    assert peaks[False] > 0.5  # the forecast error reaches the feeder without the layer
    assert peaks[True] < peaks[False] - 0.5


def test_appliance_floor_leaves_room_to_finish_in_the_window():
    # 2 kW appliance, window 0-4 h, 15-min steps: 3.75 h left after this step hold 7.5 kWh
    for energy_kwh, floor, floor_half in ((2.0, 0.0, 0.0), (7.75, 1.0, 2.0), (8.0, 2.0, 2.0)):
        d = DeferrableFleet(
            bus=np.array([2]),
            power_kw=np.array([2.0]),
            energy_kwh=np.array([energy_kwh]),
            window_start_h=np.array([0.0]),
            window_end_h=np.array([4.0]),
        )
        fleet = dataclasses.replace(empty_fleet(), deferrable=d)
        obs = observe(tiny_scenario(fleet, FLAT, dt_h=0.25))
        assert deferrable_floor_kw(fleet, obs, later_share=1.0)[0] == pytest.approx(floor)
        # at half the rating later, 3.75 kWh fit after this step
        assert deferrable_floor_kw(fleet, obs, later_share=0.5)[0] == pytest.approx(floor_half)


class _NoPVForecast:
    """The truth, except that no PV is forecast."""

    def forecast(self, scenario, step, horizon) -> ExogenousForecast:
        fc = PerfectForecaster().forecast(scenario, step, horizon)
        pv = fc.pv_per_kwp.copy()
        pv[:] = 0.0
        return dataclasses.replace(fc, pv_per_kwp=pv)


def test_ac_check_of_the_executed_step_curtails_pv_the_plan_did_not_see():
    # 240 kW of PV at the end of the tiny feeder lifts its voltage above 1.05 p.u.; the plan
    # forecasts no PV and curtails nothing, so only the per-step AC check can prevent it, once
    # the first measured interval shows the PV (the AC check runs on that estimate).
    pv = PVFleet(np.array([2]), np.array([240.0]), np.zeros(1), np.zeros(1))
    fleet = dataclasses.replace(empty_fleet(), pv=pv)
    s = tiny_scenario(
        fleet, [0.2] * 8, base_kw_bus2=0.0, line_max_i_ka=1.0, pv_per_kwp=np.full(8, 1.0)
    )
    s = dataclasses.replace(s, n_steps=4)
    vmax, curtailed = {}, {}
    for on in (False, True):
        cfg = MPCConfig(horizon_steps=4, resolve_every=4, network=False, ac_correct=on)
        res = simulate(s, MPCController(_NoPVForecast(), cfg))
        vmax[on] = float(np.nanmax(res.vm_pu[1:]))
        curtailed[on] = float(res.curtailed_kw[1:].sum())
    assert vmax[False] > 1.05 and curtailed[False] == 0.0
    assert vmax[True] <= 1.05 and curtailed[True] > 0.0


def test_comfort_guard_cools_a_building_back_to_the_band_edge_and_balances_it():
    th = ThermalFleet(
        bus=np.array([2]),
        max_power_kw=np.array([5.0]),
        cop=np.array([3.0]),
        resistance_c_per_kw=np.array([5.0]),
        capacitance_kwh_per_c=np.array([2.0]),
        comfort_min_c=np.array([20.0]),
        comfort_max_c=np.array([24.0]),
        initial_temp_c=np.array([24.5]),
    )
    fleet = dataclasses.replace(
        empty_fleet(), thermal=th, battery=battery(capacity_kwh=10.0, power_kw=5.0, soc0=0.5)
    )
    s = tiny_scenario(fleet, FLAT, base_kw_bus2=0.0, dt_h=0.25)
    s = dataclasses.replace(s, outdoor_temp_c=np.full(8, 32.0), hvac_mode=-np.ones(8))
    obs = observe(s, battery_energy_kwh=np.array([5.0]))
    target = PlanTarget(feeder_kw=0.0, inflexible_kw=0.0, peak_kw=100.0)
    sp, _ = rebalance(fleet, obs, setpoints(fleet), target, exact(s), comfort_guard=False)
    assert sp.thermal_kw[0] == 0.0
    sp, corr = rebalance(fleet, obs, setpoints(fleet), target, exact(s), comfort_guard=True)
    p = sp.thermal_kw[0]
    assert 0.0 < p < 5.0
    # the RC step with this power ends exactly on the band's upper edge
    _, temp = physics.thermal_step(th, np.array([24.5]), np.array([p]), 32.0, 0.25, -1.0)
    assert temp[0] == pytest.approx(24.0)
    # and the battery covers the extra load, so the feeder import stays at the plan's
    assert sp.battery_kw[0] == pytest.approx(-p)
    assert corr.expected_feeder_kw == pytest.approx(0.0)
