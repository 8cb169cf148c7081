"""The console over HTTP: log-in, roles, CSRF, approvals, overrides, policy, audit."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from gridsync.api.app import create_app
from gridsync.api.auth import TokenRegistry
from gridsync.dispatch.rules import TouController
from gridsync.hitl.policy import ApprovalPolicy
from gridsync.hitl.session import ConsoleSession
from gridsync.web.auth import DEMO_PASSWORD, UserStore
from gridsync.web.console import mount_console
from tests.hitl.conftest import make_action


@pytest.fixture
def client(scenario_1day):
    app = create_app(tokens=TokenRegistry())
    session = ConsoleSession(scenario_1day, TouController(), ApprovalPolicy())
    users = UserStore()
    users.add_demo_users()
    mount_console(app, session, users, run_loop=False)
    with TestClient(app) as c:
        session.audit_sink = app.state.runtime.store
        session.approvals.audit_sink = session.overrides.audit_sink = session.audit_sink
        session.step()
        yield c, session


def login(c: TestClient, user: str, password: str = DEMO_PASSWORD) -> str:
    page = c.get("/console/login")
    tok = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    r = c.post(
        "/console/login",
        data={"username": user, "password": password, "csrf_token": tok},
        follow_redirects=False,
    )
    if r.status_code != 303:
        return ""
    cookie = r.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Max-Age=3600" in cookie
    dash = c.get("/console/")
    return re.search(r'name="csrf-token" content="([^"]+)"', dash.text).group(1)


def test_login_required_and_wrong_password(client):
    c, _ = client
    assert c.get("/console/", follow_redirects=False).status_code == 303
    assert c.get("/console/api/state").status_code == 401
    assert c.get("/console/events").status_code == 401
    assert login(c, "operator", "wrong") == ""
    page = c.get("/console/login")
    r = c.post(
        "/console/login",
        data={"username": "operator", "password": DEMO_PASSWORD, "csrf_token": "forged"},
        follow_redirects=False,
    )
    assert r.status_code == 401 and "form expired" in r.text and page.status_code == 200


def test_operator_approves_with_csrf(client):
    c, session = client
    req = session.approvals.raise_request(make_action())
    token = login(c, "operator")
    state = c.get("/console/api/state").json()
    assert state["feeder_kw"] is not None
    no_csrf = c.post(f"/console/api/approvals/{req.id}/approve", json={})
    assert no_csrf.status_code == 403 and "CSRF" in no_csrf.json()["detail"]
    r = c.post(
        f"/console/api/approvals/{req.id}/approve",
        json={"note": "ok"},
        headers={"X-CSRF-Token": token},
    )
    assert r.status_code == 200 and r.json()["status"] == "approved"
    again = c.post(
        f"/console/api/approvals/{req.id}/reject", json={}, headers={"X-CSRF-Token": token}
    )
    assert again.status_code == 409
    bad = session.approvals.raise_request(make_action())
    r = c.post(
        f"/console/api/approvals/{bad.id}/edit",
        json={"values_kw": [1.0, 99.0]},
        headers={"X-CSRF-Token": token},
    )
    assert r.status_code == 422 and "PV 1: 99.0 kW is outside" in r.json()["detail"]


def test_viewer_cannot_approve_or_override(client):
    c, session = client
    req = session.approvals.raise_request(make_action())
    token = login(c, "viewer")
    assert c.get("/console/api/state").status_code == 200
    r = c.post(f"/console/api/approvals/{req.id}/approve", json={}, headers={"X-CSRF-Token": token})
    assert r.status_code == 403 and "viewer" in r.json()["detail"]
    r = c.post(
        "/console/api/overrides",
        json={"asset_kind": "battery", "index": 0, "mode": "pin", "setpoint_kw": 1},
        headers={"X-CSRF-Token": token},
    )
    assert r.status_code == 403
    assert c.get("/console/api/audit").status_code == 403
    assert req.pending


def test_override_policy_audit_and_logout(client):
    c, session = client
    token = login(c, "admin")
    h = {"X-CSRF-Token": token}
    r = c.post(
        "/console/api/overrides",
        json={"asset_kind": "battery", "index": 0, "mode": "pin", "setpoint_kw": 99},
        headers=h,
    )
    assert r.status_code == 422 and "battery 0 @ " in r.json()["detail"]
    assert "got 99.00 kW" in r.json()["detail"]
    r = c.post(
        "/console/api/overrides",
        json={"asset_kind": "battery", "index": 0, "mode": "pin", "setpoint_kw": 1},
        headers=h,
    )
    assert r.status_code == 200 and r.json()["label"].startswith("battery 0 @ ")
    r = c.post(
        "/console/api/overrides", json={"asset_kind": "boat", "index": 0, "mode": "pin"}, headers=h
    )
    assert r.status_code == 422 and "'boat'" in r.json()["detail"]
    session.step()
    state = c.get("/console/api/state").json()
    assert state["overrides"][0]["asset_kind"] == "battery"
    r = c.post("/console/api/policy", json={"timeout_s": -1}, headers=h)
    assert r.status_code == 422 and "policy.timeout_s" in r.json()["detail"]
    r = c.post("/console/api/policy", json={"timeout_s": 12}, headers=h)
    assert r.status_code == 200 and session.policy.timeout_s == 12
    assert session.approvals.policy.timeout_s == 12
    actions = [a["action"] for a in c.get("/console/api/audit").json()]
    assert {"login", "override.pin", "policy.update"} <= set(actions)
    dash = c.get("/console/")
    assert (
        c.post("/console/logout", data={"csrf_token": token}, follow_redirects=False).status_code
        == 303
    )
    assert c.get("/console/api/state").status_code == 401
    assert dash.status_code == 200


def test_static_assets_are_local(client):
    c, _ = client
    login(c, "viewer")
    page = c.get("/console/").text
    assert "http://" not in page and "https://" not in page
    js = c.get("/console/vendor/plotly.min.js")
    assert js.status_code == 200 and len(js.content) > 1_000_000
    assert c.get("/console/static/console.js").status_code == 200


def test_approval_events_are_mirrored_on_the_runtime_bus(client):
    import time

    c, session = client
    req = session.approvals.raise_request(make_action())
    rt = c.app.state.runtime
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        mirrored = [a for a in rt.state.approvals if a.get("id") == req.id]
        if mirrored:
            break
        time.sleep(0.05)
    assert mirrored and mirrored[0]["kind"] == "approval_request"
    assert mirrored[0]["status"] == "pending"


def test_a_nul_in_a_console_note_is_refused_and_nothing_is_decided(client):
    c, session = client
    req = session.approvals.raise_request(make_action())
    token = login(c, "operator")
    r = c.post(
        f"/console/api/approvals/{req.id}/approve",
        json={"note": "fine\x00"},
        headers={"X-CSRF-Token": token},
    )
    assert r.status_code == 422 and "NUL" in r.json()["detail"]
    assert req.pending
    rows = session.audit_sink.audit_log(limit=100)
    assert [a["action"] for a in rows if a["target"] == req.id] == ["approval.raised"]
