"""The twin's fast power flow (PowerFlowModel) on networks with switches, dead islands, several
slacks, wards, motors, ZIP loads and scaling, against pandapower.runpp; and batch robustness."""

import copy
import warnings

import numpy as np
import pandapower as pp
import pandapower.networks as pn
import pytest

from gridsync.grid.powerflow import (
    PowerFlowInputError,
    PowerFlowNotConverged,
    build_powerflow_model,
)
from gridsync.grid.topology import deenergised_buses
from gridsync.model.network import feeder_from_net, fleet_sgen_mask


def _feeder(net):
    return feeder_from_net(net, "test", exclude_bus_ids=deenergised_buses(net))


def _snapshot(feeder):
    """The network's loads and PV sgens as consumption by feeder bus (what a scenario feeds),
    and the part pandapower makes voltage-dependent (all PQ elements at a ZIP-load bus)."""
    net = feeder.net
    p, q = np.zeros(feeder.n_bus), np.zeros(feeder.n_bus)
    np.add.at(p, feeder.load_bus_pos, feeder.load_p_kw)
    np.add.at(q, feeder.load_bus_pos, feeder.load_q_kvar)
    sg = net.sgen[fleet_sgen_mask(net) & net.sgen.bus.isin(feeder.bus_ids).to_numpy()]
    pos = feeder.bus_pos(sg.bus.to_numpy())
    np.add.at(p, pos, -sg.p_mw.to_numpy() * sg.scaling.to_numpy() * 1e3)
    np.add.at(q, pos, -sg.q_mvar.to_numpy() * sg.scaling.to_numpy() * 1e3)
    return p, q, p.copy(), q.copy()


def _reference(net):
    ref = copy.deepcopy(net)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pp.runpp(ref, tolerance_mva=1e-10, numba=False)
    return ref


def _zoo():
    net = pn.case33bw()  # its five tie lines are out of service
    net.load["const_z_p_percent"] = 40.0
    net.load["const_i_q_percent"] = 30.0
    net.load["scaling"] = 1.2
    pp.create_ward(net, 10, 0.03, 0.01, 0.02, -0.01)
    pp.create_xward(net, 20, 0.05, 0.02, 0.01, 0.01, 0.05, 0.1, 1.01)
    pp.create_motor(net, 15, 0.1, cos_phi=0.9, efficiency_percent=90, loading_percent=80)
    pp.create_sgen(net, 25, 0.2, 0.05, type="PV", scaling=0.7)
    pp.create_sgen(net, 28, 0.1, -0.03, type="wind")
    pp.create_shunt(net, 30, q_mvar=0.1, p_mw=0.01)
    pp.create_load(net, 0, 0.1, 0.05)  # at the slack bus: the feeder head delivers it
    net.line.loc[net.line.index[20], "in_service"] = False  # cuts buses 21..23 off
    return net


def test_fast_model_matches_pandapower_on_every_element():
    net = _zoo()
    ref = _reference(net)
    feeder = _feeder(net)
    dead = ref.res_bus.index[ref.res_bus.vm_pu.isna()]
    assert len(dead) and not np.isin(feeder.bus_ids, dead).any()
    model = build_powerflow_model(feeder)
    p, q, zp, zq = _snapshot(feeder)
    res, _ = model.solve(p, q, zip_kw=zp, zip_kvar=zq)
    assert np.allclose(res.vm_pu, ref.res_bus.vm_pu.loc[feeder.bus_ids], atol=1e-8)
    energised_lines = ref.res_line.loading_percent[net.line.in_service & ref.res_line.i_ka.notna()]
    loading = dict(zip(model.branch_names, res.branch_loading_pct, strict=True))
    for idx, value in energised_lines.items():
        if ref.line.loc[idx, "in_service"] and ref.res_line.loc[idx, "i_ka"] > 0:
            assert loading[f"line:{idx}"] == pytest.approx(value, abs=1e-5)
    # the slack delivers the load at its own bus too; shunt power is not a loss
    assert res.p_slack_kw == pytest.approx(ref.res_ext_grid.p_mw.sum() * 1e3, abs=1e-4)
    assert res.q_slack_kvar == pytest.approx(ref.res_ext_grid.q_mvar.sum() * 1e3, abs=1e-4)
    assert res.losses_kw == pytest.approx(ref.res_line.pl_mw.sum() * 1e3, abs=1e-4)
    batch = model.solve_batch(p[None], q[None], zip_kw=zp[None], zip_kvar=zq[None])
    assert np.allclose(batch.vm_pu[0], res.vm_pu, atol=1e-8)


