"""EV/deferrable energy envelopes (exact where aggregation is exact, every session feasible
after disaggregation) and direct pricing of per-asset plans (equal to HiGHS's objective)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from gridsync.dispatch.aggregate import (
    Grouping,
    build_aggregated_lp,
    disaggregate,
    evaluate_plan,
    solve_aggregated,
)
from gridsync.dispatch.envelope import envelope_targets, ev_tasks, group_kw
from gridsync.dispatch.formulation import NetworkRows, Options, build_dispatch_lp
from gridsync.dispatch.pricing import plan_cost, plan_from_solution
from gridsync.model.assets import DeferrableFleet, EVFleet, EVSessions
from tests.dispatch.conftest import empty_fleet, tiny_scenario
from tests.dispatch.test_aggregate import W, batteries, full_optimum, horizon_of, mixed_horizon
from tests.dispatch.test_mpc_cases import TWO_PRICE


def evs(power_kw, arrival, departure, need_kwh, v2g_floor_kwh=None, eta=1.0) -> EVFleet:
    n = len(power_kw)
    floor = np.zeros(n) if v2g_floor_kwh is None else np.asarray(v2g_floor_kwh, float)
    return EVFleet(
        bus=np.full(n, 2),
        max_power_kw=np.asarray(power_kw, float),
        efficiency=np.full(n, eta),
        v2g=floor > 0,
        sessions=EVSessions(
            charger=np.arange(n),
            arrival_step=np.asarray(arrival),
            departure_step=np.asarray(departure),
            energy_need_kwh=np.asarray(need_kwh, float),
            headroom_kwh=np.full(n, 40.0),
            v2g_floor_kwh=floor,
        ),
    )


def test_identical_evs_aggregate_exactly_to_the_hand_optimum():
    fleet = dataclasses.replace(empty_fleet(), ev=evs([7.0, 7.0], [0, 0], [6, 6], [10.0, 10.0]))
    hd = horizon_of(tiny_scenario(fleet, TWO_PRICE))
    agg, _, _, _ = build_aggregated_lp(hd, W, envelopes=True)
    assert agg.ev_envelope.n_group == 1
    full, _ = full_optimum(hd)
    res = solve_aggregated(hd, W, envelopes=True)
    # By hand: 20 kWh bought in the cheap hours (the chargers could take 56 kWh there) plus
    # 5 kW of base load for 8 hours.
    expected = 0.1 * 20 + 5 * sum(TWO_PRICE)
    assert full.objective == pytest.approx(expected, abs=1e-6)
    assert res.virtual_objective_eur == pytest.approx(expected, abs=1e-6)
    assert res.objective_eur == pytest.approx(expected, abs=1e-6)
    assert res.plan.ev_deviation_kwh == pytest.approx(0.0, abs=1e-9)
    tasks = ev_tasks(hd)[0]
    per_ev = np.bincount(tasks.task_of_pair, weights=res.plan.ev_charge_kw)
    assert per_ev == pytest.approx([10.0, 10.0], abs=1e-6)  # dt = 1 h, eta = 1
    assert res.plan.ev_charge_kw[tasks.pair_t >= 4] == pytest.approx(0.0, abs=1e-9)


def mixed_sessions_horizon():
    fleet = dataclasses.replace(
        empty_fleet(),
        battery=batteries([10.0], [4.0], [0.5]),
        ev=evs(
            power_kw=[3.7, 7.0, 11.0, 7.0],
            arrival=[0, 1, 2, 0],
            departure=[6, 8, 5, 8],
            need_kwh=[8.0, 20.0, 15.0, 5.0],
            v2g_floor_kwh=[0.0, 0.0, 0.0, 6.0],
            eta=0.9,
        ),
        deferrable=DeferrableFleet(
            bus=np.array([2, 2, 2]),
            power_kw=np.array([2.0, 3.0, 1.5]),
            energy_kwh=np.array([4.0, 3.0, 3.0]),
            window_start_h=np.array([0.0, 2.0, 1.0]),
            window_end_h=np.array([4.0, 8.0, 7.0]),
        ),
    )
    prices = [0.2, 0.1, 0.15, 0.3, 0.4, 0.12, 0.35, 0.25]
    return horizon_of(tiny_scenario(fleet, prices, demand_eur_per_kw_month=30.0))


@pytest.mark.parametrize("solver", ["choose", "ipm"])
def test_every_session_and_job_meets_its_own_limits_after_disaggregation(solver):
    hd = mixed_sessions_horizon()
    opts = {"run_crossover": "off"} if solver == "ipm" else None
    res = solve_aggregated(hd, W, envelopes=True, solver=solver, solver_options=opts)
    assert res.status == "optimal", res.message
    p, f, dt = res.plan, hd.fleet, hd.step_h
    tasks, sess = ev_tasks(hd)
    k, t = tasks.task_of_pair, tasks.pair_t
    tol = 1e-7
    # power within each charger's limit, discharge only where V2G is allowed
    assert np.all((p.ev_charge_kw >= -tol) & (p.ev_charge_kw <= tasks.charge_kw + tol))
    assert np.all((p.ev_discharge_kw >= -tol) & (p.ev_discharge_kw <= tasks.discharge_kw + tol))
    assert np.all(p.ev_discharge_kw[~f.ev.v2g[hd.ev.charger[sess[k]]]] == 0.0)
    # each car's energy, recomputed from its setpoints, stays inside [-floor, headroom] on the
    # way and reaches its need by departure (all needs here are reachable)
    eta = f.ev.efficiency[hd.ev.charger[sess[k]]]
    energy = np.zeros((len(sess), hd.horizon))
    np.add.at(energy, (k, t), (eta * p.ev_charge_kw - p.ev_discharge_kw / eta) * dt[t])
    energy = np.cumsum(energy, axis=1)
    assert np.all(energy >= -hd.ev.v2g_floor_kwh[sess][:, None] - 1e-6)
    assert np.all(energy <= hd.ev.headroom_kwh[sess][:, None] + 1e-6)
    assert energy[np.arange(len(sess)), hd.ev.end_t[sess] - 1] == pytest.approx(
        hd.ev.need_kwh[sess], abs=1e-6
    )
    # each appliance runs inside its window and gets its energy
    d = f.deferrable
    done = np.zeros(len(d))
    from gridsync.dispatch.jobs import deferrable_jobs

    j, tj, frac, *_ = deferrable_jobs(hd)
    assert np.all((p.deferrable_kw >= -tol) & (p.deferrable_kw <= d.power_kw[j] * frac + tol))
    np.add.at(done, j, p.deferrable_kw * dt[tj])
    assert done == pytest.approx(d.energy_kwh, abs=1e-6)
    cost = plan_cost(hd, p, W)
    assert cost.feasible() and cost.terms_eur["unmet_ev"] == pytest.approx(0.0, abs=1e-6)
    # a relaxation: the virtual optimum never beats the full one; the plan never beats it
    full, _ = full_optimum(hd)
    assert res.virtual_objective_eur <= full.objective + 1e-6
    assert res.objective_eur >= full.objective - 1e-6


def test_split_sums_to_the_virtual_plan():
    hd = mixed_sessions_horizon()
    agg, lp, lay, cols = build_aggregated_lp(hd, W, envelopes=True)
    sol = lp.solve()
    assert sol.ok
    plan = disaggregate(hd, agg, sol.x, lay, cols)
    env, dt = agg.ev_envelope, hd.step_h
    target = envelope_targets(env, cols["ev"], sol.x, dt)
    c, d = group_kw(env, plan.ev_charge_kw, plan.ev_discharge_kw)
    eta = env.group_eta[:, None]
    realised = eta * c * dt - d * dt / eta
    assert np.abs(realised - target).sum() == pytest.approx(plan.ev_deviation_kwh, abs=1e-9)
    # on this fleet the sessions follow the virtual plan exactly
    assert realised == pytest.approx(target, abs=1e-9)
    assert np.abs(target).sum() > 10.0


def hand_network(hd, lay) -> NetworkRows:
    """Linearised voltage and loading rows with made-up sensitivities; the offsets lie
    outside the limits, so slack is paid unless the flexible load moves far enough."""
    H, nf = hd.horizon, len(lay.flex_bus)
    t = np.arange(H)
    sens = np.tile(np.linspace(1.0, 2.0, nf), (H, 1))
    return NetworkRows(
        v_t=t,
        v_bus=np.full(H, 2),
        v_offset=np.full(H, 1.0),
        v_lo=np.full(H, 1.0005),
        v_hi=np.full(H, 1.05),
        dv_dz=-1e-4 * sens,
        l_t=t,
        l_branch=np.zeros(H, int),
        l_offset=np.full(H, 50.0),
        l_hi=np.full(H, 48.0),
        dl_dz=0.8 * sens,
    )


@pytest.mark.parametrize("envelopes", [False, True])
def test_direct_pricing_equals_the_lp_objective(envelopes):
    hd = mixed_horizon()
    _, lay0 = build_dispatch_lp(hd, W)
    net = hand_network(hd, lay0)
    opts = Options(feeder_limit_kw=12.0, elastic_feeder_limit=True)
    hd = dataclasses.replace(hd, demand_eur_per_kw=0.5, peak_floor_kw=3.0)
    lp, lay = build_dispatch_lp(hd, W, net, opts)
    sol = lp.solve()
    assert sol.ok
    cost = plan_cost(hd, plan_from_solution(hd, sol.x, lay), W, net, opts)
    assert cost.feasible()
    assert cost.objective_eur == pytest.approx(sol.objective, rel=1e-7, abs=1e-6)
    # a plan that is not optimal: slacks and peak take their cheapest values in both
    res = solve_aggregated(hd, W, net, opts, pricing="lp", envelopes=envelopes)
    assert res.status == "optimal", res.message
    direct = plan_cost(hd, res.plan, W, net, opts)
    assert res.objective_eur > sol.objective + 1e-3
    assert direct.objective_eur == pytest.approx(res.objective_eur, rel=1e-7, abs=1e-6)
    assert direct.terms_eur["voltage"] + direct.terms_eur["loading"] > 0


def test_direct_pricing_reports_a_broken_limit():
    hd = mixed_horizon()
    res = solve_aggregated(hd, W)
    bad = dataclasses.replace(res.plan, battery_charge_kw=res.plan.battery_charge_kw + 2.0)
    cost = plan_cost(hd, bad, W)
    assert not cost.feasible()
    assert cost.violation["battery_energy_kwh"] > 0.5
    assert evaluate_plan(hd, bad, W)[0].status == "infeasible"


def test_solver_options_are_checked_by_name():
    hd = mixed_horizon()
    lp, _ = build_dispatch_lp(hd, W)
    with pytest.raises(ValueError, match="'solver'"):
        lp.solve(solver="no-such-solver")
    with pytest.raises(ValueError, match="'run_crossover'"):
        lp.solve(solver="ipm", options={"run_crossover": "sometimes"})


def test_feeder_pooling_gives_a_feasible_plan_and_refuses_network_rows():
    hd = mixed_horizon()  # assets on buses 1 and 2
    pooled = Grouping(by_bus=False, ev_class_steps=None, deferrable_class_steps=None)
    res = solve_aggregated(hd, W, envelopes=True, grouping=pooled)
    assert res.status == "optimal", res.message
    assert len(res.plan.thermal_kw) == 2 and res.cost.feasible()
    full, lay = full_optimum(hd)
    assert res.objective_eur >= full.objective - 1e-6
    with pytest.raises(ValueError, match="by_bus"):
        build_aggregated_lp(hd, W, hand_network(hd, lay), envelopes=True, grouping=pooled)


def test_envelopes_and_direct_pricing_on_blocks_of_unequal_length():
    from gridsync.dispatch.mpc import MPCConfig, MPCController
    from gridsync.sim.forecasts import PerfectForecaster
    from tests.dispatch.test_mpc_cases import observe

    s = tiny_scenario(mixed_sessions_horizon().fleet, [0.2, 0.1, 0.15, 0.3, 0.4, 0.12, 0.35, 0.25])
    cfg = MPCConfig(
        horizon_steps=8, network=False, fine_steps=2, coarse_steps=3, ev_deadline_margin_steps=0
    )
    c = MPCController(PerfectForecaster(), cfg)
    c.reset(s)
    hd = c.horizon(observe(s))
    assert list(hd.block_steps) == [1, 1, 3, 3]
    res = solve_aggregated(hd, W, envelopes=True)
    assert res.status == "optimal", res.message
    assert res.objective_eur == pytest.approx(evaluate_plan(hd, res.plan, W)[0].objective)
    full, lay = full_optimum(hd)
    assert plan_cost(hd, plan_from_solution(hd, full.x, lay), W).objective_eur == pytest.approx(
        full.objective
    )
    assert res.objective_eur >= full.objective - 1e-6
