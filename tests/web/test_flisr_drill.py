"""The console's FLISR drill and outage-risk map over HTTP (``gridsync serve --resilience``).

A fault on Line 7-8 of the CIGRE MV study feeder, checked by hand against the network: the
feeder-1 breaker (Line 1-2) trips and Bus 2-11 lose voltage; the faulted section is Bus 7-8,
cut out by the two remote switches bounding it (Line 3-8 and Line 8-9; Bus 7's other line is the
open tie Line 6-7); after approval the next step recloses the breaker and brings back every
other feeder-1 load, so the restored load is the demand at Bus 3, 4, 5, 6, 9, 10 and 11 that
hour (net peak x the class profile), and only Bus 7-8 stay dark.
"""

from __future__ import annotations

import numpy as np
import pytest
from fastapi.testclient import TestClient

from gridsync.api.app import create_app
from gridsync.api.auth import TokenRegistry
from gridsync.dispatch.rules import TouController
from gridsync.hitl.policy import ApprovalPolicy
from gridsync.hitl.session import ConsoleSession
from gridsync.resilience.feeder import load_feeder_study, year_conditions
from gridsync.web.auth import UserStore
from gridsync.web.console import mount_console
from gridsync.web.resilience import attach_drill
from tests.web.test_console_api import login

FEEDER_1 = ["Bus 2", "Bus 3", "Bus 4", "Bus 5", "Bus 6", "Bus 7", "Bus 8", "Bus 9", "Bus 10", "Bus 11"]


@pytest.fixture(scope="module")
def mv_feeder():
    return load_feeder_study()


@pytest.fixture
def client(scenario_1day, mv_feeder):
    app = create_app(tokens=TokenRegistry())
    session = ConsoleSession(scenario_1day, TouController(), ApprovalPolicy(timeout_s=600))
    users = UserStore()
    users.add_demo_users()
    con = mount_console(app, session, users, run_loop=False)
    attach_drill(con, mv_feeder)
    with TestClient(app) as c:
        session.audit_sink = session.approvals.audit_sink = app.state.runtime.store
        session.step()
        yield c, session


def demand_kw(feeder, buses: list[int], when) -> float:
    """Demand at ``buses`` at the hour of ``when``: CIGRE peak x household/commercial profile."""
    cond = year_conditions()
    h = (when.dayofyear - 1) * 24 + when.hour
    net = feeder.net
    total = 0.0
    for name, bus, p_mw in zip(net.load.name, net.load.bus, net.load.p_mw, strict=True):
        if bus in buses:
            shape = cond.commercial_pu[h] if name.startswith("Load CI") else cond.residential_pu[h]
            total += p_mw * 1000.0 * shape
    return total


