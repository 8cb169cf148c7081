"""Island energy balance solved by hand, IEEE 1366 momentary/sustained split, approvals."""

from __future__ import annotations

import numpy as np
import pytest

from gridsync.hitl.approvals import ApprovalManager
from gridsync.hitl.policy import ApprovalPolicy
from gridsync.resilience import flisr as F
from gridsync.resilience.approval import justify, submit, switching_action
from gridsync.resilience.feeder import Conditions, load_feeder_study
from gridsync.resilience.islanding import run_island
from gridsync.resilience.study import FaultOutcome, FaultScenario, indices_per_fault


@pytest.fixture(scope="module")
def feeder():
    return load_feeder_study()


def flat(pu: float, pv: float = 0.0) -> Conditions:
    n = 8760 + 24 * 31
    return Conditions(np.full(n, pu), np.full(n, pu), np.full(n, pv), np.full(n, 20.0), np.full(n, 5.0))


def test_island_admits_what_the_battery_can_carry_and_sheds_when_it_runs_dry(feeder):
    mg = feeder.study.microgrids[0]  # MG-A: buses 5, 6; 600 kW / 2400 kWh; 33 kW fuel cell
    # loads at 0.5 p.u.: R5 363.75 kW, R6 274.025 kW. Both need 604.8 kW from the battery (> 600
    # kW): only the smaller R6 is admitted (241.0 kW deficit). SoC 0.5 leaves (0.5 - 0.1) * 2400
    # = 960 kWh above the reserve: 241.025 kW lasts 3.98 h, so in 15-min steps R6 is carried
    # 15 steps (3.75 h) of the 5 h outage; the fuel cell then recharges 33 kW for the last 5
    # steps at 90 % round-trip efficiency.
    res = run_island(feeder, flat(0.5), mg, start_h=100.0, forecast_h=2.0, actual_h=5.0, soc=0.5)
    labels = [feeder.net.load.name.iloc[feeder.load_index[i]] for i in res.load_positions]
    admitted = dict(zip(labels, res.admitted, strict=True))
    assert admitted == {"Load R5": False, "Load R6": True}
    served = dict(zip(labels, res.served_h, strict=True))
    assert served["Load R6"] == pytest.approx(3.75)
    assert served["Load R5"] == 0.0
    e_end = 0.5 * 2400 - 15 * 0.25 * 241.025 + 5 * 0.25 * 33.0 * 0.9
    assert res.soc_end == pytest.approx(e_end / 2400, abs=1e-9)


def test_priority_comes_first(feeder):
    # MG-B: 200 kW / 800 kWh battery, 536 kW of CHP and fuel cells, no PV at night. At 1.0 p.u.
    # the hospital CI9 (573.75 kW, priority 10) leaves a 37.75 kW deficit: 302 kWh over 8 h,
    # within the 640 kWh above reserve at SoC 0.9. Adding CI10 (68 kW, priority 3) would need
    # 846 kWh, and every residential load more power than the battery has left.
    mg = feeder.study.microgrids[1]
    res = run_island(feeder, flat(1.0), mg, start_h=0.0, forecast_h=8.0, actual_h=8.0, soc=0.9)
    labels = [feeder.net.load.name.iloc[feeder.load_index[i]] for i in res.load_positions]
    admitted = {k for k, a in zip(labels, res.admitted, strict=True) if a}
    assert admitted == {"Load CI9"}
    assert res.served_h[labels.index("Load CI9")] == pytest.approx(8.0)


def test_momentary_and_sustained_are_counted_apart(feeder):
    n_load = len(feeder.load_index)
    d = np.zeros(n_load)
    d[0], d[1] = 0.05, 2.0  # 3 min (momentary) and 2 h (sustained)
    sc = FaultScenario(0, 0.0, 2.0, (0.5, 0.5))
    out = FaultOutcome(sc, {m: d for m in ("manual", "flisr", "flisr_island")}, np.full(n_load, 100.0),
                       [], {})
    x = indices_per_fault(feeder, [out])["flisr"]
    assert x["customer_interruptions"][0] == feeder.customers[1]
    assert x["momentary"][0] == feeder.customers[0]
    assert x["customer_minutes"][0] == pytest.approx(feeder.customers[1] * 120.0)
    assert x["ens_kwh"][0] == pytest.approx(200.0)


