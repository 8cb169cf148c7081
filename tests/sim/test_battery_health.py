"""The simulator ages batteries, feeds the fade back and reports state of health."""

import dataclasses

import numpy as np
import pytest

from gridsync.dispatch.rules import UncontrolledController
from gridsync.sim.kpi import compute_kpis
from gridsync.sim.simulator import simulate
from gridsync.storage.cells import LFP, NMC
from gridsync.storage.health import BatteryAgeing, EVPackAgeing
from tests.dispatch.conftest import battery, empty_fleet, ev, tiny_scenario


def test_idle_battery_reports_calendar_fade_of_its_soc():
    """No PV and no load to self-consume for: the battery rests at 60 % for a day at 25 C,
    so it loses k_cal(25 C, 0.6) x 1 day^0.526 (closed form)."""
    fleet = dataclasses.replace(empty_fleet(), battery=battery(soc0=0.6))
    s = tiny_scenario(fleet, [0.2] * 24, base_kw_bus2=0.0)
    res = simulate(s, UncontrolledController())
    rep = res.extras["battery_health"]
    k = LFP.calendar_rate(np.array(298.15), np.array(0.6))
    assert rep.soh_frac[0] == pytest.approx(1 - k * 1.0**LFP.cal_exp, rel=1e-9)
    kpis = compute_kpis(res, s)
    assert kpis["battery_soh_min_pct"] == pytest.approx(100 * rep.soh_frac[0])
    assert kpis["battery_fade_alerts"] == 0
    # 10 kWh at 300 EUR/kWh is worth 15,000 EUR per unit of capacity until 80 %
    assert kpis["battery_ageing_value_eur"] == pytest.approx(15000.0 * k, rel=1e-9)
    assert kpis["battery_capacity_lost_pp"] == pytest.approx(100 * k, rel=1e-9)


def test_daily_fade_reaches_the_fleet():
    b = battery(capacity_kwh=10.0, soc0=0.95, eta=0.95)
    track = BatteryAgeing(b, LFP, dt_h=1.0, temp_c=45.0)
    out = [track.record(np.array([9.5])) for _ in range(24)]
    assert all(o is None for o in out[:-1])
    k = LFP.calendar_rate(np.array(318.15), np.array(0.95))
    assert out[-1].capacity_kwh[0] == pytest.approx(10.0 * (1 - k), rel=1e-9)
    assert out[-1].efficiency_charge[0] < 0.95


def test_parked_car_pack_fades_by_calendar_and_the_fade_reaches_later_sessions():
    """A car not plugged in on day one rests at the assumed 60 %: NMC calendar fade
    k_cal(25 C, 0.6) x 1 day^0.357, resistance 1 + 0.057 k_cal; its later session can take
    SoH x its headroom and its charger's losses grow with the resistance."""
    car = ev(power_kw=7.0, eta=0.9, arrival=30, departure=40, need_kwh=10.0, v2g_floor=5.0)
    track = EVPackAgeing(car, NMC, pack_kwh=60.0, dt_h=1.0)
    out = [track.record(step, np.zeros(1)) for step in range(24)]
    assert all(o is None for o in out[:-1])
    k = NMC.calendar_rate(np.array(298.15), np.array(0.6))
    soh = 1 - k
    aged = out[-1]
    assert aged.sessions.headroom_kwh[0] == pytest.approx(60.0 * soh, rel=1e-9)
    assert aged.sessions.v2g_floor_kwh[0] == pytest.approx(5.0 * soh, rel=1e-9)
    assert aged.efficiency[0] == pytest.approx(1 - 0.1 * (1 + 0.0570 * k), rel=1e-9)
    assert track.report().soh_frac[0] == pytest.approx(soh, rel=1e-9)
