"""Overrides change exactly the pinned assets and are checked; the live session ties it up."""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import pytest

from gridsync.dispatch.rules import TouController
from gridsync.hitl.approvals import ApprovalForbidden
from gridsync.hitl.justification import binding_from_plan, describe_binding
from gridsync.hitl.overrides import OverrideError, OverrideTable
from gridsync.hitl.policy import ApprovalPolicy
from gridsync.hitl.session import ConsoleSession
from gridsync.sim.controller import Setpoints
from tests.hitl.test_twin_guard import with_vmax


def test_pin_and_manual_override(scenario_1day, audit, clock):
    fleet = scenario_1day.fleet
    table = OverrideTable(fleet, audit, clock)
    rating = float(fleet.battery.power_kw[3])
    with pytest.raises(OverrideError, match=rf"battery 3 can take -{rating:.2f} to {rating:.2f} kW, got {rating + 2:.2f}"):  # fmt: skip
        table.pin("battery", 3, rating + 2.0, "op", "operator", "test")
    assert audit.actions() == [], "a refused pin is not audited"
    ov = table.pin("battery", 3, -rating, "op", "operator", "test")
    assert ov.warnings == []
    table.take_out_of_control("ev", 1, "op", "operator")
    sp = Setpoints.zeros(fleet)
    natural = Setpoints.zeros(fleet)
    natural.ev_kw[:] = 7.0
    out = table.apply(sp, natural)
    assert out.battery_kw[3] == -rating and out.ev_kw[1] == 7.0
    assert np.count_nonzero(out.battery_kw) == 1 and np.count_nonzero(out.ev_kw) == 1
    assert sp.battery_kw[3] == 0.0, "inputs must not be modified"
    assert audit.actions() == ["override.pin", "override.manual"]
    table.clear("battery", 3, "op", "admin")
    assert [o.asset_kind for o in table.list()] == ["ev"]


def test_override_errors(scenario_1day):
    table = OverrideTable(scenario_1day.fleet)
    n = len(scenario_1day.fleet.battery)
    with pytest.raises(OverrideError, match=f"battery index {n} is out of range"):
        table.pin("battery", n, 1.0, "op", "operator")
    with pytest.raises(OverrideError, match="finite"):
        table.pin("battery", 0, float("nan"), "op", "operator")
    with pytest.raises(ApprovalForbidden):
        table.pin("battery", 0, 1.0, "v", "viewer")
    with pytest.raises(OverrideError, match="no override"):
        table.clear("battery", 0, "op", "operator")
    with pytest.raises(OverrideError, match=f"this fleet has {n} batteries"):
        table.pin("battery", n, 1.0, "op", "operator")


def test_overrides_persist_and_are_restored(scenario_1day, tmp_path, audit, clock):
    from gridsync.store import SqliteStore

    fleet, names = scenario_1day.fleet, scenario_1day.feeder.bus_names
    store = SqliteStore(tmp_path / "ov.db")
    store.migrate()
    table = OverrideTable(fleet, audit, clock, store=store, bus_names=names)
    table.pin("battery", 2, 1.5, "op", "operator", "hold")
    table.take_out_of_control("ev", 4, "op", "operator")
    table.pin("pv", 0, 0.0, "op", "operator")
    table.clear("pv", 0, "op", "operator")
    bus = names[int(fleet.battery.bus[2])]
    assert table.list()[0].to_dict()["label"] == f"battery 2 @ {bus}"
    # a stored entry the fleet cannot take (another scenario) is dropped with the reason
    store.put_override("battery", 10_000, {"asset_kind": "battery", "index": 10_000, "mode": "pin", "setpoint_kw": 1.0})  # fmt: skip
    store.close()
    store = SqliteStore(tmp_path / "ov.db")  # a new process on the same file
    again = OverrideTable(fleet, audit, clock, store=store, bus_names=names)
    dropped = again.restore()
    assert len(dropped) == 1 and "index 10000 is out of range" in dropped[0]
    got = [(o.asset_kind, o.index, o.mode, o.setpoint_kw, o.by, o.reason) for o in again.list()]
    assert got == [("battery", 2, "pin", 1.5, "op", "hold"), ("ev", 4, "manual", None, "op", "")]
    sp = again.apply(Setpoints.zeros(fleet), Setpoints.zeros(fleet))
    assert sp.battery_kw[2] == 1.5


@dataclasses.dataclass
class FakeBinding:
    kind: str
    description: str
    step: int
    shadow_price: float
    unit: str


def test_binding_constraints_are_described_with_their_worth():
    plan = type("Plan", (), {})()
    plan.binding = [
        FakeBinding("voltage", "voltage at bus 7 held at its limit", 5, -0.4, "p.u."),
        FakeBinding(
            "feeder_peak", "feeder peak import 412.0 kW is set at Mon 18:15", 9, -2.33, "kW"
        ),
    ]
    out = binding_from_plan(plan, limit=1)
    assert len(out) == 1 and out[0]["kind"] == "feeder_peak"
    assert out[0]["text"].endswith("each extra kW of headroom is worth 2.33 EUR")
    assert describe_binding(plan.binding[0])["shadow_price"] == -0.4
    assert binding_from_plan(None) == []


