"""gridsync.grid.runpp against pandapower.runpp (the reference) on small networks with every
balanced element type, switches, out-of-service elements and islands."""

import copy
import warnings

import numpy as np
import pandapower as pp
import pandapower.networks as pn
import pytest

from gridsync.grid import runpp
from gridsync.grid.topology import UnsupportedElement, deenergised_buses

V_TOL = 1e-6
LOADING_TOL = 1e-4


def _both(net, **kw):
    ref, ours = copy.deepcopy(net), copy.deepcopy(net)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pp.runpp(ref, tolerance_mva=1e-10, numba=False, **kw)
    runpp(ours, tolerance_mva=1e-10, **kw)
    return ref, ours


def _assert_same(ref, ours):
    assert np.allclose(ours.res_bus.vm_pu, ref.res_bus.vm_pu, atol=V_TOL, equal_nan=True)
    assert np.allclose(ours.res_bus.va_degree, ref.res_bus.va_degree, atol=1e-4, equal_nan=True)
    assert np.allclose(ours.res_bus.p_mw, ref.res_bus.p_mw, atol=1e-6, equal_nan=True)
    assert np.allclose(ours.res_bus.q_mvar, ref.res_bus.q_mvar, atol=1e-6, equal_nan=True)
    for table, side in (("res_line", "from"), ("res_trafo", "hv"), ("res_trafo3w", "hv")):
        if len(ref[table]):
            cols = ("loading_percent", f"p_{side}_mw", f"q_{side}_mvar", "pl_mw", "ql_mvar")
            for col in cols + ("i_ka",) * (side == "from"):
                a, b = ref[table][col].to_numpy(), ours[table][col].to_numpy()
                tol = LOADING_TOL if col == "loading_percent" else 1e-6
                assert np.allclose(b, a, atol=tol, equal_nan=True), (table, col)
    for table in ("res_ext_grid", "res_gen", "res_ward", "res_xward", "res_shunt", "res_load"):
        if len(ref[table]):
            for col in ("p_mw", "q_mvar"):
                assert np.allclose(ours[table][col], ref[table][col], atol=1e-6, equal_nan=True), (
                    table,
                    col,
                )


def _zoo():
    """case33bw with one of every balanced element that lands on a bus."""
    net = pn.case33bw()
    net.load["const_z_p_percent"] = 40.0
    net.load["const_i_p_percent"] = 20.0
    net.load["const_z_q_percent"] = 20.0
    net.load["const_i_q_percent"] = 30.0
    net.load["scaling"] = 1.3
    pp.create_ward(net, 10, 0.03, 0.01, 0.02, -0.01)
    pp.create_xward(net, 20, 0.05, 0.02, 0.01, 0.01, 0.05, 0.1, 1.01)
    pp.create_motor(net, 15, 0.1, cos_phi=0.9, efficiency_percent=90, loading_percent=80)
    pp.create_sgen(net, 25, 0.2, 0.05, scaling=0.7)
    pp.create_shunt(net, 30, q_mvar=0.1, p_mw=0.01)
    pp.create_load(net, 0, 0.1, 0.05)  # at the slack bus
    pp.create_storage(net, 5, 0.1, 1.0, q_mvar=0.02)
    pp.create_gen(net, 17, 0.3, vm_pu=1.0, min_q_mvar=-0.05, max_q_mvar=0.05)
    return net


@pytest.mark.parametrize(
    "make",
    [
        pn.case9,
        pn.case33bw,  # out-of-service tie lines
        pn.create_cigre_network_lv,  # bus-bus switches, lines open at both ends
        lambda: pn.create_cigre_network_mv(with_der="all"),
        pn.example_multivoltage,  # trafo3w, impedance, xward, gen, shunt, switches
        pn.simple_four_bus_system,
    ],
    ids=["case9", "case33bw", "cigre_lv", "cigre_mv_der", "multivoltage", "four_bus"],
)
def test_networks_match_pandapower(make):
    _assert_same(*_both(make()))


def test_every_element_type_matches_pandapower():
    _assert_same(*_both(_zoo()))


def test_q_limits_match_pandapower():
    net = _zoo()
    ref, ours = _both(net, enforce_q_lims=True)
    # the generator is really held at its limit (else the test would not test the limits)
    assert ref.res_gen.q_mvar.iloc[0] == pytest.approx(0.05, abs=1e-9)
    _assert_same(ref, ours)


def test_dead_island_is_deenergised_and_own_slack_island_solved():
    net = pn.case33bw()
    net.line.loc[net.line.index[[5, 20]], "in_service"] = False
    dead = deenergised_buses(net)
    ref, ours = _both(net)
    assert set(dead) == set(ref.res_bus.index[ref.res_bus.vm_pu.isna()])
    assert len(dead) > 0
    _assert_same(ref, ours)
    pp.create_gen(net, int(dead[-1]), 0.1, vm_pu=1.0, slack=True)
    ref, ours = _both(net)
    assert ours.res_bus.vm_pu.loc[dead].notna().any()
    _assert_same(ref, ours)


def test_open_switches_and_two_external_grids():
    net = pn.mv_oberrhein()
    assert len(net.ext_grid) == 2
    net.switch.loc[net.switch.index[:10], "closed"] = False
    _assert_same(*_both(net))


def test_unsupported_element_is_named():
    net = pn.case9()
    pp.create_svc(net, 5, x_l_ohm=1, x_cvar_ohm=-10, set_vm_pu=1, thyristor_firing_angle_degree=90)
    with pytest.raises(UnsupportedElement, match=r"svc 0 .*static var compensator"):
        runpp(net)
    with pytest.raises(UnsupportedElement, match="distributed_slack"):
        runpp(pn.case9(), distributed_slack=True)


def test_divergence_raises_pandapowers_error():
    from pandapower.powerflow import LoadflowNotConverged

    net = pn.case33bw()
    net.load["p_mw"] *= 40
    with pytest.raises(LoadflowNotConverged):
        runpp(net, max_iteration=10)


@pytest.mark.parametrize(
    "options",
    [
        {"calculate_voltage_angles": False},
        {"trafo_model": "pi", "trafo_loading": "power"},
        {"voltage_depend_loads": False, "init": "dc"},
    ],
    ids=["no_angles", "pi_power", "const_power_dc"],
)
def test_runpp_options_match_pandapower(options):
    _assert_same(*_both(pn.example_multivoltage(), **options))


def test_init_results_warm_starts_from_previous_results():
    net = pn.example_multivoltage()
    runpp(net)
    ref, ours = _both(net, init="results")
    _assert_same(ref, ours)