def test_drill_fault_is_located_isolated_and_restored_the_step_after_approval(client, mv_feeder):
    c, session = client
    token = login(c, "viewer")
    r = c.post("/console/api/flisr/fault", json={"line": "Line 7-8"}, headers={"X-CSRF-Token": token})
    assert r.status_code == 403 and "viewer" in r.json()["detail"]
    token = login(c, "operator")
    assert c.post("/console/api/flisr/fault", json={"line": "Line 7-8"}).status_code == 403  # CSRF
    h = {"X-CSRF-Token": token}
    r = c.post("/console/api/flisr/fault", json={"line": "Line 7-8"}, headers=h)
    assert r.status_code == 200 and r.json()["happens_at_step"] == session.twin.step

    snap = session.step()
    s, fault = snap["flisr"], snap["flisr"]["fault"]
    assert [p["id"] for p in snap["approvals"]["pending"]] == [fault["request_id"]]
    assert fault["breaker"] == "Line 1-2" and fault["lost_voltage"] == FEEDER_1
    assert fault["located"] == ["Line 7-8"] and fault["section_buses"] == ["Bus 7", "Bus 8"]
    assert sorted(fault["isolating_switches"]) == ["Line 3-8", "Line 8-9"]
    status = {b["name"]: b["status"] for b in s["buses"]}
    assert {b for b, st in status.items() if st in ("off", "faulted")} == set(FEEDER_1)
    pending = session.approvals.pending()
    assert [p.id for p in pending] == [fault["request_id"]] and pending[0].action.kind == "switching"
    text = pending[0].action.justification.text()
    for part in ("the readings point to Line 7-8", "voltage lost at Bus 2", "Line 8-9, Line 3-8",
                 "faulted section Bus 7, Bus 8", "stay off until the repair", "no islanding for MG-B"):
        assert part in text

    session.step()  # undecided: nothing switches
    assert c.get("/console/api/flisr").json()["by_status"]["restored"]["kw"] == 0.0
    r = c.post(f"/console/api/approvals/{fault['request_id']}/approve", json={}, headers=h)
    assert r.status_code == 200
    snap = session.step()
    s = snap["flisr"]
    status = {b["name"]: b["status"] for b in s["buses"]}
    assert {b for b, st in status.items() if st == "faulted"} == {"Bus 7", "Bus 8"}
    assert {b for b, st in status.items() if st == "off"} == set()
    restored = {b for b, st in status.items() if st == "restored"}
    assert restored == set(FEEDER_1) - {"Bus 7", "Bus 8"}
    when = session.scenario.index[snap["step"]]
    expected = demand_kw(mv_feeder, [3, 4, 5, 6, 9, 10, 11], when)
    assert s["by_status"]["restored"]["kw"] == pytest.approx(expected, rel=1e-9)
    assert s["by_status"]["faulted"]["kw"] == pytest.approx(demand_kw(mv_feeder, [7, 8], when))
    lines = {ln["name"]: ln for ln in s["lines"]}
    assert not lines["Line 3-8"]["closed"] and not lines["Line 8-9"]["closed"]
    assert lines["Line 1-2"]["status"] == "energised"
    assert "approved by operator" in s["events"][0]
    flisr_alerts = [a["message"] for a in snap["alerts"] if a["source"] == "flisr"]
    assert any("located on Line 7-8" in m for m in flisr_alerts)
    assert "approved by operator" in flisr_alerts[0]
    live = [b["vm_pu"] for b in s["buses"] if b["status"] != "faulted"]
    assert all(0.9 <= v <= 1.1 for v in live)

    r = c.post("/console/api/flisr/repair", json={}, headers=h)
    assert r.status_code == 200 and r.json() == {"repaired": "Line 7-8"}
    s = session.step()["flisr"]
    assert {b["status"] for b in s["buses"]} == {"normal"} and s["fault"] is None
    actions = [a["action"] for a in login_admin_audit(c)]
    assert "drill.fault" in actions and "drill.repair" in actions and "approval.approved" in actions


def login_admin_audit(c):
    login(c, "admin")
    return c.get("/console/api/audit?limit=50").json()


