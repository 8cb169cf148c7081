"""The twin end to end on one day: energy balance, fleet determinism, setpoint validation."""

import numpy as np
import pytest

from gridsync.dispatch.rules import TouController, UncontrolledController
from gridsync.sim.builder import load_scenario
from gridsync.sim.controller import Setpoints
from gridsync.sim.kpi import compute_kpis
from gridsync.sim.simulator import SetpointError, simulate


@pytest.fixture(scope="module")
def runs(scenario_1day):
    return {c.name: simulate(scenario_1day, c) for c in (UncontrolledController(), TouController())}


def test_feeder_head_equals_sum_of_injections_plus_losses(runs):
    r = runs["uncontrolled"]
    net_load = r.base_load_kw + r.battery_kw + r.ev_kw + r.deferrable_kw + r.thermal_kw - r.pv_kw
    assert np.allclose(r.feeder_kw, net_load + r.losses_kw, atol=1e-6)
    assert np.all(r.losses_kw > 0)


def test_fleet_is_large_deterministic_and_on_customer_buses(scenario_1day):
    fleet = scenario_1day.fleet
    assert fleet.size >= 300
    again = load_scenario(days=1, history_days=7).fleet
    assert np.array_equal(fleet.ev.sessions.arrival_step, again.ev.sessions.arrival_step)
    assert np.allclose(fleet.battery.capacity_kwh, again.battery.capacity_kwh)
    customers = set(scenario_1day.feeder.customer_buses)
    assert set(fleet.thermal.bus) <= customers


def test_pv_follows_the_sun(scenario_1day):
    s = scenario_1day
    pv = s.pv_by_bus_kw(slice(s.start_step, s.end_step)).sum(axis=1)
    hours = s.window.hour
    assert pv[(hours < 4) | (hours > 22)].max() == 0.0
    assert pv[(hours >= 11) & (hours <= 14)].mean() > 0.3 * s.fleet.pv.peak_kw.sum()


def test_uncontrolled_meets_every_ev_that_can_be_met(runs):
    assert runs["uncontrolled"].unmet_ev_kwh_per_session.sum() == pytest.approx(0.0, abs=1e-6)


def test_tou_moves_ev_energy_out_of_the_peak_price(runs, scenario_1day):
    s = scenario_1day
    price = s.tariff.import_eur_per_kwh[s.start_step : s.end_step]
    peak = price == price.max()
    assert runs["tou"].ev_kw[peak].sum() < 0.5 * runs["uncontrolled"].ev_kw[peak].sum()


def test_kpis_are_consistent(runs, scenario_1day):
    k = compute_kpis(runs["uncontrolled"], scenario_1day)
    assert k["total_cost_eur"] == pytest.approx(
        k["energy_cost_eur"] + k["demand_charge_eur"] + k["degradation_cost_eur"]
    )
    assert k["peak_import_kw"] == pytest.approx(runs["uncontrolled"].feeder_kw.max())
    assert 0.9 < k["min_voltage_pu"] <= k["max_voltage_pu"] < 1.1


class BadController:
    name = "bad"

    def reset(self, scenario):
        self.fleet = scenario.fleet

    def act(self, obs):
        sp = Setpoints.zeros(self.fleet)
        sp.ev_kw = np.zeros(3)
        return sp


def test_wrong_setpoint_shape_is_named(scenario_1day):
    with pytest.raises(SetpointError, match=r"Setpoints.ev_kw has shape \(3,\)"):
        simulate(scenario_1day, BadController())


def test_finer_resolution_conserves_daily_energy(scenario_1day):
    fine = load_scenario(days=1, history_days=1, resolution_s=300)
    assert fine.dt_h == 300 / 3600
    coarse = scenario_1day
    e_fine = fine.base_load_kw[fine.start_step : fine.end_step].sum() * fine.dt_h
    e_coarse = coarse.base_load_kw[coarse.start_step : coarse.end_step].sum() * coarse.dt_h
    assert e_fine == pytest.approx(e_coarse, rel=0.01)
    res = simulate(fine, UncontrolledController())
    assert res.n_steps == 288
    assert res.pf_failed.sum() == 0
