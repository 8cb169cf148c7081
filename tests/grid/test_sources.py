"""Bring your own network: pandapower.networks, MATPOWER and SimBench sources, solved by the
twin's power flow and checked against pandapower.runpp on the same net."""

import copy
import warnings

import numpy as np
import pandapower as pp
import pytest

from gridsync.grid.powerflow import build_powerflow_model
from gridsync.grid.sources import load_network


def _solve_nominal(feeder):
    """The feeder's loads at nominal power (sgens at rated power) by the twin's power flow."""
    p, q = np.zeros(feeder.n_bus), np.zeros(feeder.n_bus)
    np.add.at(p, feeder.load_bus_pos, feeder.load_p_kw)
    np.add.at(q, feeder.load_bus_pos, feeder.load_q_kvar)
    sg = feeder.net.sgen[feeder.net.sgen.in_service]
    np.add.at(p, feeder.bus_pos(sg.bus.to_numpy()), -(sg.p_mw * sg.scaling).to_numpy() * 1e3)
    np.add.at(q, feeder.bus_pos(sg.bus.to_numpy()), -(sg.q_mvar * sg.scaling).to_numpy() * 1e3)
    res, _ = build_powerflow_model(feeder).solve(p, q)
    return res


def _runpp(net):
    ref = copy.deepcopy(net)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pp.runpp(ref, numba=False, tolerance_mva=1e-10)
    return ref


def test_pandapower_network_by_name():
    src = load_network("pandapower:case33bw")
    assert src.feeder.n_bus == 33 and src.profiles is None
    ref = _runpp(src.feeder.net)
    res = _solve_nominal(src.feeder)
    assert np.allclose(res.vm_pu, ref.res_bus.vm_pu.to_numpy(), atol=1e-8)
    assert res.p_slack_kw == pytest.approx(ref.res_ext_grid.p_mw.iloc[0] * 1e3, abs=1e-3)


def test_pandapower_network_arguments():
    src = load_network("pandapower:create_cigre_network_mv?with_der='all'")
    assert len(src.feeder.net.sgen) == 13 and len(src.feeder.net.storage) == 2
    with pytest.raises(ValueError, match="unexpected keyword"):
        load_network("pandapower:case9?bogus=1")


def test_unknown_pandapower_network_is_named():
    with pytest.raises(ValueError, match="no network 'case_nope'"):
        load_network("pandapower:case_nope")


CASE3_M = """function mpc = case3
mpc.version = '2';
mpc.baseMVA = 100;
%% bus_i type Pd Qd Gs Bs area Vm Va baseKV zone Vmax Vmin
mpc.bus = [
	1	3	0	0	0	0	1	1.02	0	110	1	1.1	0.9;
	2	1	40	10	0	0	1	1	0	110	1	1.1	0.9;
	3	2	30	5	0	5	1	1	0	110	1	1.1	0.9;
];
%% bus Pg Qg Qmax Qmin Vg mBase status Pmax Pmin
mpc.gen = [
	1	0	0	300	-300	1.02	100	1	250	10;
	3	20	0	300	-300	1.01	100	1	250	10;
];
%% fbus tbus r x b rateA rateB rateC ratio angle status angmin angmax
mpc.branch = [
	1	2	0.01	0.05	0.02	100	100	100	0	0	1	-360	360;
	2	3	0.02	0.08	0.02	100	100	100	0	0	1	-360	360;
	1	3	0.01	0.06	0.02	100	100	100	0	0	1	-360	360;
];
"""


def test_matpower_case_file(tmp_path):
    path = tmp_path / "case3.m"
    path.write_text(CASE3_M)
    src = load_network(str(path))
    assert src.feeder.n_bus == 3
    ref = _runpp(src.feeder.net)
    # the setpoints of the slack and the PV bus hold
    assert ref.res_bus.vm_pu.tolist()[0] == pytest.approx(1.02)
    assert ref.res_bus.vm_pu.tolist()[2] == pytest.approx(1.01)
    res = _solve_nominal(src.feeder)
    assert np.allclose(res.vm_pu, ref.res_bus.vm_pu.to_numpy(), atol=1e-8)
    assert res.p_slack_kw == pytest.approx(ref.res_ext_grid.p_mw.iloc[0] * 1e3, abs=1e-3)


def test_simbench_code_brings_its_profiles():
    src = load_network("simbench:1-LV-rural1--0-sw")
    assert src.feeder.n_bus == 15
    names = {f"{p}_pload" for p in src.feeder.load_profile}
    assert names <= set(src.profiles.columns)
    assert src.profiles.index[1] - src.profiles.index[0] == np.timedelta64(15, "m")
    ref = _runpp(src.feeder.net)
    res = _solve_nominal(src.feeder)
    assert np.allclose(res.vm_pu, ref.res_bus.vm_pu.loc[src.feeder.bus_ids], atol=1e-8)
