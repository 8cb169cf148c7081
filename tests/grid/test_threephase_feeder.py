"""The scenario feeders run three-phase: conversion, phase allocation and the twin's KPIs."""

from __future__ import annotations

import numpy as np
import pytest

from gridsync.grid.powerflow import build_powerflow_model
from gridsync.grid.threephase.feeder import (
    THREE,
    ThreePhaseFeeder,
    allocate_phases,
    three_phase_network,
)
from gridsync.grid.threephase.solver import ThreePhaseSolver
from gridsync.model.network import load_feeder, resolve_data_path
from gridsync.model.scenario_config import ScenarioError


@pytest.fixture(scope="module")
def three_phase_day():
    from gridsync.sim.builder import load_scenario

    return load_scenario(days=1, history_days=7, phases=3)


@pytest.mark.parametrize(
    "path",
    [
        "bundled:feeders/simbench_lv_semiurb5.json",
        "bundled:feeders/kerber_extreme_dorfnetz.json",
        "pandapower:create_cigre_network_lv",  # three transformers, bus-bus switches
    ],
)
def test_balanced_loads_reproduce_the_balanced_flow(path):
    """Loads split equally over the phases: every phase voltage equals the positive-sequence
    solution (our balanced flow, itself equal to pandapower's runpp to 1e-8 p.u.); the
    residual current vanishes."""
    if path.startswith("pandapower:"):
        import warnings

        import pandapower.networks as pn

        from gridsync.model.network import feeder_from_net

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            feeder = feeder_from_net(getattr(pn, path.split(":")[1])(), path)
    else:
        feeder = load_feeder(resolve_data_path(path))
    net, bus_map, load_bus = three_phase_network(feeder)
    rng = np.random.default_rng(3)
    p = np.zeros(feeder.n_bus)
    p[feeder.customer_buses] = rng.uniform(0.0, 9.0, len(feeder.customer_buses))
    q = 0.3 * p
    balanced, _ = build_powerflow_model(feeder).solve(p, q)
    tp = ThreePhaseFeeder(net, ThreePhaseSolver(net), None, None, None, bus_map, load_bus, None)
    step = tp.solve(np.repeat(p[:, None] / 3, 3, axis=1), np.repeat(q[:, None] / 3, 3, axis=1))
    assert np.max(np.abs(step.vm_pu - balanced.vm_pu[:, None])) < 1e-4
    assert step.losses_kw == pytest.approx(balanced.losses_kw, rel=0.01)
    assert np.max(step.vuf_pct[np.isfinite(step.vuf_pct)]) < 1e-6
    assert np.max(step.neutral_current_a) < 1e-6


def test_single_phase_load_unbalances_its_phase():
    feeder = load_feeder(resolve_data_path("bundled:feeders/kerber_extreme_dorfnetz.json"))
    net, bus_map, load_bus = three_phase_network(feeder)
    tp = ThreePhaseFeeder(net, ThreePhaseSolver(net), None, None, None, bus_map, load_bus, None)
    uniform = np.zeros((feeder.n_bus, 3))
    uniform[feeder.customer_buses] = 1.0
    far = int(np.argmin(tp.solve(uniform, 0 * uniform).vm_pu[:, 0]))  # the weakest bus
    p = np.zeros((feeder.n_bus, 3))
    p[far, 1] = 11.0  # an 11 kW charger wired on phase b only
    step = tp.solve(p, np.zeros_like(p))
    v = step.vm_pu[far]
    assert v[1] < v[0] and v[1] < v[2]  # the loaded phase sags
    assert step.vuf_pct[far] > 0.1
    lines = net.branches.kind == "line"
    current_b = 11e3 / (v[1] * 230.94)
    assert np.max(step.neutral_current_a[lines]) == pytest.approx(current_b, rel=0.05)


