"""The stepped twin matches the batch simulator; the guard's remedies work on the twin."""

from __future__ import annotations

import copy
import dataclasses

import numpy as np
import pytest

from gridsync.dispatch.rules import TouController, UncontrolledController
from gridsync.hitl.guard import (
    GuardContext,
    propose_consent,
    propose_curtailment,
    propose_load_shedding,
)
from gridsync.hitl.policy import ApprovalPolicy
from gridsync.sim.simulator import simulate
from gridsync.sim.twin import SteppedTwin


def with_vmax(scenario, vmax_pu: float):
    limits = scenario.config.limits.model_copy(update={"voltage_max_pu": vmax_pu})
    cfg = scenario.config.model_copy(update={"limits": limits})
    return dataclasses.replace(scenario, config=cfg)


def run_to(twin: SteppedTwin, ctrl, hour: float):
    while twin.hour(twin.step) < hour:
        obs = twin.observe()
        twin.advance(obs, ctrl.act(obs))
    return twin.observe()


def test_stepped_twin_reproduces_simulate(scenario_1day):
    ref = simulate(scenario_1day, TouController())
    ctrl = TouController()
    ctrl.reset(scenario_1day)
    twin = SteppedTwin(scenario_1day)
    feeder, vm = [], []
    while not twin.finished:
        obs = twin.observe()
        rec = twin.advance(obs, ctrl.act(obs))
        feeder.append(rec.feeder_kw)
        vm.append(rec.vm_pu)
    np.testing.assert_allclose(feeder, ref.feeder_kw, atol=1e-6)
    np.testing.assert_allclose(np.array(vm), ref.vm_pu, atol=1e-5)


@pytest.fixture
def noon(scenario_1day):
    """The 1-day scenario with a 1.035 p.u. limit (its noon PV peak reaches ~1.043 p.u.)."""
    sc = with_vmax(scenario_1day, 1.035)
    ctrl, nat = TouController(), UncontrolledController()
    ctrl.reset(sc)
    nat.reset(sc)
    twin = SteppedTwin(sc)
    obs = run_to(twin, ctrl, 12.25)
    return sc, twin, obs, ctrl.act(obs), nat.act(obs)


def test_curtailment_brings_voltage_under_the_limit(noon):
    sc, twin, obs, sp, nat = noon
    ctx = GuardContext(twin, obs, sp, nat, ApprovalPolicy())
    action = propose_curtailment(ctx)
    assert action is not None and action.kind == "curtailment"
    # independent check: actually step two copies of the twin, with and without the remedy
    acted = dataclasses.replace(sp, pv_curtail_kw=np.array(sp.pv_curtail_kw, dtype=float))
    acted.pv_curtail_kw[action.asset_index] = action.proposed_kw
    base = copy.copy(twin)
    for name in ("energy_kwh", "delivered_kwh", "done_kwh", "temp_c"):
        setattr(base, name, getattr(twin, name).copy())
    rec_act = twin.advance(obs, acted)
    rec_not = base.advance(obs, sp)
    assert np.nanmax(rec_not.vm_pu) > 1.035
    assert np.nanmax(rec_act.vm_pu) <= 1.035
    assert np.nanmax(rec_act.vm_pu) == pytest.approx(
        action.justification.acting.metrics["max_voltage_pu"], abs=1e-6
    )
    curtailed = float((action.proposed_kw - action.no_action_kw).sum())
    assert curtailed == pytest.approx(
        rec_act.curtailed_kw.sum() - rec_not.curtailed_kw.sum(), abs=1e-6
    )
    # the feeder exports, so spilling PV costs export revenue (+/- the change in losses)
    hold_h = ApprovalPolicy().hold_steps * sc.dt_h
    expected = curtailed * obs.export_price_eur_per_kwh * hold_h
    assert action.justification.acting.cost_eur == pytest.approx(expected, rel=0.1)
    assert "buses above 1.03" in action.justification.drivers[0]


def test_no_curtailment_when_voltage_is_fine(scenario_1day):
    ctrl, nat = TouController(), UncontrolledController()
    ctrl.reset(scenario_1day)
    nat.reset(scenario_1day)
    twin = SteppedTwin(scenario_1day)
    obs = run_to(twin, ctrl, 12.25)
    ctx = GuardContext(twin, obs, ctrl.act(obs), nat.act(obs), ApprovalPolicy())
    assert propose_curtailment(ctx) is None


