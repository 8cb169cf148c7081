"""IEEE 1547-2018 inverter functions against the standard's default curves, solved by hand."""

import numpy as np
import pytest

from gridsync.model.inverter import InverterConfig, inverter_output, volt_var_frac, volt_watt_frac


def test_volt_var_category_b_default_points():
    # Table 8, Category B: (0.92, +0.44), (0.98, 0), (1.02, 0), (1.08, -0.44), flat outside
    v = np.array([0.90, 0.92, 0.95, 1.00, 1.05, 1.08, 1.12])
    expected = np.array([0.44, 0.44, 0.22, 0.0, -0.22, -0.44, -0.44])
    np.testing.assert_allclose(volt_var_frac(v, "B"), expected, atol=1e-12)


def test_volt_var_category_a_has_no_deadband():
    np.testing.assert_allclose(volt_var_frac(np.array([0.95, 1.05]), "A"), [0.125, -0.125])


def test_volt_watt_default_curve():
    np.testing.assert_allclose(
        volt_watt_frac(np.array([1.05, 1.08, 1.10, 1.2])), [1, 0.6, 0.2, 0.2]
    )


def test_reactive_priority_cuts_active_power_inside_the_kva_circle():
    cfg = InverterConfig(mode="volt-var", category="B", kva_per_kwp=1.0, priority="reactive")
    p, q = inverter_output(cfg, np.array([10.0]), np.array([10.0]), np.array([1.08]))
    assert q[0] == pytest.approx(-4.4)
    assert p[0] == pytest.approx(np.sqrt(100 - 4.4**2))  # 8.98 kW


def test_active_priority_cuts_reactive_power():
    cfg = InverterConfig(mode="volt-var", kva_per_kwp=1.1, priority="active")
    p, q = inverter_output(cfg, np.array([10.0]), np.array([10.0]), np.array([1.08]))
    assert p[0] == pytest.approx(10.0)
    assert q[0] == pytest.approx(-np.sqrt(11.0**2 - 10.0**2))  # 4.58 < 0.44 * 11 = 4.84


def test_fixed_power_factor_holds_the_ratio_and_the_rating():
    cfg = InverterConfig(mode="fixed-pf", power_factor=0.9, kva_per_kwp=1.0)
    p, q = inverter_output(cfg, np.array([5.0, 10.0]), np.array([10.0, 10.0]), np.ones(2))
    assert q[0] == pytest.approx(-5.0 * np.tan(np.arccos(0.9)))
    assert p[1] == pytest.approx(9.0)  # S = 10 kVA at pf 0.9
    assert np.hypot(p[1], q[1]) == pytest.approx(10.0)


def test_volt_watt_limits_output_above_1_06():
    cfg = InverterConfig(mode="volt-watt", kva_per_kwp=1.0)
    p, q = inverter_output(cfg, np.array([9.0]), np.array([10.0]), np.array([1.09]))
    assert p[0] == pytest.approx(4.0)  # 0.4 of 10 kW rated at 1.09 p.u.
    assert q[0] == 0.0


def test_scenario_refuses_inverter_modes_on_the_three_phase_twin():
    from gridsync.model.scenario_config import ScenarioError, parse_scenario

    data = {"grid": {"phases": 3}, "fleet": {"pv": {"inverter": {"mode": "volt-var"}}}}
    with pytest.raises(ScenarioError, match="fleet.pv.inverter.mode"):
        parse_scenario(data)
    with pytest.raises(ScenarioError, match="kva_per_kwp"):
        parse_scenario({"fleet": {"pv": {"inverter": {"kva_per_kwp": -1}}}})