def test_phase_allocation_is_seeded_and_follows_ratings(three_phase_day):
    sc = three_phase_day
    alloc = sc.three_phase.alloc
    again = allocate_phases(sc.feeder, sc.fleet, sc.config.seed + 1, 0.25, 4.6)
    assert np.array_equal(alloc.customer, again.customer)
    ev = sc.fleet.ev.max_power_kw
    assert np.all((alloc.assets["ev"] == THREE) == (ev > 4.6))
    assert set(np.unique(alloc.customer)) <= {0, 1, 2, THREE}
    assert 0.1 < np.mean(alloc.customer == THREE) < 0.4


def test_twin_runs_three_phase_and_reports_unbalance(three_phase_day):
    from gridsync.sim.kpi import compute_kpis
    from gridsync.sim.registry import make_controller
    from gridsync.sim.simulator import simulate
    from gridsync.sim.twin import SteppedTwin

    sc = three_phase_day
    twin = SteppedTwin(sc)
    ctrl = make_controller("uncontrolled")
    ctrl.reset(sc)
    for _ in range(4):
        obs = twin.observe()
        rec = twin.advance(obs, ctrl.act(obs))
        assert rec.vm_phase_pu.shape == (sc.feeder.n_bus, 3)
        worst = np.abs(rec.vm_phase_pu - 1).max(axis=1)
        assert np.allclose(np.abs(rec.vm_pu - 1), worst)
        # energy balance: feeder import = consumption of every bus and phase + losses >= 0
        assert rec.losses_kw > 0
        assert rec.feeder_kw == pytest.approx(rec.p_bus_kw.sum() + rec.losses_kw, abs=1e-6)
    res = simulate(sc, make_controller("uncontrolled"))
    k = compute_kpis(res, sc)
    assert 0 < k["max_vuf_pct"] < 5 and k["max_neutral_current_a"] > 0
    assert k["vuf_bus_steps_above_2pct"] == int((res.extras["vuf_pct"] > 2.0).sum())


def test_grid_phases_is_validated(tmp_path):
    from gridsync.sim.builder import load_scenario

    bad = tmp_path / "bad.toml"
    bad.write_text("[grid]\nphases = 2\n")
    with pytest.raises(ScenarioError, match="grid.phases"):
        load_scenario(bad)


