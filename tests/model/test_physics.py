"""Asset physics against hand-computed cases."""

import numpy as np
import pytest

from gridsync.model import physics
from gridsync.model.assets import BatteryFleet, DeferrableFleet, EVFleet, EVSessions, ThermalFleet


def battery(n=1, **kw):
    base = dict(
        bus=np.zeros(n, int),
        capacity_kwh=np.full(n, 10.0),
        power_kw=np.full(n, 5.0),
        efficiency_charge=np.full(n, 0.9),
        efficiency_discharge=np.full(n, 0.8),
        soc_min_frac=np.full(n, 0.1),
        soc_max_frac=np.full(n, 0.9),
        soc_initial_frac=np.full(n, 0.5),
        degradation_eur_per_kwh=np.zeros(n),
    )
    base.update(kw)
    return BatteryFleet(**base)


def test_battery_charge_and_discharge_apply_efficiencies():
    b = battery(2)
    p, e = physics.battery_step(b, np.array([5.0, 5.0]), np.array([4.0, -4.0]), 0.5)
    assert p == pytest.approx([4.0, -4.0])
    # charging: 5 + 0.9 * 4 * 0.5 = 6.8 kWh; discharging: 5 - 4 * 0.5 / 0.8 = 2.5 kWh
    assert e == pytest.approx([6.8, 2.5])


def test_battery_power_cut_back_at_soc_limits():
    b = battery(2)
    p, e = physics.battery_step(b, np.array([8.5, 1.5]), np.array([5.0, -5.0]), 1.0)
    # room to 9 kWh is 0.5 kWh -> 0.5 / 0.9 kW; energy above 1 kWh is 0.5 kWh -> 0.5 * 0.8 kW
    assert p == pytest.approx([0.5 / 0.9, -0.4])
    assert e == pytest.approx([9.0, 1.0])


def test_battery_power_limit():
    p, _ = physics.battery_step(battery(), np.array([5.0]), np.array([50.0]), 0.25)
    assert p == pytest.approx([5.0])


def ev_fleet(v2g=False, floor=0.0):
    sessions = EVSessions(
        charger=np.array([0, 1]),
        arrival_step=np.array([0, 10]),
        departure_step=np.array([8, 20]),
        energy_need_kwh=np.array([10.0, 5.0]),
        headroom_kwh=np.array([12.0, 30.0]),
        v2g_floor_kwh=np.array([floor, floor]),
    )
    return EVFleet(
        bus=np.zeros(2, int),
        max_power_kw=np.array([7.0, 11.0]),
        efficiency=np.array([0.9, 0.9]),
        v2g=np.array([v2g, v2g]),
        sessions=sessions,
    )


def test_ev_charges_only_plugged_car_with_efficiency():
    f = ev_fleet()
    active = f.active_session(3)
    assert active.tolist() == [0, -1]
    p, delivered = physics.ev_step(f, np.zeros(2), active, np.array([7.0, 11.0]), 0.5)
    assert p == pytest.approx([7.0, 0.0])
    assert delivered == pytest.approx([7.0 * 0.9 * 0.5, 0.0])


def test_ev_stops_at_battery_headroom_and_refuses_v2g_without_permission():
    f = ev_fleet()
    p, d = physics.ev_step(f, np.array([11.0, 0.0]), f.active_session(0), np.array([7.0, 0.0]), 1.0)
    assert p[0] == pytest.approx(1.0 / 0.9)
    assert d[0] == pytest.approx(12.0)
    p, _ = physics.ev_step(f, np.array([5.0, 0.0]), f.active_session(0), np.array([-7.0, 0.0]), 1.0)
    assert p[0] == 0.0


def test_ev_v2g_discharge_limited_by_floor():
    f = ev_fleet(v2g=True, floor=2.0)
    p, d = physics.ev_step(f, np.array([0.0, 0.0]), f.active_session(0), np.array([-7.0, 0.0]), 1.0)
    # delivered may fall to -2 kWh; the grid receives 2 * 0.9 kWh over the hour
    assert p[0] == pytest.approx(-1.8)
    assert d[0] == pytest.approx(-2.0)


def thermal(n=1):
    return ThermalFleet(
        bus=np.zeros(n, int),
        max_power_kw=np.full(n, 3.0),
        cop=np.full(n, 3.0),
        resistance_c_per_kw=np.full(n, 5.0),
        capacitance_kwh_per_c=np.full(n, 4.0),
        comfort_min_c=np.full(n, 20.0),
        comfort_max_c=np.full(n, 24.0),
        initial_temp_c=np.full(n, 21.0),
    )


def test_thermal_step_matches_rc_solution():
    th = thermal()
    p, t = physics.thermal_step(th, np.array([21.0]), np.array([1.0]), 5.0, 2.0, 1.0)
    a = np.exp(-2.0 / 20.0)
    # steady state with Q = 3 kW heat: 5 + 5 * 3 = 20 C
    assert t == pytest.approx(a * 21.0 + (1 - a) * 20.0)
    assert p == pytest.approx([1.0])


def test_thermal_cooling_lowers_temperature_and_power_is_clipped():
    th = thermal()
    p, t = physics.thermal_step(th, np.array([24.0]), np.array([10.0]), 30.0, 0.25, -1.0)
    a = np.exp(-0.25 / 20.0)
    assert p == pytest.approx([3.0])
    assert t == pytest.approx(a * 24.0 + (1 - a) * (30.0 - 5.0 * 9.0))


def test_comfort_violation_degrees():
    th = thermal(3)
    assert physics.comfort_violation_c(th, np.array([19.0, 22.0, 25.5])) == pytest.approx(
        [1.0, 0.0, 1.5]
    )


def test_deferrable_runs_only_in_window_and_stops_when_done():
    d = DeferrableFleet(
        bus=np.zeros(2, int),
        power_kw=np.array([2.0, 2.0]),
        energy_kwh=np.array([1.0, 3.0]),
        window_start_h=np.array([8.0, 12.0]),
        window_end_h=np.array([12.0, 16.0]),
    )
    p, done = physics.deferrable_step(d, np.array([0.75, 0.0]), 9.0, np.array([2.0, 2.0]), 0.25)
    assert p == pytest.approx([1.0, 0.0])
    assert done == pytest.approx([1.0, 0.0])


def test_hvac_mode_follows_daily_mean_not_night_dips():
    hot_days = np.tile(np.r_[np.full(12, 19.0), np.full(12, 30.0)], 3)
    assert np.all(physics.hvac_mode(hot_days, 24)[24:] == -1.0)
    assert np.all(physics.hvac_mode(np.full(48, 5.0), 24) == 1.0)


def test_hvac_mode_is_known_at_the_start_of_the_step():
    """Step t's season mode depends only on temperatures before t (a device sets it from what
    it has measured), and the horizon's modes follow from past plus forecast temperatures."""
    temps = np.r_[np.full(24, 10.0), np.full(24, 30.0)]
    mode = physics.hvac_mode(temps, 24)
    changed = temps.copy()
    changed[30:] = -40.0
    assert np.array_equal(physics.hvac_mode(changed, 24)[:31], mode[:31])
    assert mode[24] == 1.0  # the 24 h before step 24 were all 10 degC: still heating
    future = physics.forecast_hvac_mode(temps[:24], temps[24:], 24)
    assert np.array_equal(future, mode[24:])
