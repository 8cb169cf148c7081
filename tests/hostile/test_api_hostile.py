"""Hostile input against the live service's HTTP side (issue 25), on the embedded default
and on the production path (NATS JetStream + PostgreSQL): every case gets a 4xx naming the
problem, never a 500, and leaves nothing half-done (no decision without its audit row, no
audit row for nothing, no unstorable plan on the bus)."""

from __future__ import annotations

import json
import re
import socket
import time
import uuid

import httpx
import pytest

from gridsync.sim.controller import Setpoints
from tests.conftest import require_service
from tests.hitl.conftest import make_action
from tests.hostile.live_api import LiveService, port_open

BACKENDS = ("embedded", "nats-postgres")


@pytest.fixture(scope="module", params=BACKENDS)
def live(request, tmp_path_factory):
    if request.param == "nats-postgres":
        if not port_open(4222):
            require_service("NATS JetStream", "nothing answers on 127.0.0.1:4222")
        if not port_open(5432):
            require_service("PostgreSQL", "nothing answers on 127.0.0.1:5432")
    with LiveService(request.param, tmp_path_factory.mktemp(request.param)) as svc:
        yield svc


@pytest.fixture
def api(live):
    auth = {"Authorization": f"Bearer {live.token}"}
    with httpx.Client(base_url=live.base, headers=auth, timeout=20) as c:
        yield c


def audit_rows(live, target: str) -> list[dict]:
    return [r for r in live.svc.runtime.store.audit_log(limit=1000) if r["target"] == target]


def loc(response: httpx.Response) -> list:
    """Where the (first) validation error of a documented 422 body points."""
    assert response.status_code == 422, response.text
    return response.json()["detail"][0]["loc"]


# approvals --------------------------------------------------------------------------------
def test_nul_in_an_approval_comment_is_refused_and_nothing_is_decided(live, api):
    req = live.svc.console.session.approvals.raise_request(make_action())
    r = api.post(
        "/api/v1/approvals", json={"plan_id": req.id, "decision": "approve", "comment": "ok\x00"}
    )
    assert loc(r) == ["body", "comment"]
    assert req.pending
    assert [a["action"] for a in audit_rows(live, req.id)] == ["approval.raised"]
    r = api.post("/api/v1/approvals", json={"plan_id": req.id, "decision": "approve"})
    assert r.status_code == 202, r.text
    assert req.status == "approved" and req.decided_by == "hostile-operator"
    assert [a["action"] for a in audit_rows(live, req.id)] == [
        "approval.approved",
        "approval.raised",
    ]


def test_unknown_or_decided_approvals_are_404_and_409_without_audit(live, api):
    ghost = "ghost-" + uuid.uuid4().hex[:8]
    r = api.post("/api/v1/approvals", json={"plan_id": ghost, "decision": "reject"})
    assert r.status_code == 404 and ghost in r.json()["detail"]
    assert audit_rows(live, ghost) == []
    req = live.svc.console.session.approvals.raise_request(make_action())
    assert api.post("/api/v1/approvals", json={"plan_id": req.id, "decision": "reject"}).is_success
    again = api.post("/api/v1/approvals", json={"plan_id": req.id, "decision": "approve"})
    assert again.status_code == 409 and "already rejected" in again.json()["detail"]
    assert req.status == "rejected"
    assert [a["action"] for a in audit_rows(live, req.id)] == [
        "approval.rejected",
        "approval.raised",
    ]
    # a stored plan can be decided once, then 409
    pid = "hx-plan-" + uuid.uuid4().hex[:8]
    assert api.post("/api/v1/plans", json={"plan_id": pid, "setpoints": {}}).status_code == 202
    assert api.post("/api/v1/approvals", json={"plan_id": pid, "decision": "approve"}).is_success
    r = api.post("/api/v1/approvals", json={"plan_id": pid, "decision": "reject"})
    assert r.status_code == 409
    assert [a["action"] for a in audit_rows(live, pid)] == ["plan.approve", "plan.submit"]