def test_mpc_network_check_and_rows_are_per_phase(three_phase_day):
    """The MPC's AC plan check on a three-phase feeder: with every customer and asset on
    three phases it is the balanced check (every phase) and its finite-difference
    sensitivities are the balanced flow's exact ones (implicit function theorem on the Newton
    Jacobian); with the seeded phases it reports every phase of the unbalanced flow of the
    same plan, and a phase's row predicts that phase after a move of the plan."""
    from dataclasses import replace

    from gridsync.dispatch.formulation import flexible_buses
    from gridsync.dispatch.horizon import FleetState, horizon_from_scenario
    from gridsync.dispatch.network import NetworkLimits
    from gridsync.grid.threephase.feeder import PhaseAllocation
    from gridsync.sim.forecasts import PerfectForecaster

    s = three_phase_day
    fleet, tp = s.fleet, s.three_phase
    state = FleetState(
        battery_energy_kwh=fleet.battery.capacity_kwh * fleet.battery.soc_initial_frac,
        ev_delivered_kwh=np.zeros(len(fleet.ev.sessions)),
        deferrable_done_kwh=np.zeros(len(fleet.deferrable)),
        thermal_temp_c=fleet.thermal.initial_temp_c.astype(float),
    )
    step = s.start_step + 48
    hd = horizon_from_scenario(s, step, 8, state, PerfectForecaster().forecast(s, step, 8), True)
    flex = flexible_buses(fleet)
    z = np.full((hd.horizon, len(flex)), 4.0)
    bal_limits = NetworkLimits(s.powerflow(), flex, 0.9, 1.1, 100.0)
    balanced = bal_limits.check(hd, z)
    bal_sens = bal_limits.sensitivity(hd, z, balanced)
    all3 = PhaseAllocation(
        customer=np.full_like(tp.alloc.customer, THREE),
        assets={k: np.full_like(v, THREE) for k, v in tp.alloc.assets.items()},
    )
    sym = replace(tp, alloc=all3, base_share=np.full_like(tp.base_share, 1 / 3))
    sym_limits = NetworkLimits(s.powerflow(), flex, 0.9, 1.1, 100.0, three_phase=sym, fleet=fleet)
    res = sym_limits.check(hd, z)
    assert res.vm_pu.shape == (hd.horizon, 3 * s.feeder.n_bus)
    assert np.max(np.abs(res.vm_pu - np.repeat(balanced.vm_pu, 3, axis=1))) < 1e-4
    sens = sym_limits.sensitivity(hd, z, res)
    assert sens.at_step == bal_sens.at_step
    scale = np.abs(bal_sens.dv_dz).max()
    assert np.max(np.abs(sens.dv_dz - np.repeat(bal_sens.dv_dz, 3, axis=0))) < 1e-3 * scale

    limits = NetworkLimits(s.powerflow(), flex, 0.9, 1.1, 100.0, three_phase=tp, fleet=fleet)
    res = limits.check(hd, z)
    # the twin's own split: base load by the customers' phases, PV on its inverters' phases
    pv = hd.pv_available_kw[0]
    base = hd.inflexible_kw[0] + np.bincount(fleet.pv.bus, pv, s.feeder.n_bus)
    p = tp.add_assets(tp.split_estimate(base), fleet, {"pv": -pv})
    p[flex] += 4.0 * tp.asset_share(fleet)[flex]
    assert pv.sum() > 10.0  # midday: PV on its phases matters
    one = tp.solve(p, hd.base_kvar[0][:, None] * tp.base_share)
    assert np.allclose(res.vm_pu[0], one.vm_pu.ravel(), atol=1e-7)
    assert np.max(np.abs(res.vm_pu - 1)) > np.max(np.abs(balanced.vm_pu - 1))
    assert list(limits.point_names(s.feeder.bus_names)[3:6]) == [
        f"{s.feeder.bus_names[1]}.{ph}" for ph in "abc"
    ]
    # rows at the most stressed step predict every phase after moving one bus's plan by 3 kW
    sens = limits.sensitivity(hd, z, res)
    t = sens.at_step - hd.step0
    rows = limits.rows(
        res,
        z,
        sens,
        *(np.ones_like(a, bool) for a in (res.vm_pu, res.branch_loading_pct)),
        np.zeros_like(res.vm_pu),
        np.zeros_like(res.branch_loading_pct),
    )
    j = int(np.argmax(np.abs(sens.dv_dz).sum(axis=0)))
    moved = z.copy()
    moved[:, j] -= 3.0
    after = limits.check(hd, moved)
    at_t = rows.v_t == t
    pred = rows.v_offset[at_t] + rows.dv_dz[at_t] @ moved[t]
    change = np.abs(after.vm_pu[t, rows.v_bus[at_t]] - res.vm_pu[t, rows.v_bus[at_t]]).max()
    assert change > 1e-3
    assert np.max(np.abs(pred - after.vm_pu[t, rows.v_bus[at_t]])) < 0.02 * change


def test_all_single_phase_on_one_phase(three_phase_day):
    """single_phase_on = "b": every single-phase connection on phase b, the three-phase ones
    (and so the seeded draws behind them) unchanged."""
    sc = three_phase_day
    base = sc.three_phase.alloc
    worst = allocate_phases(sc.feeder, sc.fleet, sc.config.seed + 1, 0.25, 4.6, "b")
    single = base.customer != THREE
    assert np.array_equal(worst.customer == THREE, ~single)
    assert np.all(worst.customer[single] == 1)
    for kind, codes in base.assets.items():
        assert np.array_equal(worst.assets[kind] == THREE, codes == THREE)
        assert np.all(worst.assets[kind][codes != THREE] == 1)


