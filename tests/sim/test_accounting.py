"""End-of-window accounting: pro-rata EV and appliance energy, battery and heat settlement,
checked against arithmetic done by hand; baselines do not over-charge cars."""

from types import SimpleNamespace

import numpy as np
import pytest

from gridsync.dispatch.rules import TouController, UncontrolledController
from gridsync.model.assets import DeferrableFleet, EVSessions, ThermalFleet
from gridsync.model.scenario_config import AccountingConfig, BatteryConfig, EVConfig
from gridsync.sim.accounting import (
    deferrable_owed_fraction,
    ev_owed_kwh,
    settle_end_state,
)
from gridsync.sim.kpi import compute_kpis
from gridsync.sim.simulator import simulate


def _sessions():
    # window [10, 14): leaves inside; crosses the end; arrives after; arrived before the start
    return EVSessions(
        charger=np.array([0, 1, 2, 3]),
        arrival_step=np.array([11, 12, 15, 8]),
        departure_step=np.array([13, 16, 20, 16]),
        energy_need_kwh=np.array([5.0, 8.0, 3.0, 12.0]),
        headroom_kwh=np.full(4, 30.0),
        v2g_floor_kwh=np.zeros(4),
    )


def test_ev_owed_is_pro_rata_to_plugged_time_inside_the_window():
    owed = ev_owed_kwh(_sessions(), 10, 14)
    # 5 (leaves inside); 8 * (14-12)/(16-12) = 4; 0 (after); 12 * (14-10)/(16-10) = 8
    assert owed == pytest.approx([5.0, 4.0, 0.0, 8.0])


def test_deferrable_job_open_at_the_end_owes_the_elapsed_share():
    d = DeferrableFleet(
        bus=np.zeros(3, int),
        power_kw=np.ones(3),
        energy_kwh=np.full(3, 2.0),
        window_start_h=np.array([18.0, 18.0, 8.0]),
        window_end_h=np.array([22.0, 20.0, 12.0]),
    )
    is_open, share = deferrable_owed_fraction(d, end_hour=20.0, window_h=48.0)
    assert is_open.tolist() == [True, False, False]  # [18, 20) closes exactly at the end
    assert share[0] == pytest.approx(2.0 / 4.0)
    # the run started at 19:00 inside the window: counted from the start, 1 h of 3
    _, share = deferrable_owed_fraction(d, end_hour=20.0, window_h=1.0)
    assert share[0] == pytest.approx(1.0 / 3.0)


def _fake_scenario(valuation: str):
    thermal = ThermalFleet(
        bus=np.zeros(2, int),
        max_power_kw=np.full(2, 3.0),
        cop=np.array([4.0, 2.0]),
        resistance_c_per_kw=np.full(2, 5.0),
        capacitance_kwh_per_c=np.array([2.0, 3.0]),
        comfort_min_c=np.full(2, 20.0),
        comfort_max_c=np.full(2, 24.0),
        initial_temp_c=np.array([21.0, 26.0]),
    )
    prices = np.r_[np.full(10, 9.0), [0.1, 0.3, 0.2, 0.2], np.full(6, 9.0)]
    return SimpleNamespace(
        fleet=SimpleNamespace(ev=SimpleNamespace(sessions=_sessions()), thermal=thermal),
        config=SimpleNamespace(accounting=AccountingConfig(end_valuation=valuation)),
        tariff=SimpleNamespace(import_eur_per_kwh=prices),
        hvac_mode=np.ones(20),
        start_step=10,
        end_step=14,
    )


