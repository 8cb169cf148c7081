"""A scenario on the user's own network: one twin step against pandapower.runpp of the same
net with the step's loads and PV written into it (load scaling, sgen Q, a load at the slack
bus, ZIP loads, a ward, an out-of-service line and a dead island)."""

from __future__ import annotations

import copy
import warnings

import numpy as np
import pandapower as pp
import pandapower.networks as pn
import pytest

from gridsync.dispatch.rules import UncontrolledController
from gridsync.model.scenario_config import load_scenario_config
from gridsync.sim.builder import build_scenario, default_scenario_path
from gridsync.sim.twin import SteppedTwin


@pytest.fixture(scope="module")
def byo(tmp_path_factory):
    net = pn.case33bw()
    net.load["scaling"] = 1.3
    net.load.loc[net.load.bus.between(1, 10), "const_z_p_percent"] = 50.0
    pp.create_load(net, 0, 0.2, 0.05)  # at the slack bus
    pp.create_sgen(net, 25, 0.4, 0.1, type="PV", scaling=0.8)
    pp.create_ward(net, 14, 0.05, 0.02, 0.0, 0.01)
    net.line.loc[net.line.index[20], "in_service"] = False  # buses 21..23 de-energised
    path = tmp_path_factory.mktemp("byo") / "case33_zoo.json"
    pp.to_json(net, str(path))
    base = load_scenario_config(default_scenario_path())
    zero = {k: getattr(base.fleet, k).model_copy(update={"count": 0}) for k in
            ("pv", "battery", "ev", "deferrable", "thermal")}  # fmt: skip
    cfg = base.model_copy(
        update={
            "network": base.network.model_copy(update={"feeder": str(path)}),
            "fleet": base.fleet.model_copy(update=zero),
            "time": base.time.model_copy(update={"days": 1, "history_days": 1}),
            "plant": base.plant.model_copy(update={"enabled": False}),
        }
    )
    return net, build_scenario(cfg)


def test_twin_step_matches_runpp_on_own_network(byo):
    net, sc = byo
    twin = SteppedTwin(sc, step=sc.start_step + 50)  # 12:30, PV producing
    ctrl = UncontrolledController()
    ctrl.reset(sc)
    step = twin.step
    rec = twin.advance(twin.observe(), ctrl.act(twin.observe()))
    # the same step written into pandapower: each load at nominal x its profile (pandapower
    # applies the scaling), the PV sgen at its available power with Q at its power factor
    ref = copy.deepcopy(net)
    # every load follows the default profile: its multipliers are read at bus 1 (no PV there)
    one = sc.feeder.bus_pos([1])[0]
    at_one = sc.feeder.load_bus_pos == one
    m_p = sc.base_load_kw[step][one] / sc.feeder.load_p_kw[at_one].sum()
    m_q = sc.base_load_kvar[step][one] / sc.feeder.load_q_kvar[at_one].sum()
    live = ref.load.in_service & ref.load.bus.isin(sc.feeder.bus_ids)
    ref.load.loc[live, "p_mw"] *= m_p
    ref.load.loc[live, "q_mvar"] *= m_q
    sg = ref.sgen.index[0]
    ratio = rec.pv_kw[0] / (ref.sgen.p_mw[sg] * ref.sgen.scaling[sg] * 1e3)
    assert ratio > 0.05, "the step should have PV"
    ref.sgen.loc[sg, ["p_mw", "q_mvar"]] = ref.sgen.loc[sg, ["p_mw", "q_mvar"]] * ratio
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pp.runpp(ref, numba=False, tolerance_mva=1e-10)
    energised = ref.res_bus.index[ref.res_bus.vm_pu.notna()]
    assert len(energised) < len(ref.bus)
    assert sorted(sc.feeder.bus_ids) == sorted(energised)
    assert np.allclose(rec.vm_pu, ref.res_bus.vm_pu.loc[sc.feeder.bus_ids], atol=1e-7)
    assert rec.feeder_kw == pytest.approx(ref.res_ext_grid.p_mw.iloc[0] * 1e3, abs=1e-3)
    assert rec.feeder_kvar == pytest.approx(ref.res_ext_grid.q_mvar.iloc[0] * 1e3, abs=1e-3)
    assert rec.losses_kw == pytest.approx(ref.res_line.pl_mw.sum() * 1e3, abs=1e-3)
