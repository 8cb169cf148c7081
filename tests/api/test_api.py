"""REST API through FastAPI's TestClient: roles, 401/403, data flow from telemetry to history."""

from __future__ import annotations

import json
import time

import pytest
from fastapi.testclient import TestClient

from gridsync.api.app import create_app
from gridsync.api.auth import TokenConfigError, TokenRegistry, hash_token
from gridsync.runtime.runtime import Runtime
from gridsync.runtime.scenarios import ScenarioCatalog


@pytest.fixture
def api(tmp_path):
    reg = TokenRegistry()
    tok = {role: reg.issue(f"test-{role}", role) for role in ("operator", "viewer", "device")}
    rt = Runtime(step_s=0.1, catalog=ScenarioCatalog(upload_dir=tmp_path / "scenarios"))
    with TestClient(create_app(rt, tokens=reg)) as client:
        yield client, tok, rt


def h(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def wait_for(fn, timeout=5.0):
    end = time.time() + timeout
    while time.time() < end:
        out = fn()
        if out:
            return out
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def telemetry(seq: int, value_w: float = 1500.0, device="meter-1") -> dict:
    return {
        "source": "gw-1",
        "seq": seq,
        "readings": [
            {
                "device_id": device,
                "quantity": "p",
                "unit": "W",
                "value": value_w,
                "ts": time.time(),
            },
            {"device_id": device, "quantity": "v", "unit": "pu", "value": 1.03, "ts": time.time()},
        ],
    }


def test_health_is_open_and_openapi_lists_the_endpoints(api):
    client, _, _ = api
    assert client.get("/health").json()["status"] == "ok"
    paths = client.get("/openapi.json").json()["paths"]
    for p in ("/api/v1/state", "/api/v1/plans", "/api/v1/history/readings", "/api/v1/telemetry"):
        assert p in paths


@pytest.mark.parametrize(
    ("method", "path", "role", "code"),
    [
        ("get", "/api/v1/state", None, 401),
        ("get", "/api/v1/state", "bogus", 401),
        ("get", "/api/v1/state", "device", 403),
        ("get", "/api/v1/state", "viewer", 200),
        ("post", "/api/v1/plans", "viewer", 403),
        ("post", "/api/v1/approvals", "device", 403),
        ("get", "/api/v1/audit", "viewer", 403),
        ("post", "/api/v1/telemetry", "viewer", 403),
        ("post", "/api/v1/scenarios/select", "viewer", 403),
    ],
)
def test_authentication_and_roles(api, method, path, role, code):
    client, tok, _ = api
    headers = {} if role is None else h(tok.get(role, "gs_not-a-real-token-123456"))
    body = {"setpoints": {}} if method == "post" else None
    r = client.request(method, path, headers=headers, json=body)
    assert r.status_code == code, r.text
    if code == 401:
        assert r.headers["www-authenticate"] == "Bearer"


def test_device_telemetry_reaches_state_and_history(api):
    client, tok, rt = api
    r = client.post("/api/v1/telemetry", headers=h(tok["device"]), json=telemetry(1))
    assert r.status_code == 202 and r.json()["readings"] == 2

    def state():
        snap = client.get("/api/v1/state", headers=h(tok["viewer"])).json()["snapshot"]
        return snap if snap and "meter-1/p" in snap["series"] else None

    rt.state.twin = {
        "kind": "twin",
        "step": 7,
        "vm_pu": __import__("numpy").ones(3),
        "feeder_kw": 1.5,
    }
    series = wait_for(state)["series"]
    twin = client.get("/api/v1/state", headers=h(tok["viewer"])).json()["twin"]
    assert twin == {"kind": "twin", "step": 7, "feeder_kw": 1.5}
    assert series["meter-1/p"]["value"] == pytest.approx(1.5)  # W -> kW
    assert series["meter-1/v"]["value"] == pytest.approx(1.03)

    def history():
        out = client.get(
            "/api/v1/history/readings", params={"device_id": "meter-1"}, headers=h(tok["viewer"])
        ).json()
        return out if out["n"] == 2 else None

    hist = wait_for(history)
    assert dict(zip(hist["quantity"], hist["unit"], strict=True)) == {"p": "kW", "v": "pu"}


def test_bad_and_duplicate_telemetry_is_refused_and_dead_lettered(api):
    client, tok, _ = api
    bad = telemetry(1)
    bad["readings"][0]["value"] = "1500"  # wrong type
    r = client.post("/api/v1/telemetry", headers=h(tok["device"]), json=bad)
    assert r.status_code == 422 and "readings.0.value" in r.json()["detail"][0]["msg"]
    assert (
        client.post("/api/v1/telemetry", headers=h(tok["device"]), json=telemetry(2)).status_code
        == 202
    )
    dup = client.post("/api/v1/telemetry", headers=h(tok["device"]), json=telemetry(2))
    assert dup.status_code == 422 and "duplicate" in dup.json()["detail"][0]["msg"]

    def dead():
        ev = client.get(
            "/api/v1/history/events", params={"kind": "deadletter"}, headers=h(tok["viewer"])
        ).json()
        return ev if len(ev) == 2 else None

    reasons = [e["message"] for e in wait_for(dead)]
    assert any("duplicate" in m for m in reasons) and any("value" in m for m in reasons)


def test_columnar_batch_accepts_good_rows_and_counts_bad_ones(api):
    client, tok, _ = api
    batch = {"source": "dc-1", "seq": 1, "device_id": ["m-a", "m-b", "m-c"], "quantity": "p",
             "unit": "W", "ts_s": time.time(), "value": [1000.0, "DROP TABLE", 250.0]}  # fmt: skip
    r = client.post("/api/v1/telemetry", headers=h(tok["device"]), json=batch)
    assert r.status_code == 202, r.text
    assert r.json()["readings"] == 2 and r.json()["rejected_rows"] == 1

    def stored():
        got = client.get(
            "/api/v1/history/readings", params={"device_id": "m-c"}, headers=h(tok["viewer"])
        )
        return got.json() if got.status_code == 200 and got.json()["n"] else None

    hist = wait_for(stored)
    assert hist["value"] == [0.25] and hist["unit"] == ["kW"]


def test_operator_plan_approval_alert_and_audit(api):
    client, tok, rt = api
    op, viewer = h(tok["operator"]), h(tok["viewer"])
    assert client.get("/api/v1/plans/current", headers=viewer).status_code == 404
    r = client.post(
        "/api/v1/plans",
        headers=op,
        json={"plan_id": "manual-1", "setpoints": {"battery_kw": [1.0, -2.0]}, "note": "peak"},
    )
    assert r.status_code == 202 and r.json()["plan_id"] == "manual-1"
    cur = wait_for(
        lambda: client.get("/api/v1/plans/current", headers=viewer).json().get("plan_id")
    )
    assert cur == "manual-1"
    stored = wait_for(lambda: client.get("/api/v1/plans", headers=viewer).json())
    assert stored[0]["payload"]["setpoints"]["battery_kw"] == [1.0, -2.0]
    r = client.post(
        "/api/v1/approvals", headers=op, json={"plan_id": "manual-1", "decision": "approve"}
    )
    assert r.status_code == 202
    assert (
        wait_for(lambda: client.get("/api/v1/approvals", headers=viewer).json())[0]["by"]
        == "test-operator"
    )
    bad = client.post("/api/v1/approvals", headers=op, json={"plan_id": "x", "decision": "maybe"})
    assert bad.status_code == 422

    rt.state.add_alert({"kind": "voltage", "severity": "warning", "message": "1.07 pu at bus 5"})
    alert_id = client.get("/api/v1/alerts", headers=viewer).json()[0]["id"]
    assert (
        client.post(f"/api/v1/alerts/{alert_id}/ack", headers=op).json()["acknowledged_by"]
        == "test-operator"
    )
    assert client.get("/api/v1/alerts?unacknowledged=true", headers=viewer).json() == []
    assert client.post("/api/v1/alerts/999/ack", headers=op).status_code == 404
    actions = [a["action"] for a in client.get("/api/v1/audit", headers=op).json()]
    assert actions == ["alert.ack", "plan.approve", "plan.submit"]


def test_scenario_list_upload_and_select(api):
    client, tok, rt = api
    op = h(tok["operator"])
    names = [s["name"] for s in client.get("/api/v1/scenarios", headers=h(tok["viewer"])).json()]
    assert "default" in names
    bad = client.post(
        "/api/v1/scenarios", headers=op, json={"name": "neg", "toml": "[fleet.ev]\ncount = -3\n"}
    )
    assert bad.status_code == 422 and "fleet.ev.count" in bad.json()["detail"][0]["msg"]
    ok = client.post(
        "/api/v1/scenarios",
        headers=op,
        json={"name": "tiny", "toml": "name = 'tiny'\n[time]\ndays = 1\n"},
    )
    assert ok.status_code == 201 and ok.json()["days"] == 1
    assert (
        client.post("/api/v1/scenarios/select", headers=op, json={"name": "nope"}).status_code
        == 404
    )
    sel = client.post("/api/v1/scenarios/select", headers=op, json={"name": "tiny", "days": 1})
    assert sel.json()["name"] == "tiny" and rt.catalog.current == "tiny"


def test_token_registry_hashes_tokens_and_reads_env_and_file(tmp_path):
    token = "gs_" + "a" * 40
    reg = TokenRegistry.from_env({"GRIDSYNC_API_TOKENS": f"viewer:{token}"})
    assert reg.lookup(token).role == "viewer" and reg.lookup(token + "x") is None
    assert token not in repr(reg._by_digest)
    f = tmp_path / "tokens.toml"
    f.write_text(f'[[token]]\nname = "ops"\nrole = "operator"\nsha256 = "{hash_token(token)}"\n')
    reg2 = TokenRegistry.from_env({"GRIDSYNC_API_TOKENS_FILE": str(f)})
    assert reg2.lookup(token).name == "ops"
    f.write_text('[[token]]\nname = "x"\nrole = "admin"\nsha256 = "00"\n')
    with pytest.raises(TokenConfigError, match="role 'admin'"):
        TokenRegistry.from_file(f)
    with pytest.raises(TokenConfigError, match="role:token"):
        TokenRegistry.from_env({"GRIDSYNC_API_TOKENS": "nocolon"})
    assert json.dumps(reg2.lookup(token).__dict__)


@pytest.mark.parametrize(
    ("since", "code"),
    [("2024-01-01", 200), ("2024-01-01T00:00:00Z", 200), ("2024-01-01T01:00:00+01:00", 200),
     ("0.5", 422), ("1e5", 422), ("nan", 422), ("tomorrow", 422)],
)  # fmt: skip
def test_query_times_are_iso_8601_dates_not_numbers(api, since, code):
    client, tok, _ = api
    r = client.get("/api/v1/history/events", params={"since": since}, headers=h(tok["viewer"]))
    assert r.status_code == code, r.text
    if code == 422:
        assert r.json()["detail"][0]["loc"] == ["query", "since"]
