"""The shield's correction order against over-voltage: inverter Q, then the OLTC's tap, then
PV curtailment, then load actions, each stage logged with its reason, and only with the
actuators the controller dispatches."""

from __future__ import annotations

import dataclasses

import numpy as np

from gridsync.model.assets import PVFleet
from gridsync.safety.shield import SafetyShield
from gridsync.safety.voltage_support import STAGES
from gridsync.sim.controller import Setpoints, observe
from gridsync.sim.forecasts import StepEstimate
from gridsync.sim.scenario import Scenario
from gridsync.sim.telemetry import measure_interval
from tests.dispatch.conftest import battery, empty_fleet, steady_pv_scenario

OLTC = {"enabled": True, "control": "dispatch", "vm_lower_pu": 0.97, "vm_upper_pu": 1.01}


def trafo_feeder():
    """20 kV grid (1.03 p.u.) - 630 kVA OLTC transformer (+-2 x 2.5 %, HV side) - LV bus 1 -
    line (0.1 + j0.1 ohm) - bus 2, where the PV and the battery are."""
    import pandapower as pp

    from gridsync.model.network import Feeder

    net = pp.create_empty_network()
    hv = pp.create_bus(net, vn_kv=20.0, name="hv")
    b1 = pp.create_bus(net, vn_kv=0.4, name="lv1")
    b2 = pp.create_bus(net, vn_kv=0.4, name="lv2")
    pp.create_ext_grid(net, hv, vm_pu=1.03)
    pp.create_transformer_from_parameters(
        net, hv, b1, sn_mva=0.63, vn_hv_kv=20.0, vn_lv_kv=0.4, vkr_percent=1.1,
        vk_percent=6.0, pfe_kw=1.65, i0_percent=0.26, tap_side="hv", tap_neutral=0,
        tap_min=-2, tap_max=2, tap_step_percent=2.5, tap_pos=0, name="trafo",
    )  # fmt: skip
    pp.create_line_from_parameters(
        net, b1, b2, length_km=1.0, r_ohm_per_km=0.1, x_ohm_per_km=0.1, c_nf_per_km=0.0,
        max_i_ka=0.4, name="line",
    )  # fmt: skip
    pp.create_load(net, b2, p_mw=0.0, q_mvar=0.0)
    return Feeder(
        name="trafo",
        net=net,
        bus_ids=np.array([hv, b1, b2]),
        bus_names=np.array(["hv", "lv1", "lv2"]),
        vn_kv=np.array([20.0, 0.4, 0.4]),
        slack_pos=0,
        load_bus_pos=np.array([2]),
        load_profile=np.array([""], dtype=object),
        load_p_kw=np.zeros(1),
        load_q_kvar=np.zeros(1),
        bus_xy=np.full((3, 2), np.nan),
    )


def scenario(pv_kw: float, peak_kw: float) -> Scenario:
    fleet = dataclasses.replace(
        empty_fleet(),
        pv=PVFleet(np.array([2]), np.array([peak_kw]), np.zeros(1), np.zeros(1)),
        battery=battery(bus=2, capacity_kwh=100.0, power_kw=20.0, soc0=0.5),
    )
    return steady_pv_scenario(trafo_feeder(), fleet, pv_kw / peak_kw, 2, grid={"oltc": OLTC})


def project(s: Scenario, **voltage):
    sh = SafetyShield()
    sh.reset(s)
    f = s.fleet
    states = {
        "battery_energy_kwh": f.battery.capacity_kwh * 0.5,
        "ev_delivered_kwh": np.zeros(0),
        "deferrable_done_kwh": np.zeros(0),
        "thermal_temp_c": np.zeros(0),
    }
    obs = observe(s, 1, states, measure_interval(s, 0))
    est = StepEstimate(s.base_load_kw[1], s.base_load_kvar[1], s.pv_available_kw(1), 20.0)
    sp = dataclasses.replace(Setpoints.zeros(f), **voltage)
    before = sh.pf.solve(np.array([0.0, 0.0, -est.pv_available_kw[0]]), np.zeros(3))[0]
    out, decision = sh.project(obs, sp, est)
    return before, out, decision


def kinds(decision) -> set[str]:
    return {c.kind for c in decision.changes}


def in_stage_order(decision) -> bool:
    pos = [STAGES.index(st) for st, _ in decision.stages]
    return pos == sorted(pos)


def test_reactive_power_alone_clears_a_small_over_voltage():
    s = scenario(60.0, 75.0)  # 45 kvar of room beside 60 kW
    before, out, d = project(s, pv_kvar=np.zeros(1), tap_pos=0)
    assert before.vm_pu.max() > 1.05
    assert d.status == "corrected"
    assert {st for st, _ in d.stages} == {"reactive"}
    assert all(r == "voltage_high" for _, r in d.stages)
    assert kinds(d) == {"pv_kvar"}
    assert out.pv_kvar[0] < 0 and out.pv_curtail_kw[0] == 0.0 and out.tap_pos == 0
    assert d.vm_max_pu <= 1.05


def test_without_reactive_room_the_tap_comes_before_curtailment():
    s = scenario(75.0, 75.0)  # at its kVA rating: no Q beside full active power
    _, out, d = project(s, pv_kvar=np.zeros(1), tap_pos=0)
    assert [st for st, _ in d.stages][0] == "tap"
    assert in_stage_order(d)
    tap = next(c for c in d.changes if c.kind == "tap_pos")
    # tap on the HV side: a higher position lowers the LV voltage; one stage entry per step
    assert (tap.requested_kw, tap.reason) == (0, "voltage_high") and tap.applied_kw >= 1
    assert out.tap_pos == tap.applied_kw == [st for st, _ in d.stages].count("tap")
    assert out.pv_curtail_kw[0] == 0.0
    assert d.vm_max_pu <= 1.05


def test_with_no_q_room_and_the_tap_at_its_end_curtailment_follows_and_p_only_stays_p_only():
    s = scenario(200.0, 200.0)
    _, out, d = project(s, pv_kvar=np.zeros(1), tap_pos=2)  # tap already at its end
    used = [st for st, _ in d.stages]
    assert used[0] == "curtailment" and in_stage_order(d)
    assert out.tap_pos == 2 and out.pv_curtail_kw[0] > 0
    # a controller that dispatches neither Q nor the tap is corrected with active power only
    _, out_p, d_p = project(s)
    assert {st for st, _ in d_p.stages} <= {"curtailment", "load"} and in_stage_order(d_p)
    assert out_p.pv_kvar is None and out_p.tap_pos is None
    assert kinds(d_p) <= {"pv_curtail_kw", "battery_kw"}


def test_curtailment_comes_before_load_actions():
    s = scenario(180.0, 180.0)
    _, out, d = project(s)
    assert d.stages and d.stages[0][0] == "curtailment"
    assert in_stage_order(d)