def test_switching_plan_goes_through_approval_when_policy_asks(feeder):
    line = feeder.line_by_name("Line 3-4")
    op = F.operating_point(feeder, 0.5, 0.5)
    iso = F.isolate_remote(feeder, feeder.normally_closed, [line])
    from gridsync.resilience.study import trip_state

    plan = F.restore(feeder, op, trip_state(feeder, line), feeder.remote, iso)
    why = justify(feeder, plan, [line], iso, op, 4, 1.0)
    text = why.text()
    assert "Line 3-4" in text and "Line 2-3" in text and f"{plan.restored_kw:.0f} kW" in text
    # the breaker took out feeder 1 (buses 3-11); all but the zone {3, 4} comes back, and
    # feeder 2's customers, never interrupted, are not counted as restored
    back = np.isin(feeder.load_bus, [5, 6, 7, 8, 9, 10, 11])
    assert f"to {int(feeder.customers[back].sum())} customers" in text
    assert plan.restored_kw == pytest.approx(op.load_p_mw[feeder.load_index[back]].sum() * 1000)
    action = switching_action(feeder, plan, op, why)
    assert action.magnitude_kw == pytest.approx(plan.restored_kw)
    asked = ApprovalManager(ApprovalPolicy())
    assert submit(asked, action) is not None and len(asked.pending()) == 1
    trusted = ApprovalManager(ApprovalPolicy(switching_kw=1e6))
    assert submit(trusted, action) is None and not trusted.pending()


def test_console_fault_is_restored_in_the_step_after_approval(feeder):
    from gridsync.resilience.controller import FlisrController

    line = feeder.line_by_name("Line 3-4")
    op = F.operating_point(feeder, 0.5, 0.5)
    manager = ApprovalManager(ApprovalPolicy(timeout_s=600))
    ctl = FlisrController(feeder, manager)
    rid = ctl.on_fault(line, op, step=10)
    off_after_isolation = ~ctl.served()
    assert off_after_isolation.any() and rid is not None
    ctl.step(11)  # not decided yet: nothing changes
    assert (~ctl.served() == off_after_isolation).all()
    manager.approve(rid, "alice", "operator")
    ctl.step(12)
    zone = np.isin(feeder.load_bus, [3, 4])
    assert ctl.served()[~zone].all() and not ctl.served()[zone].any()
    assert "approved by alice" in ctl.state.events[-1]
    assert F.is_radial_forest(feeder, ctl.state.closed, ctl.state.energised)


def test_silent_indicator_costs_a_reclosure_and_the_fault_stays_dead(feeder):
    from gridsync.resilience.study import evaluate_fault

    line = feeder.line_by_name("Line 3-4")
    positions = F.fci_positions(feeder)
    silent = np.array([p == (feeder.line_by_name("Line 2-3"), 3) for p in positions])
    out = evaluate_fault(feeder, flat(0.4), FaultScenario(line, 100.0, 10.0, (0.5, 0.5)),
                         fci_miss=silent)
    assert out.retries == 1
    stage1 = out.plans["flisr"][0]
    assert not (stage1.closed[line] and stage1.energised[feeder.line_from[line]])
    t = feeder.study.remote_switching_time_h
    back = np.isin(feeder.load_bus, [5, 6, 7, 8, 9, 10, 11])
    np.testing.assert_allclose(out.duration_h["flisr"][back], 2 * t)
    # manual restoration does not depend on the indicators: the crew finds the fault
    assert (out.duration_h["manual"][back] == feeder.study.manual_switching_time_h).all()