# plans ------------------------------------------------------------------------------------
def _plan_cases(n_battery: int) -> list[tuple[str, bytes, list]]:
    ok = [0.0] * n_battery
    return [
        ("valid_to 1e17", {"setpoints": {}, "valid_to_s": 1e17}, ["body", "valid_to_s"]),
        ("valid_from negative", {"setpoints": {}, "valid_from_s": -5}, ["body", "valid_from_s"]),
        (
            "NaN setpoint",
            '{"setpoints": {"battery_kw": [NaN]}}',
            ["body", "setpoints", "battery_kw", 0],
        ),  # fmt: skip
        (
            "infinite setpoint",
            {"setpoints": {"battery_kw": [1e400, *ok[1:]]}},
            ["body", "setpoints", "battery_kw", 0],
        ),  # fmt: skip
        ("short list", {"setpoints": {"battery_kw": [1.0]}}, ["body", "setpoints", "battery_kw"]),
        ("NUL in note", {"setpoints": {}, "note": "x\x00y"}, ["body", "note"]),
        ("unknown kind", {"setpoints": {"boat_kw": [1.0]}}, ["body", "setpoints", "boat_kw"]),
    ]


def test_unstorable_plans_are_refused_at_the_boundary_and_good_ones_still_flow(live, api):
    n_battery = len(Setpoints.zeros(live.svc.console.session.scenario.fleet).battery_kw)
    bad_ids = []
    for k, (name, body, where) in enumerate(_plan_cases(n_battery)):
        bad_ids.append(f"hx-bad-{k}-{uuid.uuid4().hex[:8]}")
        raw = json.dumps({**body, "plan_id": bad_ids[-1]}) if isinstance(body, dict) else body
        r = api.post("/api/v1/plans", content=raw, headers={"Content-Type": "application/json"})
        assert r.status_code == 422, (name, r.text)
        assert loc(r) == where, name
    pid = "hx-good-" + uuid.uuid4().hex[:8]
    good = {"plan_id": pid, "setpoints": {"battery_kw": [0.5] * n_battery}, "note": "fine"}
    assert api.post("/api/v1/plans", json=good).status_code == 202
    deadline = time.monotonic() + 20
    while not live.svc.runtime.store.has_plan(pid):
        assert time.monotonic() < deadline, "a good plan after the hostile ones was not stored"
        time.sleep(0.1)
    assert not any(live.svc.runtime.store.has_plan(b) for b in bad_ids)
    assert all(audit_rows(live, b) == [] for b in bad_ids)


# query parameters ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("path", "params", "where"),
    [
        ("/api/v1/history/events", {"kind": "\x00"}, ["query", "kind"]),
        ("/api/v1/history/readings", {"device_id": "\x00"}, ["query", "device_id"]),
        ("/api/v1/history/readings", {"quantity": "p\x00"}, ["query", "quantity"]),
        ("/api/v1/history/events", {"since": "0.5"}, ["query", "since"]),
        ("/api/v1/history/readings", {"start": "0.5"}, ["query", "start"]),
        ("/api/v1/plans", {"since": "0.5"}, ["query", "since"]),
    ],
)
def test_hostile_query_parameters_are_422(api, path, params, where):
    assert loc(api.get(path, params=params)) == where


# console log-in -----------------------------------------------------------------------------
def _login_form(c: httpx.Client) -> str:
    page = c.get("/console/login")
    return re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)


def test_console_login_with_nul_in_the_user_name_is_refused(live):
    with httpx.Client(base_url=live.base, timeout=20) as c:
        r = c.post(
            "/console/login",
            data={"username": "op\x00erator", "password": "x", "csrf_token": _login_form(c)},
        )
    assert r.status_code in (400, 401), r.text
    assert "user name" in r.text


def _post_login(c: httpx.Client, user: str, password: str) -> httpx.Response:
    data = {"username": user, "password": password, "csrf_token": _login_form(c)}
    return c.post("/console/login", data=data, follow_redirects=False)


