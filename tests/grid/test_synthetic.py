"""Replicated feeders: linear bus growth and a power flow that still matches pandapower."""

import copy
import warnings

import numpy as np

from gridsync.grid.powerflow import build_powerflow_model
from gridsync.grid.synthetic import replicate_feeder_net
from gridsync.model.network import feeder_from_net


def test_two_copies_match_pandapower(feeder):
    import pandapower as pp

    net = replicate_feeder_net(feeder.net, 2)
    big = feeder_from_net(net, "x2")
    assert big.n_bus == 2 * feeder.n_bus
    assert len(net.ext_grid) == 1
    ref = copy.deepcopy(net)
    ref.load["p_mw"] = ref.load.p_mw * 2.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pp.runpp(ref, numba=False, tolerance_mva=1e-10)
    p = np.zeros(big.n_bus)
    q = np.zeros(big.n_bus)
    np.add.at(p, big.bus_pos(ref.load.bus), ref.load.p_mw * 1e3)
    np.add.at(q, big.bus_pos(ref.load.bus), ref.load.q_mvar * 1e3)
    np.add.at(p, big.bus_pos(ref.sgen.bus), -ref.sgen.p_mw * 1e3)
    res, _ = build_powerflow_model(big).solve(p, q)
    assert np.allclose(res.vm_pu, ref.res_bus.vm_pu, rtol=0, atol=1e-8)
