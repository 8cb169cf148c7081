"""Volt-VAR steady state of one PV inverter on a two-bus LV feeder.

The solver runs over pandapower's power flow; the result is checked by hand: the inverter's
(V, Q) lies on the IEEE 1547 Category B curve and V solves the two-bus power flow
V1 = V0 - Z conj(S1 / V1) for the (P, Q) the inverter delivers.
"""

from types import SimpleNamespace

import numpy as np
import pandapower as pp
import pytest

from gridsync.model.inverter import VOLT_VAR_B, InverterConfig
from gridsync.sim.inverters import solve_with_inverters

V_SLACK_PU = 1.03
R_OHM, X_OHM = 0.642 * 0.4, 0.3 * 0.4
V_BASE_KV = 0.4


def _two_bus():
    net = pp.create_empty_network()
    b0 = pp.create_bus(net, vn_kv=V_BASE_KV)
    b1 = pp.create_bus(net, vn_kv=V_BASE_KV)
    pp.create_ext_grid(net, b0, vm_pu=V_SLACK_PU)
    pp.create_line_from_parameters(net, b0, b1, 0.4, 0.642, 0.3, 0.0, 0.5)
    load = pp.create_load(net, b1, p_mw=0.0, q_mvar=0.0)

    def solve(p_kw, q_kvar, _v0):
        net.load.loc[load, ["p_mw", "q_mvar"]] = [p_kw[1] / 1e3, q_kvar[1] / 1e3]
        pp.runpp(net, init="flat", tolerance_mva=1e-10, numba=False)
        return SimpleNamespace(vm_pu=net.res_bus.vm_pu.to_numpy()), None

    return solve


@pytest.mark.parametrize("cfg", [VOLT_VAR_B, InverterConfig(mode="volt-var", category="A")])
def test_volt_var_steady_state_is_on_the_curve_and_solves_the_power_flow(cfg):
    p_avail = np.array([25.0])
    ss = solve_with_inverters(
        _two_bus(),
        np.zeros(2),
        np.zeros(2),
        cfg,
        np.array([1]),
        np.array([30.0]),
        p_avail,
        None,
        np.ones(2),
        np.zeros(1),
        max_iter=40,
        tol_kvar=1e-6,
    )
    v1 = ss.result.vm_pu[1]
    # on the curve, by hand: the sloped segment above the deadband
    volts, q_frac = {"B": ((1.02, 1.08), (0.0, -0.44)), "A": ((1.00, 1.10), (0.0, -0.25))}[
        cfg.category
    ]
    assert volts[0] < v1 < volts[1]  # the equilibrium lies on the slope, not at a limit
    q_hand = 30.0 * (q_frac[0] + (q_frac[1] - q_frac[0]) * (v1 - volts[0]) / (volts[1] - volts[0]))
    assert ss.pv_kvar[0] == pytest.approx(q_hand, abs=1e-4)
    assert ss.pv_kw[0] == pytest.approx(min(25.0, np.sqrt(30.0**2 - q_hand**2)))
    # the two-bus power flow by hand: V1 = V0 - Z * conj(S_inj_consumed / V1), in volts
    z = complex(R_OHM, X_OHM)
    u0 = V_SLACK_PU * V_BASE_KV * 1e3 / np.sqrt(3)
    s_cons_phase = -(ss.pv_kw[0] + 1j * ss.pv_kvar[0]) * 1e3 / 3  # VA per phase, load convention
    u1 = u0
    for _ in range(100):
        u1 = u0 - z * np.conj(s_cons_phase / u1)
    assert abs(u1) / (V_BASE_KV * 1e3 / np.sqrt(3)) == pytest.approx(v1, abs=1e-6)
    # absorbing Q lowered the voltage below the unity-power-factor rise
    unity = solve_with_inverters(
        _two_bus(),
        np.zeros(2),
        np.zeros(2),
        InverterConfig(),
        np.array([1]),
        np.array([30.0]),
        p_avail,
        None,
        np.ones(2),
        np.zeros(1),
    )
    assert v1 < unity.result.vm_pu[1] - 1e-3


def test_few_damped_iterations_reach_the_curve():
    ss = solve_with_inverters(
        _two_bus(),
        np.zeros(2),
        np.zeros(2),
        VOLT_VAR_B,
        np.array([1]),
        np.array([30.0]),
        np.array([25.0]),
        None,
        np.ones(2),
        np.zeros(1),
    )
    assert ss.iterations < 15
    assert ss.mismatch_kvar <= 0.01