def test_unbalanced_feeder_matches_pandapower_runpp_3ph():
    """Independent reference for the feeder conversion under unbalance: pandapower's own
    three-phase power flow on the weak Kerber feeder, given the same zero-sequence data
    (lines r0 = 3 r1, x0 = x1, c0 = c1; Dyn transformer with vk0 = vk and no zero-sequence
    magnetising branch; a stiff grid) and random per-phase loads (min |V| about 0.9 p.u.)."""
    import copy
    import warnings

    import pandapower as pp

    feeder = load_feeder(resolve_data_path("bundled:feeders/kerber_extreme_dorfnetz.json"))
    net = copy.deepcopy(feeder.net)
    net.load = net.load.iloc[0:0]
    net.line["r0_ohm_per_km"] = 3 * net.line.r_ohm_per_km
    net.line["x0_ohm_per_km"] = net.line.x_ohm_per_km
    net.line["c0_nf_per_km"] = net.line.c_nf_per_km
    net.trafo["vector_group"] = "Dyn"
    net.trafo["vk0_percent"] = net.trafo.vk_percent
    net.trafo["vkr0_percent"] = net.trafo.vkr_percent
    net.trafo["mag0_percent"] = 1e6
    net.trafo["mag0_rx"] = 0.0
    net.trafo["si0_hv_partial"] = 0.9
    net.ext_grid["s_sc_max_mva"] = 1e6
    net.ext_grid["rx_max"] = 0.1
    net.ext_grid["x0x_max"] = 1.0
    net.ext_grid["r0x0_max"] = 0.1
    rng = np.random.default_rng(5)
    cb = feeder.customer_buses
    p = np.zeros((feeder.n_bus, 3))
    p[cb] = rng.uniform(0, 6, (len(cb), 3)) * (rng.random((len(cb), 3)) < 0.5)
    q = 0.2 * p
    for b in cb:
        pp.create_asymmetric_load(net, feeder.bus_ids[b], *(p[b] / 1e3), *(q[b] / 1e3), type="wye")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pp.runpp_3ph(net, tolerance_mva=1e-10, max_iteration=100, numba=False)
    ref = net.res_bus_3ph[["vm_a_pu", "vm_b_pu", "vm_c_pu"]].to_numpy()
    tn, bus_map, load_bus = three_phase_network(feeder)
    tp = ThreePhaseFeeder(tn, ThreePhaseSolver(tn), None, None, None, bus_map, load_bus, None)
    ours = tp.solve(p, q).vm_pu[feeder.bus_pos(net.res_bus_3ph.index)]
    assert ref.min() < 0.9  # a heavily unbalanced, heavily loaded case
    assert np.max(np.abs(ours - ref)) < 1e-4


def test_phase_base_loads_add_up_to_the_balanced_base(three_phase_day):
    sc = three_phase_day
    tp = sc.three_phase
    steps = slice(sc.start_step, sc.end_step)
    assert np.allclose(tp.base_kw[steps].sum(axis=2), sc.base_load_kw[steps], atol=1e-9)
    t = sc.start_step + 50
    extra_kvar = sc.base_load_kvar[t] + 1.5  # anything beyond the customers: spread evenly
    p, q = tp.base_at(t, sc.base_load_kw[t], extra_kvar)
    assert np.allclose(p.sum(axis=1), sc.base_load_kw[t]) and np.allclose(q.sum(axis=1), extra_kvar)
    assert np.allclose(q - tp.base_kvar[t], (extra_kvar - tp.base_kvar[t].sum(axis=1))[:, None] / 3)


def test_unsupported_elements_are_named():
    import copy

    from gridsync.grid.threephase.feeder import ThreePhaseModelError
    from gridsync.model.network import feeder_from_net

    feeder = load_feeder(resolve_data_path("bundled:feeders/kerber_extreme_dorfnetz.json"))
    net = copy.deepcopy(feeder.net)
    net.load.loc[net.load.index[3], "const_z_p_percent"] = 50.0
    with pytest.raises(ThreePhaseModelError, match=repr(str(net.load.name.iloc[3]))):
        three_phase_network(feeder_from_net(net, "zip"))
