"""Network-aware clustered aggregation: per-bus results when every bus is its own cluster,
exact pooling of buses with identical sensitivities, per-asset limits after disaggregation."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from gridsync.dispatch.aggregate import solve_aggregated
from gridsync.dispatch.cluster import (
    cluster_buses,
    clustered_rows,
    make_clusters,
    solve_clustered,
)
from gridsync.dispatch.formulation import build_dispatch_lp, flexible_buses
from gridsync.dispatch.network import NetworkLimits, Sensitivity
from gridsync.grid.powerflow import build_powerflow_model
from tests.dispatch.conftest import battery, empty_fleet, tiny_feeder, tiny_scenario
from tests.dispatch.test_aggregate import W, horizon_of, mixed_horizon
from tests.dispatch.test_mpc_cases import TWO_PRICE


def limits_for(hd, v_min=0.9, v_max=1.1) -> NetworkLimits:
    pf = build_powerflow_model(tiny_feeder())
    return NetworkLimits(pf, flexible_buses(hd.fleet), v_min, v_max, 100.0, screen_voltage_pu=0.1)


def operating_point(nl, hd):
    z0 = np.zeros((hd.horizon, len(nl.flex_bus)))
    res = nl.check(hd, z0)
    return z0, res


def no_forcing(res):
    v, ld = np.zeros(res.vm_pu.shape), np.zeros(res.branch_loading_pct.shape)
    return v > 0, ld > 0, v, ld


def test_one_cluster_per_bus_reproduces_the_per_bus_aggregation():
    hd = mixed_horizon()  # batteries, EV, heat pumps on bus 2; PV, appliance on bus 1
    probe = limits_for(hd)
    z0, res = operating_point(probe, hd)
    # a lower limit 1e-3 p.u. below the operating point (no flexible load) binds
    nl = limits_for(hd, v_min=float(res.vm_pu.min()) - 1e-3)
    sens = nl.sensitivity(hd, z0, res)
    per_bus_rows = nl.rows(res, z0, sens, *no_forcing(res))
    cl = cluster_buses(sens, hd.fleet, n_clusters=2)
    assert list(cl.site_bus) == [1, 2] and list(cl.weight) == [1.0, 1.0]
    rows = clustered_rows(nl, res, z0, sens, cl)
    assert len(rows.v_t) == len(per_bus_rows.v_t)
    for env in (False, True):
        ref = solve_aggregated(hd, W, per_bus_rows, envelopes=env)
        got = solve_aggregated(hd, W, rows, envelopes=env, clusters=cl)
        assert ref.status == got.status == "optimal", (ref.message, got.message)
        assert got.virtual_objective_eur == pytest.approx(ref.virtual_objective_eur, abs=1e-6)
        assert got.objective_eur == pytest.approx(ref.objective_eur, abs=1e-6)
        assert got.plan.battery_charge_kw == pytest.approx(ref.plan.battery_charge_kw, abs=1e-6)
        assert got.plan.pv_curtail_kw == pytest.approx(ref.plan.pv_curtail_kw, abs=1e-6)
    # the network rows bind: without them the plan is cheaper
    free = solve_aggregated(hd, W)
    assert free.virtual_objective_eur < ref.virtual_objective_eur - 1e-3


def test_two_buses_with_identical_sensitivities_pool_exactly():
    # identical empty batteries on buses 1 and 2, cheap (0.1) then dear (0.3) hours, 5 kW of
    # base load at bus 2; the bus-2 voltage falls 1e-3 p.u. per kW of flexible load at either
    # bus and may fall 3e-3 p.u. at most: together they charge at most 3 kW.
    fleet = empty_fleet()
    one, two = battery(bus=1), battery(bus=2)
    both = dataclasses.replace(
        one,
        **{
            f.name: np.r_[getattr(one, f.name), getattr(two, f.name)]
            for f in dataclasses.fields(one)
        },
    )
    hd = horizon_of(tiny_scenario(dataclasses.replace(fleet, battery=both), TWO_PRICE))
    probe = limits_for(hd)
    z0, res = operating_point(probe, hd)
    vm2 = res.vm_pu[:, 2]
    assert np.ptp(vm2) < 1e-12  # the same operating point every hour
    nl = limits_for(hd, v_min=float(vm2[0]) - 3e-3)
    dv = np.zeros((3, 2))
    dv[2] = -1e-3
    sens = Sensitivity(dv_dz=dv, dl_dz=np.zeros((2, 2)), at_step=0)
    # by hand: 3 kW x 4 cheap hours = 12 kWh bought at 0.1 and returned at 0.3 against the
    # 5 kW x 8 h base load (8 EUR): 8 - 12 * 0.2 = 5.6 EUR
    expected = 5.6
    lp, _ = build_dispatch_lp(hd, W, nl.rows(res, z0, sens, *no_forcing(res)))
    assert lp.solve().objective == pytest.approx(expected, abs=1e-6)
    cap = np.ones(2)
    for cl in (make_clusters(nl.flex_bus, np.arange(2), cap, dv), cluster_buses(sens, hd.fleet, 1)):
        out = solve_clustered(hd, W, nl, res, z0, sens, cl, passes=1)
        r = out.solution
        assert r.status == "optimal", r.message
        assert r.virtual_objective_eur == pytest.approx(expected, abs=1e-6)
        assert r.objective_eur == pytest.approx(expected, abs=1e-6)
        # net charge (lossless, free cycling: only charge minus discharge is determined)
        net = (r.plan.battery_charge_kw - r.plan.battery_discharge_kw).sum(axis=0)
        assert net[:4] == pytest.approx([3.0] * 4, abs=1e-6)
    assert cl.n_clusters == 1 and len(out.rows.v_t) == hd.horizon


def test_clustered_plan_respects_every_asset_limit():
    hd = mixed_horizon()
    probe = limits_for(hd)
    z0, res = operating_point(probe, hd)
    nl = limits_for(hd, v_min=float(res.vm_pu.min()) - 1e-3)
    sens = nl.sensitivity(hd, z0, res)
    cl = cluster_buses(sens, hd.fleet, n_clusters=1)  # buses 1 and 2 pooled
    out = solve_clustered(
        hd,
        W,
        nl,
        res,
        z0,
        sens,
        cl,
        envelopes=True,
        solver="ipm",
        solver_options={"run_crossover": "off"},
    )
    r = out.solution
    assert r.status == "optimal", r.message
    p, f, dt, tol = r.plan, hd.fleet, hd.step_h, 1e-7
    b = f.battery
    for kw in (p.battery_charge_kw, p.battery_discharge_kw):
        assert np.all((kw >= -tol) & (kw <= b.power_kw[:, None] + tol))
    flow = b.efficiency_charge[:, None] * p.battery_charge_kw
    flow = flow - p.battery_discharge_kw / b.efficiency_discharge[:, None]
    soc = (b.capacity_kwh * b.soc_initial_frac)[:, None] + np.cumsum(flow * dt, axis=1)
    assert np.all(soc >= b.energy_min_kwh[:, None] - 1e-6)
    assert np.all(soc <= b.energy_max_kwh[:, None] + 1e-6)
    th = f.thermal.max_power_kw[:, None]
    assert np.all((p.thermal_kw >= -tol) & (p.thermal_kw <= th + tol))
    avail = hd.pv_available_kw[: hd.horizon]
    assert np.all((p.pv_curtail_kw >= -tol) & (p.pv_curtail_kw <= avail + tol))
    assert np.all((p.ev_charge_kw >= -tol) & (p.ev_charge_kw <= f.ev.max_power_kw[0] + tol))
    assert np.all(p.deferrable_kw >= -tol) and np.all(p.deferrable_kw <= 2.0 + tol)
    assert r.cost.feasible()
    # the AC check of the per-asset plan is what the report measures
    v_bad, l_bad = nl.violations(out.ac)
    assert out.violations[-1] == (int(v_bad.sum()), int(l_bad.sum()))


def test_bad_cluster_counts_and_row_columns_are_rejected():
    hd = mixed_horizon()
    nl = limits_for(hd)
    z0, res = operating_point(nl, hd)
    sens = nl.sensitivity(hd, z0, res)
    with pytest.raises(ValueError, match="n_clusters=3"):
        cluster_buses(sens, hd.fleet, 3)
    cl = cluster_buses(sens, hd.fleet, 1)
    with pytest.raises(ValueError, match="one per cluster"):
        solve_aggregated(hd, W, nl.rows(res, z0, sens, *no_forcing(res)), clusters=cl)