def test_drill_refuses_unknown_lines_ties_and_a_second_fault(client):
    c, session = client
    login(c, "viewer")
    page = c.get("/console/").text
    assert 'id="drill-card"' in page and 'id="risk-card"' in page and 'id="drill-form"' not in page
    h = {"X-CSRF-Token": login(c, "operator")}
    assert 'id="drill-form"' in c.get("/console/").text
    r = c.post("/console/api/flisr/fault", json={"line": "Line 99"}, headers=h)
    assert r.status_code == 422 and "'Line 99' is not a line" in r.json()["detail"]
    r = c.post("/console/api/flisr/fault", json={"line": "Line 6-7"}, headers=h)
    assert r.status_code == 422 and "normally open tie" in r.json()["detail"]
    assert c.post("/console/api/flisr/repair", json={}, headers=h).status_code == 409
    assert c.post("/console/api/flisr/fault", json={"line": "Line 2-3"}, headers=h).status_code == 200
    r = c.post("/console/api/flisr/fault", json={"line": "Line 9-10"}, headers=h)
    assert r.status_code == 409 and "already active" in r.json()["detail"]
    s = session.step()["flisr"]
    rid = s["fault"]["request_id"]
    off = {b["name"] for b in s["buses"] if b["status"] in ("off", "faulted")}
    assert s["fault"]["located"] == ["Line 2-3"] and s["fault"]["section_buses"] == []
    assert sorted(s["fault"]["isolating_switches"]) == ["Line 2-3"]  # open at both ends
    n = len(session.approvals.get(rid).action.asset_index)
    r = c.post(f"/console/api/approvals/{rid}/edit", json={"values_kw": [0.0] * n}, headers=h)
    assert r.status_code == 422 and "outside" in r.json()["detail"]  # a plan is all or nothing
    assert c.post("/console/api/flisr/repair", json={}, headers=h).status_code == 409  # undecided
    assert c.post(f"/console/api/approvals/{rid}/reject", json={}, headers=h).status_code == 200
    s = session.step()["flisr"]
    assert {b["name"] for b in s["buses"] if b["status"] in ("off", "faulted")} == off
    assert "rejected; fail-safe no_action" in s["events"][0]
    assert c.post("/console/api/flisr/repair", json={}, headers=h).status_code == 200
    # repaired after approval but before the next step: the stale plan is not applied
    assert c.post("/console/api/flisr/fault", json={"line": "Line 12-13"}, headers=h).status_code == 200
    rid = session.step()["flisr"]["fault"]["request_id"]
    assert c.post(f"/console/api/approvals/{rid}/approve", json={}, headers=h).status_code == 200
    assert c.post("/console/api/flisr/repair", json={}, headers=h).status_code == 200
    s = session.step()["flisr"]
    assert {b["status"] for b in s["buses"]} == {"normal"}
    assert [ln["name"] for ln in s["lines"] if ln["closed"] != ln["normally_closed"]] == []
    c.app.state.console.drill, drill = None, c.app.state.console.drill
    assert c.get("/console/api/flisr").status_code == 404
    assert 'id="drill-card"' not in c.get("/console/").text
    c.app.state.console.drill = drill


def test_risk_map_follows_the_weather_model(client, mv_feeder):
    """A cable on a day no hotter than 30 C fails at its annual rate scaled by the heat
    normalisation alone (1 / mean over the year of 1 + 0.1 max(0, T - 30)); a what-if storm
    raises the overhead lines' risk and switches the posture to pre-charging."""
    c, _ = client
    login(c, "viewer")
    cond = year_conditions()
    temps = cond.temp_air_c[:8760].reshape(365, 24)
    day = int(np.flatnonzero(temps.max(axis=1) <= 30.0)[0])
    heat_norm = np.mean(1.0 + 0.1 * np.maximum(0.0, cond.temp_air_c[:8760] - 30.0))
    r = c.get(f"/console/api/risk?day={day}").json()
    line = next(ln for ln in r["lines"] if ln["name"] == "Line 3-4")
    e = mv_feeder.line_by_name("Line 3-4")
    assert line["kind"] == "cable"
    assert line["expected_faults"] == pytest.approx(
        mv_feeder.failure_rate_per_yr[e] * 24 / 8760 / heat_norm, rel=1e-9)
    assert line["drivers"]["max_temp_c"] == pytest.approx(temps[day].max())
    tie = next(ln for ln in r["lines"] if ln["name"] == "Line 6-7")
    assert tie["normally_open"] and tie["expected_faults"] == 0.0 and tie["risk_ratio"] is None
    storm = c.get(f"/console/api/risk?day={day}&peak_gust_m_s=35").json()
    ohl = [ln for ln in storm["lines"] if ln["kind"] == "overhead" and not ln["normally_open"]]
    assert ohl and all(ln["risk_ratio"] > storm["threshold_ratio"] for ln in ohl)
    assert storm["posture"]["high_risk"] and "pre-charge" in storm["posture"]["actions"][0]
    peak = 35.0 * np.sin(np.pi * 11 / 23) ** 2  # the storm's sin^2 shape over 24 hourly points
    assert storm["lines"][0]["drivers"]["peak_gust_m_s"] == pytest.approx(max(peak, 1.5 * cond.wind_speed_m_s[24 * day:24 * day + 24].max()))
    cable_before = [ln["expected_faults"] for ln in r["lines"] if ln["kind"] == "cable"]
    cable_storm = [ln["expected_faults"] for ln in storm["lines"] if ln["kind"] == "cable"]
    assert cable_storm == pytest.approx(cable_before)
    assert c.get("/console/api/risk?day=400").status_code == 422
