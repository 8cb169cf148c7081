"""Aggregated dispatch: exact where aggregation is exact, feasible per asset and near-optimal
otherwise (the full LP optimum is the reference)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from gridsync.dispatch.aggregate import aggregate_horizon, evaluate_plan, solve_aggregated
from gridsync.dispatch.formulation import Weights, build_dispatch_lp
from gridsync.dispatch.mpc import MPCConfig, MPCController
from gridsync.model.assets import BatteryFleet, DeferrableFleet, PVFleet, ThermalFleet
from gridsync.sim.forecasts import PerfectForecaster
from tests.dispatch.conftest import empty_fleet, ev, tiny_scenario
from tests.dispatch.test_mpc_cases import TWO_PRICE, observe

W = Weights(carbon_price_eur_per_kg=0.0)


def batteries(capacity_kwh, power_kw, soc0, eta=0.9, bus=2) -> BatteryFleet:
    cap = np.asarray(capacity_kwh, float)
    n = len(cap)
    return BatteryFleet(
        bus=np.full(n, bus),
        capacity_kwh=cap,
        power_kw=np.asarray(power_kw, float),
        efficiency_charge=np.full(n, eta),
        efficiency_discharge=np.full(n, eta),
        soc_min_frac=np.full(n, 0.1),
        soc_max_frac=np.full(n, 0.9),
        soc_initial_frac=np.asarray(soc0, float),
        degradation_eur_per_kwh=np.full(n, 0.01),
    )


def horizon_of(s):
    # hand-built cases: the plan keeps each car's declared departure (no deadline margin)
    cfg = MPCConfig(horizon_steps=len(s.index), network=False, ev_deadline_margin_steps=0)
    c = MPCController(PerfectForecaster(), cfg)
    c.reset(s)
    return c.horizon(observe(s))


def full_optimum(hd):
    lp, lay = build_dispatch_lp(hd, W)
    sol = lp.solve()
    assert sol.ok
    return sol, lay


def test_identical_batteries_on_one_bus_aggregate_exactly():
    one = batteries([10.0], [5.0], [0.1])
    two = dataclasses.replace(
        one, **{f.name: np.repeat(getattr(one, f.name), 2) for f in dataclasses.fields(one)}
    )
    s = tiny_scenario(dataclasses.replace(empty_fleet(), battery=two), TWO_PRICE)
    hd = horizon_of(s)
    agg = aggregate_horizon(hd)
    assert len(agg.hd.fleet.battery) == 1
    assert agg.hd.fleet.battery.capacity_kwh[0] == 20.0
    full, _ = full_optimum(hd)
    res = solve_aggregated(hd, W)
    assert res.status == "optimal"
    # By hand: each battery stores 8 kWh (1 -> 9 kWh) bought at 0.1 for 8/0.9 kWh, returns
    # 8*0.9 kWh at 0.3; degradation 0.01 EUR/kWh on both flows; base load 5 kW for 8 h.
    per_battery = 0.1 * 8 / 0.9 - 0.3 * 8 * 0.9 + 0.01 * (8 / 0.9 + 8 * 0.9)
    # the LP credits energy left at the end (1 kWh each) at the window's mean import price
    # (0.2, scenario [accounting]); the constant for the start level is left out
    expected = 0.1 * 20 + 0.3 * 20 + 2 * per_battery - 2 * 1.0 * 0.2
    assert full.objective == pytest.approx(expected, abs=1e-6)
    assert res.virtual_objective_eur == pytest.approx(expected, abs=1e-6)
    assert res.objective_eur == pytest.approx(expected, abs=1e-6)
    # equal split between the twins
    assert res.plan.battery_charge_kw[0] == pytest.approx(res.plan.battery_charge_kw[1])


def mixed_horizon():
    pv = np.array([0, 0.2, 0.6, 0.9, 0.9, 0.5, 0.1, 0])
    fleet = dataclasses.replace(
        empty_fleet(),
        battery=batteries([6.0, 12.0, 9.0], [2.0, 5.0, 4.0], [0.8, 0.2, 0.5]),
        ev=ev(power_kw=7.0, eta=0.9, arrival=0, departure=7, need_kwh=12.0, v2g_floor=0.0),
        deferrable=DeferrableFleet(
            bus=np.array([1]),
            power_kw=np.array([2.0]),
            energy_kwh=np.array([3.0]),
            window_start_h=np.array([1.0]),
            window_end_h=np.array([6.0]),
        ),
        thermal=ThermalFleet(
            bus=np.array([2, 2]),
            max_power_kw=np.array([3.0, 2.0]),
            cop=np.array([3.0, 3.5]),
            resistance_c_per_kw=np.array([5.0, 8.0]),
            capacitance_kwh_per_c=np.array([4.0, 3.0]),
            comfort_min_c=np.array([20.0, 20.5]),
            comfort_max_c=np.array([22.0, 22.0]),
            initial_temp_c=np.array([21.0, 20.8]),
        ),
        pv=PVFleet(
            np.array([1, 1]), np.array([8.0, 4.0]), np.array([30.0, 30.0]), np.array([180.0] * 2)
        ),
    )
    s = tiny_scenario(fleet, [0.2, 0.1, 0.3, 0.3, 0.4, 0.4, 0.2, 0.1], pv_per_kwp=pv)
    s.outdoor_temp_c[:] = 8.0
    return horizon_of(s)


def test_disaggregated_plan_respects_every_asset_limit_and_is_near_optimal():
    hd = mixed_horizon()
    full, lay_full = full_optimum(hd)
    res = solve_aggregated(hd, W)
    assert res.status == "optimal", res.message
    p, f = res.plan, hd.fleet
    b = f.battery
    tol = 1e-7
    assert np.all(p.battery_charge_kw >= -tol) and np.all(p.battery_discharge_kw >= -tol)
    assert np.all(p.battery_charge_kw <= b.power_kw[:, None] + tol)
    assert np.all(p.battery_discharge_kw <= b.power_kw[:, None] + tol)
    # state of charge recomputed from the setpoints with the assets' own efficiencies
    dt = hd.step_h
    e = b.capacity_kwh * b.soc_initial_frac
    flow = b.efficiency_charge[:, None] * p.battery_charge_kw
    flow = flow - p.battery_discharge_kw / b.efficiency_discharge[:, None]
    soc = e[:, None] + np.cumsum(flow * dt, axis=1)
    assert np.all(soc >= b.energy_min_kwh[:, None] - 1e-6)
    assert np.all(soc <= b.energy_max_kwh[:, None] + 1e-6)
    assert soc == pytest.approx(p.battery_energy_kwh)
    assert np.all((p.thermal_kw >= -tol) & (p.thermal_kw <= f.thermal.max_power_kw[:, None] + tol))
    avail = hd.pv_available_kw[: hd.horizon]
    assert np.all((p.pv_curtail_kw >= -tol) & (p.pv_curtail_kw <= avail + tol))
    # the EV reaches its need by departure: delivered energy = eta * charge - discharge / eta
    eta = f.ev.efficiency[0]
    delivered = ((eta * p.ev_charge_kw - p.ev_discharge_kw / eta) * dt[lay_full.ev_t]).sum()
    assert delivered == pytest.approx(12.0, abs=1e-6)
    # aggregation relaxes the asset sets: its optimum is a lower bound; the priced plan is
    # feasible so it cannot beat the full optimum. The end-state credit (batteries at the
    # mean price) brings the objective near 0, so the gap is measured against the plan's
    # gross cost: below 5 % on this fleet (4.7 % measured: heterogeneous state of charge, and
    # per-house heat deficits at the end the pooled building cannot see, 0.10 EUR)
    assert res.virtual_objective_eur <= full.objective + 1e-6
    assert res.objective_eur >= full.objective - 1e-6
    gross = sum(v for v in res.cost.terms_eur.values() if v > 0)
    assert res.objective_eur - full.objective <= 0.05 * gross


def test_evaluate_rejects_a_plan_that_breaks_a_state_of_charge_limit():
    hd = mixed_horizon()
    res = solve_aggregated(hd, W)
    bad = dataclasses.replace(res.plan, battery_charge_kw=res.plan.battery_charge_kw + 2.0)
    sol, _ = evaluate_plan(hd, bad, W)
    assert sol.status == "infeasible"


def test_mpc_with_aggregate_publishes_per_asset_setpoints_equal_to_the_exact_optimum():
    from gridsync.sim.registry import make_controller
    from tests.dispatch.test_mpc_cases import solve_once

    one = batteries([10.0], [5.0], [0.1])
    two = dataclasses.replace(
        one, **{f.name: np.repeat(getattr(one, f.name), 2) for f in dataclasses.fields(one)}
    )
    s = tiny_scenario(dataclasses.replace(empty_fleet(), battery=two), TWO_PRICE)
    _, plain = solve_once(s, network=True)
    _, agg = solve_once(s, network=True, aggregate=True)
    assert agg.status == "optimal"
    assert agg.battery_kw.shape == (8, 2)
    assert agg.objective_eur == pytest.approx(plain.objective_eur, abs=1e-6)
    # the optimum is degenerate in time; per battery: 8/0.9 kWh in the cheap hours, 7.2 out
    assert agg.battery_kw[:, 0] == pytest.approx(agg.battery_kw[:, 1], abs=1e-9)
    assert agg.battery_kw[:4].sum(axis=0) == pytest.approx([8 / 0.9] * 2, abs=1e-6)
    assert agg.battery_kw[4:].sum(axis=0) == pytest.approx([-7.2] * 2, abs=1e-6)
    c = make_controller("mpc-agg")
    assert c.name == "mpc-agg" and c.config.aggregate