def test_zip_loads_differ_from_constant_power():
    """The same snapshot taken as constant power is measurably off (the old silent error)."""
    feeder = _feeder(_zoo())
    model = build_powerflow_model(feeder)
    p, q, zp, zq = _snapshot(feeder)
    zip_res, _ = model.solve(p, q, zip_kw=zp, zip_kvar=zq)
    const_res, _ = model.solve(p, q)
    assert np.max(np.abs(zip_res.vm_pu - const_res.vm_pu)) > 1e-3


def test_two_external_grids_and_open_switches():
    net = pn.mv_oberrhein()
    net.switch.loc[net.switch.index[:6], "closed"] = False
    ref = _reference(net)
    feeder = _feeder(net)
    model = build_powerflow_model(feeder)
    assert len(model.refs) == 2
    p, q, _, _ = _snapshot(feeder)
    res, _ = model.solve(p, q)
    assert np.allclose(res.vm_pu, ref.res_bus.vm_pu.loc[feeder.bus_ids], atol=1e-8)
    assert res.p_slack_kw == pytest.approx(ref.res_ext_grid.p_mw.sum() * 1e3, abs=1e-3)
    pl = ref.res_line.pl_mw.sum() + ref.res_trafo.pl_mw.sum()
    assert res.losses_kw == pytest.approx(pl * 1e3, abs=1e-3)


def test_pv_generators_in_the_fast_model():
    net = pn.case33bw()
    pp.create_gen(net, 17, 0.3, vm_pu=1.0)
    ref = _reference(net)
    feeder = _feeder(net)
    model = build_powerflow_model(feeder)
    p, q, _, _ = _snapshot(feeder)
    res, _ = model.solve(p, q)
    assert np.allclose(res.vm_pu, ref.res_bus.vm_pu.loc[feeder.bus_ids], atol=1e-8)
    batch = model.solve_batch(np.stack([p, p]), np.stack([q, q]))
    assert np.allclose(batch.vm_pu[1], res.vm_pu, atol=1e-8)


def test_batch_input_errors_name_snapshot_and_bus():
    feeder = _feeder(pn.case33bw())
    model = build_powerflow_model(feeder)
    p, q, _, _ = _snapshot(feeder)
    batch = np.tile(p, (4, 1))
    batch[2, 7] = np.nan
    with pytest.raises(PowerFlowInputError, match=rf"snapshot 2, bus {feeder.bus_names[7]}"):
        model.solve_batch(batch, np.tile(q, (4, 1)))
    with pytest.raises(PowerFlowInputError, match="33"):
        model.solve(p[:-1], q[:-1])


def test_batch_reports_per_snapshot_convergence():
    feeder = _feeder(pn.case33bw())
    model = build_powerflow_model(feeder)
    p, q, _, _ = _snapshot(feeder)
    batch = np.stack([p, p * 50, p * 0.5])
    qb = np.stack([q, q * 50, q * 0.5])
    res = model.solve_batch(batch, qb, on_failure="report")
    assert res.converged.tolist() == [True, False, True]
    assert np.isnan(res.vm_pu[1]).all()
    single, _ = model.solve(p * 0.5, q * 0.5)
    assert np.allclose(res.vm_pu[2], single.vm_pu, atol=1e-8)
    with pytest.raises(PowerFlowNotConverged, match=r"1 of 3 snapshots \(snapshot\(s\) 1\)"):
        model.solve_batch(batch, qb)