def test_login_flood_is_throttled_and_forms_are_single_use(live):
    """20 wrong passwords then the right one: refused until the lock-out ends (on main the
    right one got in); one audit row for the lock-out instead of one per failure."""
    from gridsync.web.auth import DEMO_PASSWORD

    audit_before = len(live.svc.runtime.store.audit_log(limit=10_000))
    codes = []
    with httpx.Client(base_url=live.base, timeout=20) as c:
        for _ in range(20):
            codes.append(_post_login(c, "operator", "wrong-password").status_code)
        right = _post_login(c, "operator", DEMO_PASSWORD)
        assert codes[:4] == [401] * 4 and set(codes[4:]) == {429}, codes
        assert right.status_code == 429 and int(right.headers["retry-after"]) >= 1
        assert "Too many failed log-ins" in right.text
        # a form is good for one post only
        token = _login_form(c)
        data = {"username": "nobody", "password": "x", "csrf_token": token}
        assert c.post("/console/login", data=data).status_code == 401
        replay = c.post("/console/login", data={**data, "username": "operator"})
        assert replay.status_code == 401 and "form expired" in replay.text
        time.sleep(2.2)  # the first lock-out lasts 2 s
        ok = _post_login(c, "operator", DEMO_PASSWORD)
        assert ok.status_code == 303, ok.text
    rows = live.svc.runtime.store.audit_log(limit=10_000)
    new = [r["action"] for r in rows[: len(rows) - audit_before]]
    assert sorted(new) == ["login", "login.locked"], new


# request bodies -----------------------------------------------------------------------------
def _headers_only(live, path: str, headers: dict[str, str]) -> tuple[int, str]:
    """Send a POST's headers promising a 48 MB body, send no body, read the answer: a
    server that reads the body before answering never answers (socket timeout)."""
    lines = [f"POST {path} HTTP/1.1", f"Host: 127.0.0.1:{live.port}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    with socket.create_connection(("127.0.0.1", live.port), timeout=15) as s:
        s.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        raw = b""
        while b"\r\n\r\n" not in raw:
            raw += s.recv(65536)
        head, _, body = raw.partition(b"\r\n\r\n")
        length = int(re.search(rb"content-length: (\d+)", head, re.I).group(1))
        while len(body) < length:
            body += s.recv(65536)
    text = (head + b"\r\n\r\n" + body).decode("latin-1")
    return int(text.split(" ", 2)[1]), text


def test_big_bodies_are_refused_before_they_are_read(live, api):
    big = {"Content-Type": "application/json", "Content-Length": str(48 * 2**20)}
    status, head = _headers_only(live, "/api/v1/telemetry", big)
    assert status == 401 and "www-authenticate: bearer" in head.lower()
    status, _ = _headers_only(live, "/api/v1/telemetry", {**big, "Authorization": "Bearer nope"})
    assert status == 401
    authed = {**big, "Authorization": f"Bearer {live.token}"}
    status, head = _headers_only(live, "/api/v1/telemetry", authed)
    assert status == 413 and "exceeds" in head
    # no Content-Length (chunked): cut off once the limit is passed
    chunks = (b"[" + b"0," * 65536 for _ in range(64))  # 8 MiB > the 2 MiB default
    r = api.post("/api/v1/plans", content=chunks, headers={"Content-Type": "application/json"})
    assert r.status_code == 413
    status, _ = _headers_only(live, "/console/api/overrides", big)
    assert status == 401


# headers and docs ---------------------------------------------------------------------------
def test_security_headers_and_offline_docs(live):
    with httpx.Client(base_url=live.base, timeout=20) as c:
        for path in ("/health", "/docs", "/console/login", "/api/v1/state", "/openapi.json"):
            h = c.get(path).headers
            assert "frame-ancestors 'none'" in h["content-security-policy"], path
            assert "script-src 'self';" in h["content-security-policy"], path
            assert h["x-frame-options"] == "DENY" and h["x-content-type-options"] == "nosniff"
            assert h["referrer-policy"] == "no-referrer"
        page = c.get("/docs").text
        assert not re.search(r"(src|href)=\"(https?:)?//", page), "docs load from another host"
        assert "<script>" not in page  # nothing inline: the CSP allows none
        for src in re.findall(r'(?:src|href)="(/docs/[^"]+)"', page):
            r = c.get(src)
            assert r.status_code == 200 and len(r.content) > 100, src
        assert "SwaggerUIBundle" in c.get("/docs/assets/swagger-ui-bundle.js").text
        assert c.get("/docs/assets/..%2Fconsts.py").status_code == 404