def test_load_shedding_pauses_evs_until_import_fits(scenario_1day):
    ctrl, nat = UncontrolledController(), UncontrolledController()
    ctrl.reset(scenario_1day)
    nat.reset(scenario_1day)
    twin = SteppedTwin(scenario_1day)
    obs = run_to(twin, ctrl, 19.0)
    sp = ctrl.act(obs)
    now_kw = twin.solve(twin.bus_injection_kw(obs, sp), obs.step).p_slack_kw
    limit = now_kw - 15.0
    ctx = GuardContext(twin, obs, sp, nat.act(obs), ApprovalPolicy(feeder_import_limit_kw=limit))
    action = propose_load_shedding(ctx)
    assert action is not None and action.asset_kind == "ev"
    assert np.all(action.proposed_kw == 0) and np.all(action.no_action_kw > 0)
    shed = dataclasses.replace(sp, ev_kw=np.array(sp.ev_kw, dtype=float))
    shed.ev_kw[action.asset_index] = 0.0
    rec = twin.advance(obs, shed)
    assert rec.feeder_kw <= limit
    assert ctx.policy.feeder_import_limit_kw is not None
    ctx2 = dataclasses.replace(ctx, policy=ApprovalPolicy(feeder_import_limit_kw=now_kw + 50))
    assert propose_load_shedding(ctx2) is None


def test_consent_requests_for_customers_who_asked(scenario_1day):
    ctrl, nat = TouController(), UncontrolledController()
    ctrl.reset(scenario_1day)
    nat.reset(scenario_1day)
    twin = SteppedTwin(scenario_1day)
    obs = run_to(twin, ctrl, 19.0)
    sp, natural = ctrl.act(obs), nat.act(obs)
    ev = scenario_1day.fleet.ev
    differs = np.flatnonzero(np.abs(sp.ev_kw - natural.ev_kw) > 0.1)
    assert len(differs), "TOU should hold back some EVs at 19:00"
    bus = scenario_1day.feeder.bus_names[ev.bus[differs[0]]]
    policy = ApprovalPolicy(ask_customers=[str(bus)])
    actions = propose_consent(GuardContext(twin, obs, sp, natural, policy))
    ev_actions = [a for a in actions if a.asset_kind == "ev"]
    assert ev_actions and differs[0] in ev_actions[0].asset_index
    assert all(scenario_1day.feeder.bus_names[ev.bus[i]] == bus for i in ev_actions[0].asset_index)
    with pytest.raises(ValueError, match="unknown bus names"):
        propose_consent(
            GuardContext(twin, obs, sp, natural, ApprovalPolicy(ask_customers=["nope"]))
        )


def test_plan_curtailment_is_gated_with_the_plans_binding_constraints(noon):
    from gridsync.hitl.gates import propose_plan_curtailment
    from tests.hitl.test_overrides_session import FakeBinding

    sc, twin, obs, sp, nat = noon
    sp.pv_curtail_kw = np.zeros(len(sc.fleet.pv))
    systems = np.flatnonzero(sc.pv_available_kw(obs.step) > 1.0)[:3]
    sp.pv_curtail_kw[systems] = 1.0
    plan = type("Plan", (), {})()
    plan.status, plan.reason, plan.objective_eur = "optimal", "", 12.5
    plan.binding = [FakeBinding("voltage", "voltage at bus 9 held at its limit", 1, -0.8, "p.u.")]
    ctx = GuardContext(twin, obs, sp, nat, ApprovalPolicy(), plan=plan, controller_name="mpc")
    action = propose_plan_curtailment(ctx)
    assert list(action.asset_index) == list(systems)
    np.testing.assert_allclose(action.proposed_kw, 1.0)
    np.testing.assert_allclose(action.no_action_kw, 0.0)
    assert action.justification.binding[0]["text"].endswith("worth 0.80 EUR")
    # 3 kW less PV export for hold_steps steps at the export price (losses change it slightly)
    hold_h = ApprovalPolicy().hold_steps * sc.dt_h
    assert action.justification.acting.cost_eur == pytest.approx(
        3.0 * obs.export_price_eur_per_kwh * hold_h, rel=0.1
    )
    sp.pv_curtail_kw[:] = 0.0
    assert propose_plan_curtailment(ctx) is None
