"""CityLearn 1.3 battery physics against hand-solved steps of its documented rules."""

from __future__ import annotations

import math

import numpy as np
import pytest

from gridsync.model.citylearn_battery import (
    CityLearnBattery,
    CityLearnBatteryParams,
    charge_segments,
    discharge_segments,
    power_limit_rows,
)

# Default power-efficiency curve: 0.83 up to 30 % of nominal power, 0.9 at 70-80 %, 0.85 at 100 %.
EFF_AT_40 = math.sqrt(0.83 + 0.1 * 0.07 / 0.4)  # 2 kWh on a 5 kW battery, one way
EFF_AT_60 = math.sqrt(0.83 + 0.3 * 0.07 / 0.4)  # 3 kWh


def battery(**kw: float) -> CityLearnBattery:
    return CityLearnBattery(CityLearnBatteryParams(6.4, 5.0, loss_coefficient=kw.pop("loss", 0.0), **kw))


def test_charge_from_empty_pays_the_curve_efficiency_and_fades_capacity():
    b = battery()
    drawn = b.charge(2.0)
    assert drawn == pytest.approx(2.0)
    assert b.soc_kwh == pytest.approx(2.0 * EFF_AT_40)
    assert b.efficiency == pytest.approx(EFF_AT_40)
    # fade = coefficient * capacity_0 * |meter energy| / (2 * capacity)
    assert b.capacity_kwh == pytest.approx(6.4 - 1e-5 * 6.4 * 2.0 / (2 * 6.4))


def test_power_limit_follows_the_capacity_power_curve_and_capacity_caps_soc():
    b = battery(initial_soc_kwh=5.76)  # 90 % full: limit 5 kW * (1 - 0.8 * 0.1 / 0.2) = 3 kW
    assert b.max_power_kw() == pytest.approx(3.0)
    drawn = b.charge(5.0)  # clipped to 3 kWh, then the capacity caps the SoC
    assert b.soc_kwh == pytest.approx(6.4)
    assert drawn == pytest.approx((6.4 - 5.76) / EFF_AT_60)


def test_discharge_floors_at_zero_after_standby_loss():
    b = battery(initial_soc_kwh=1.0, loss=0.1)
    drawn = b.charge(-3.0)
    assert b.soc_kwh == 0.0
    assert drawn == pytest.approx(-0.9 * EFF_AT_60)  # SoC after loss 0.9 kWh, delivered x eff


def test_idle_hour_only_loses_standby_energy():
    b = battery(initial_soc_kwh=4.0, loss=0.01)
    assert b.charge(0.0) == pytest.approx(0.0)
    assert b.soc_kwh == pytest.approx(3.96)


def test_hulls_bound_the_curves_and_touch_them_at_the_ends():
    p = CityLearnBatteryParams(6.4, 5.0)
    ref = CityLearnBattery(p)
    meter = np.linspace(0.0, 5.0, 51)
    widths, eta = charge_segments(p)
    assert widths.sum() == pytest.approx(5.0)
    assert np.all(np.diff(eta) < 0)  # concave: the LP fills segments in order
    stored_hull = np.interp(meter, np.concatenate([[0], np.cumsum(widths)]),
                            np.concatenate([[0], np.cumsum(widths * eta)]))
    stored_true = np.array([e * ref.efficiency_at(e) for e in meter])
    assert np.all(stored_hull >= stored_true - 1e-3)  # up to the sampled chords
    assert stored_hull[-1] == pytest.approx(5.0 * math.sqrt(0.85))
    widths, rho = discharge_segments(p)
    assert np.all(np.diff(rho) > 0)
    removed_hull = np.interp(meter, np.concatenate([[0], np.cumsum(widths)]),
                             np.concatenate([[0], np.cumsum(widths * rho)]))
    removed_true = np.array([0.0] + [e / ref.efficiency_at(e) for e in meter[1:]])
    assert np.all(removed_hull <= removed_true + 1e-3)


def test_power_limit_rows_of_the_default_curve():
    a, b = power_limit_rows(CityLearnBatteryParams(6.4, 5.0))
    rows = sorted(zip(a.round(6), b.round(6), strict=True))
    assert rows == [(1.0, 0.0), (4.2, -4.0)]


def test_invalid_parameters_are_named():
    with pytest.raises(ValueError, match="initial_soc"):
        CityLearnBatteryParams(6.4, 5.0, initial_soc_kwh=7.0)
    with pytest.raises(ValueError, match="capacity_power_curve"):
        CityLearnBatteryParams(6.4, 5.0, capacity_power_curve=((0.0, 1.0), (0.0, 0.5)))