def test_session_raises_request_holds_no_action_then_fails_safe(scenario_1day, audit, clock):
    sc = with_vmax(scenario_1day, 1.035)
    policy = ApprovalPolicy(timeout_s=5, curtailment_kw=1.0)
    start = sc.start_step + int(round(11.5 / sc.dt_h))
    s = ConsoleSession(
        sc, TouController(), policy, audit=audit, start_step=start, clock=clock, shield=None
    )
    events = []
    s.add_listener(lambda e, p: events.append(e))
    req = None
    for _ in range(8):
        snap = s.step()
        if s.approvals.pending():
            req = s.approvals.pending()[0]
            break
        clock.t += 1
    assert req is not None and snap["approvals"]["pending"][0]["id"] == req.id
    assert "approval" in events and events[-1] == "state"
    # while pending, the no-action alternative (no curtailment) is what the twin applies
    snap = s.step()
    assert snap["fleet"]["curtailed_kw"] == pytest.approx(0.0)
    clock.t += 6
    snap = s.step()
    assert req.status == "expired"
    assert any("fail-safe 'no_action'" in a["message"] for a in snap["alerts"])
    assert s.kpi["approvals_expired"] == 1
    assert "approval.expired" in audit.actions()


def test_session_kpis_match_the_steps(scenario_1day):
    s = ConsoleSession(scenario_1day, TouController(), ApprovalPolicy())
    feeder = []
    for _ in range(12):
        snap = s.step()
        feeder.append(snap["feeder_kw"])
    k = snap["kpi"]
    dt = scenario_1day.dt_h
    assert k["steps"] == 12
    assert k["import_kwh"] == pytest.approx(sum(max(f, 0) for f in feeder) * dt, abs=0.01)
    assert k["peak_import_kw"] == pytest.approx(max(max(feeder), 0), abs=0.01)
    assert len(snap["vm_pu"]) == scenario_1day.feeder.n_bus
    assert snap["outlook"]["t"] and len(snap["outlook"]["feeder_kw"]) == 16
    low, high = snap["outlook"]["low_kw"], snap["outlook"]["high_kw"]
    assert all(lo <= hi for lo, hi in zip(low, high, strict=True))


def test_shield_has_the_last_word_and_its_corrections_are_asked_about(scenario_1day, audit, clock):
    sc = with_vmax(scenario_1day, 1.035)
    start = sc.start_step + int(round(11.5 / sc.dt_h))
    s = ConsoleSession(
        sc,
        TouController(),
        ApprovalPolicy(shield_clip_kw=1.0),
        audit=audit,
        start_step=start,
        clock=clock,
    )
    assert s.shield is not None
    pv0 = int(np.argmax(sc.fleet.pv.peak_kw))
    s.overrides.pin("pv", pv0, 0.0, "op", "operator")
    vmax = []
    for _ in range(4):
        snap = s.step()
        vmax.append(snap["vm_max_pu"])
    # the shield keeps the twin at the (tightened) band while requests are pending; it judges
    # the step on a nowcast from the last measured interval, so within a small error of it
    assert max(vmax) <= 1.035 + 0.002
    kinds = {r.action.kind for r in s.approvals.pending()}
    assert "shield_clip" in kinds
    req = next(r for r in s.approvals.pending() if r.action.kind == "shield_clip")
    just = req.action.justification
    assert "to keep voltages under the upper limit" in just.summary
    changes = next(d for d in just.drivers if d.startswith("Largest changes"))
    assert "pv_curtail[" not in changes and re.search(r"PV \d+ @ \S", changes), changes
    assert np.all(req.action.no_action_kw == 0)
    # pin a PV the shield is curtailing to no curtailment: it is curtailed anyway, and the
    # warning says why
    hot = next(c.asset for c in s.last_shield.changes if c.reason == "voltage_high")
    s.overrides.pin("pv", hot, 0.0, "op", "operator")
    s.step()
    (ov,) = [o for o in s.overrides.list() if o.index == hot]
    (warning,) = [w for w in ov.warnings if w.startswith("shield moved")]
    assert warning.startswith("shield moved this override from 0.00 to ")
    assert warning.endswith("kW: to keep voltages under the upper limit"), warning


def test_real_dispatch_binding_constraints_are_accepted():
    from gridsync.dispatch.plan import BindingConstraint

    b = BindingConstraint(
        "feeder_peak", "feeder peak import 400.0 kW is set at Fri 18:15", 3, -1.25, "kW"
    )
    plan = type("Plan", (), {"binding": [b]})()
    (out,) = binding_from_plan(plan)
    assert out["text"] == (
        "feeder peak import 400.0 kW is set at Fri 18:15; each extra kW of headroom is worth 1.25 EUR"
    )