def test_end_state_settlement_by_hand():
    battery_start, battery_end = np.array([5.0, 5.0]), np.array([4.0, 7.0])
    delivered = np.array([4.5, 5.0, 0.0, 6.0])
    temp_end = np.array([20.0, 25.0])
    end = settle_end_state(
        _fake_scenario("mean_import_price"),
        battery_start,
        battery_end,
        delivered,
        np.array([21.0, 26.0]),
        temp_end,
    )
    # mean import price over the window: (0.1 + 0.3 + 0.2 + 0.2) / 4 = 0.2 EUR/kWh
    assert end.battery_delta_kwh == pytest.approx(1.0)
    assert end.ev_unmet_kwh == pytest.approx([0.5, 0.0, 0.0, 2.0])
    assert end.ev_shortfall_kwh == pytest.approx(2.0)  # session 3 still plugged in
    assert end.ev_credit_kwh == pytest.approx(1.0)  # session 1: 5 delivered, owes 4
    # heating: building 0 fell 21 -> 20 (2 kWh/°C / COP 4 = 0.5 kWh); building 1 started at
    # 26, above its band, so its reference is 24 and 25 is no deficit while heating
    assert end.thermal_deficit_kwh == pytest.approx(0.5)
    # -0.2*1 (battery) - 0.2*1 (EV credit) + 0.2*(2 + 0.5) (EV shortfall, heat)
    assert end.adjustment_eur == pytest.approx(0.1)

    strict = settle_end_state(
        _fake_scenario("start_level"),
        battery_start,
        battery_end,
        delivered,
        np.array([21.0, 26.0]),
        temp_end,
    )
    # no credits; shortfalls at 1 EUR/kWh: battery 0 lost 1 kWh, EV 2 kWh, heat 0.5 kWh
    assert strict.battery_shortfall_kwh == pytest.approx(1.0)
    assert strict.adjustment_eur == pytest.approx(3.5)


def test_degradation_defaults_follow_the_pack_arithmetic():
    # 300 EUR/kWh / (6000 cycles x 2 x 0.8) per kWh each way; V2G: 2 x 150 / (2000 x 2 x 0.8)
    assert BatteryConfig().degradation_cost_eur_per_kwh == pytest.approx(0.03125)
    assert EVConfig().v2g_degradation_cost_eur_per_kwh == pytest.approx(0.09375)
    assert BatteryConfig(degradation_eur_per_kwh=0.01).degradation_cost_eur_per_kwh == 0.01


@pytest.fixture(scope="module")
def runs(scenario_1day):
    return {c.name: simulate(scenario_1day, c) for c in (UncontrolledController(), TouController())}


@pytest.mark.parametrize("name", ["uncontrolled", "tou"])
def test_baselines_stop_charging_at_the_need(runs, scenario_1day, name):
    s = scenario_1day
    res = runs[name]
    # energy into the cars is at most what they owe plus the credited surplus (capped at the
    # need); one step of over-charge per session (~7 %) would exceed it
    ev_energy_kwh = res.ev_kw.sum() * s.dt_h * s.fleet.ev.efficiency[0]
    owed = res.end_state.ev_owed_kwh
    delivered_max = owed.sum() + res.end_state.ev_credit_kwh
    assert ev_energy_kwh <= delivered_max + 1e-6


def test_total_cost_incl_penalties_adds_up(runs, scenario_1day):
    s = scenario_1day
    k = compute_kpis(runs["tou"], s)
    w = s.config.objective
    end = runs["tou"].end_state
    penalties = (
        w.unmet_ev_eur_per_kwh * (k["unmet_ev_kwh"] - end.ev_shortfall_kwh)
        + w.unmet_deferrable_eur_per_kwh * k["unmet_deferrable_kwh"]
        + w.comfort_eur_per_degree_hour * k["comfort_violation_degree_hours"]
    )
    assert k["penalty_cost_eur"] == pytest.approx(penalties)
    assert k["carbon_cost_eur"] == pytest.approx(w.carbon_price_eur_per_kg * k["emissions_kg"])
    assert k["total_cost_incl_penalties_eur"] == pytest.approx(
        k["total_cost_eur"] + k["carbon_cost_eur"] + penalties + end.adjustment_eur
    )
