"""Our power flow against pandapower's runpp on the bundled SimBench feeder."""

import copy
import warnings

import numpy as np
import pytest

from gridsync.grid.powerflow import PowerFlowNotConverged, build_powerflow_model


@pytest.fixture(scope="module")
def reference(feeder):
    """A heavily loaded snapshot solved by pandapower, and the same injections by bus."""
    import pandapower as pp

    net = copy.deepcopy(feeder.net)
    rng = np.random.default_rng(1)
    net.load["p_mw"] = net.load.p_mw * 3 * rng.uniform(0.5, 1.5, len(net.load))
    net.sgen["p_mw"] = net.sgen.p_mw * 0.7
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pp.runpp(net, numba=False, tolerance_mva=1e-10)
    p = np.zeros(feeder.n_bus)
    q = np.zeros(feeder.n_bus)
    np.add.at(p, feeder.bus_pos(net.load.bus), net.load.p_mw * 1e3)
    np.add.at(q, feeder.bus_pos(net.load.bus), net.load.q_mvar * 1e3)
    np.add.at(p, feeder.bus_pos(net.sgen.bus), -net.sgen.p_mw * 1e3)
    return net, p, q


@pytest.fixture(scope="module")
def model(feeder):
    return build_powerflow_model(feeder)


def test_newton_matches_pandapower(model, reference):
    net, p, q = reference
    res, _ = model.solve(p, q)
    assert np.allclose(res.vm_pu, net.res_bus.vm_pu, rtol=0, atol=1e-8)
    assert np.allclose(res.va_deg, net.res_bus.va_degree, rtol=0, atol=1e-6)
    loading = np.r_[net.res_line.loading_percent, net.res_trafo.loading_percent]
    assert np.allclose(res.branch_loading_pct, loading, rtol=0, atol=1e-5)
    assert res.p_slack_kw == pytest.approx(net.res_ext_grid.p_mw.iloc[0] * 1e3, abs=1e-4)
    assert res.q_slack_kvar == pytest.approx(net.res_ext_grid.q_mvar.iloc[0] * 1e3, abs=1e-4)


def test_power_balance_feeder_head_equals_loads_plus_losses(model, reference):
    net, p, q = reference
    res, _ = model.solve(p, q)
    branch_losses_kw = (net.res_line.pl_mw.sum() + net.res_trafo.pl_mw.sum()) * 1e3
    assert res.losses_kw == pytest.approx(branch_losses_kw, abs=1e-4)
    assert res.p_slack_kw == pytest.approx(p.sum() + branch_losses_kw, abs=1e-4)


def test_batch_fixed_point_matches_newton(model, reference):
    _, p, q = reference
    scale = np.linspace(0.2, 1.0, 5)[:, None]
    batch = model.solve_batch(p * scale, q * scale)
    for k in range(5):
        single, _ = model.solve(p * scale[k, 0], q * scale[k, 0])
        assert np.allclose(batch.vm_pu[k], single.vm_pu, rtol=0, atol=1e-8)
        assert batch.p_slack_kw[k] == pytest.approx(single.p_slack_kw, abs=1e-3)


def test_no_load_voltages_equal_slack_setpoint(model, feeder):
    res, _ = model.solve(np.zeros(feeder.n_bus), np.zeros(feeder.n_bus))
    vm_set = float(feeder.net.ext_grid.vm_pu.iloc[0])
    # cable charging lifts voltages by well under 0.1 %
    assert np.allclose(res.vm_pu, vm_set, atol=1e-3)


def test_impossible_load_reports_non_convergence(model, feeder):
    p = np.full(feeder.n_bus, 2e4)
    with pytest.raises(PowerFlowNotConverged, match="did not converge"):
        model.solve(p, np.zeros(feeder.n_bus), max_iter=8)


def test_batch_sparse_lu_path_matches_dense(feeder, reference, monkeypatch):
    import gridsync.grid.powerflow as pfmod

    _, p, q = reference
    dense = build_powerflow_model(feeder).solve_batch(p[None, :], q[None, :])
    monkeypatch.setattr(pfmod, "DENSE_ZBUS_MAX_BUSES", 0)
    sparse = build_powerflow_model(feeder).solve_batch(p[None, :], q[None, :])
    assert np.allclose(dense.vm_pu, sparse.vm_pu, rtol=0, atol=1e-10)
