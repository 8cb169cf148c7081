"""``gridsync serve``'s single service: the console twin is what the REST API and store show.

The service is started in-process on a free port (uvicorn, the same path the CLI takes) with
the demo scenario; the test then compares the API's view with the console session's own
record of the steps it took, and decides a console approval request through the REST API.
"""

from __future__ import annotations

import asyncio
import socket
import uuid
from datetime import UTC, datetime

import httpx
import pytest
import uvicorn
from click.testing import CliRunner

from gridsync.api.auth import TokenRegistry
from gridsync.cli.main import cli
from gridsync.runtime.service import start_service, stop_service


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def broker_answers(host: str = "127.0.0.1", port: int = 1883) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


async def _until(predicate, timeout_s: float, what: str):
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        value = await predicate()
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            pytest.fail(f"timed out after {timeout_s:g} s waiting for {what}")
        await asyncio.sleep(0.1)


def test_serve_help_describes_the_single_service():
    r = CliRunner().invoke(cli, ["serve", "--help"])
    assert r.exit_code == 0, r.output
    for needle in ("--mqtt", "--bus", "--store", "/api/v1/state", "gridsync runtime"):
        assert needle in r.output


NATS_PG = ("nats://127.0.0.1:4222", "postgresql://postgres@127.0.0.1:5432/test")
CONSOLE_ENV = (
    "GRIDSYNC_CONSOLE_STEP_S",
    "GRIDSYNC_CONSOLE_TIMEOUT_S",
    "GRIDSYNC_CONSOLE_CONTROLLER",
)


@pytest.mark.parametrize(
    ("transport", "bus_url", "store_url"),
    [
        ("inprocess", "inprocess", "sqlite:///:memory:"),
        ("mqtt", "inprocess", "sqlite:///:memory:"),
        ("mqtt", *NATS_PG),
    ],
    ids=["inprocess", "mqtt", "mqtt-nats-postgres"],
)
def test_api_and_store_follow_the_console_twin(transport, bus_url, store_url, monkeypatch):
    for var in CONSOLE_ENV:
        monkeypatch.delenv(var, raising=False)
    # the bridge's client id follows the store URL; sessions running this suite concurrently
    # share the PostgreSQL URL and must not take over each other's MQTT session
    monkeypatch.setenv("GRIDSYNC_MQTT_CLIENT_ID", f"test-serve-{uuid.uuid4().hex[:10]}")
    from tests.conftest import require_service

    if transport == "mqtt" and not broker_answers():
        require_service("Mosquitto MQTT", "nothing answers on 127.0.0.1:1883")
    if bus_url.startswith("nats") and not broker_answers(port=4222):
        require_service("NATS JetStream", "nothing answers on 127.0.0.1:4222")
    if store_url.startswith("postgresql") and not broker_answers(port=5432):
        require_service("PostgreSQL", "nothing answers on 127.0.0.1:5432")
    asyncio.run(_scenario_run(transport, bus_url, store_url))


async def _scenario_run(transport: str, bus_url: str, store_url: str) -> None:
    tokens = TokenRegistry()
    token = tokens.issue("api-operator", "operator")
    since = datetime.now(UTC).isoformat()  # a shared PostgreSQL may hold older readings
    svc = await start_service(
        tokens=tokens,
        demo=True,
        days=1,
        step_interval_s=0.25,
        approval_timeout_s=120,
        mqtt_url="127.0.0.1:1883" if transport == "mqtt" else None,
        bus_url=bus_url,
        store_url=store_url,
        buffer_step_s=0.5,
    )
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(svc.app, host="127.0.0.1", port=port, log_level="error"))
    serving = asyncio.create_task(server.serve())
    session = svc.console.session
    try:
        assert ("MQTT" in svc.telemetry_path) == (transport == "mqtt"), svc.telemetry_path
        await _until(lambda: _true(server.started), 30, "the server to start")
        svc.console.first_viewer.set()  # what the first browser does in demo mode
        base, auth = f"http://127.0.0.1:{port}", {"Authorization": f"Bearer {token}"}
        async with httpx.AsyncClient(base_url=base, headers=auth, timeout=10) as c:
            start = session.twin.step

            async def advanced():
                st = (await c.get("/api/v1/state")).json()
                return st if (st.get("twin") or {}).get("step", 0) >= start + 4 else None

            st = await _until(advanced, 60, "the API to show four console twin steps")
            # the API's twin is the console's: same step clock, same feeder power
            feeder_by_time = dict(session.history)
            stepped = session.scenario.index[st["twin"]["step"] - 1].isoformat()
            assert st["twin"]["feeder_kw"] == pytest.approx(feeder_by_time[stepped], abs=1e-9)
            assert st["twin"]["source"] == "console-twin"
            assert st["scenario"]["twin"] == "console"

            # meter telemetry went through ingestion (MQTT bridge or in-process) into the store
            async def stored():
                q = {"device_id": "feeder-head", "start": since}
                h = (await c.get("/api/v1/history/readings", params=q)).json()
                return h if h["n"] >= 3 else None

            hist = await stored() or await _until(stored, 20, "stored feeder-head readings")
            console_kw = {round(kw, 3) for _, kw in session.history}
            assert set(hist["value"]) <= console_kw
            snap = await _until(
                lambda: _json_field(c, "/api/v1/state", "snapshot"), 20, "a state snapshot"
            )
            assert snap["n_series"] == 3 * session.scenario.feeder.n_bus + 1

            # setpoints are the console's (after approvals/overrides/shield), not a 2nd dispatcher
            sp = (await c.get("/api/v1/setpoints/latest")).json()
            assert sp["plan_id"].startswith("console-tou-")
            applied = sp["setpoints"]["pv_curtail_kw"]
            assert len(applied) == len(session.scenario.fleet.pv.peak_kw)
            agents = (await c.get("/api/v1/agents")).json()
            assert {a for a in agents if not a.startswith("ingestion:")} == {"forecast"}
            assert agents["ingestion:store-sink"]["state"] == "running"
            fc = await _until(
                lambda: _json_field(c, "/api/v1/forecasts/latest", "step"), 20, "a forecast"
            )
            assert fc >= start

            # a console approval request decided through the REST API
            req = await _until(
                lambda: _first_pending(session), 60, "a console approval request (sunny morning)"
            )
            r = await c.post(
                "/api/v1/approvals",
                json={"plan_id": req.id, "decision": "approve", "comment": "via API"},
            )
            assert r.status_code == 202, r.text
            await _until(
                lambda: _true(not req.pending), 10, "the API decision to reach the session"
            )
            assert req.status == "approved" and req.decided_by == "api-operator"

            async def decision_on_bus():
                seen = (await c.get("/api/v1/approvals")).json()
                return any(a.get("id") == req.id and a.get("status") == "approved" for a in seen)

            await _until(decision_on_bus, 10, "the console's approval event on the bus")
            assert (await c.get("/api/v1/state", headers={"Authorization": ""})).status_code == 401
            r = await c.post("/api/v1/scenarios/select", json={"name": "default"})
            assert r.status_code == 200, r.text

            async def restart_alert():
                alerts = (await c.get("/api/v1/alerts")).json()
                return any("restart `gridsync serve" in a.get("message", "") for a in alerts)

            await _until(restart_alert, 10, "the scenario-restart alert")
        assert svc.link.failures == 0
    finally:
        server.should_exit = True
        await asyncio.wait_for(serving, 30)
        stuck = await stop_service(svc)
    assert not stuck, f"these parts did not stop cleanly: {stuck}"


async def _true(value) -> bool:
    return bool(value)


async def _json_field(c: httpx.AsyncClient, path: str, key: str):
    r = await c.get(path)
    if r.status_code != 200:
        return None
    return r.json().get(key)


async def _first_pending(session):
    pending = session.approvals.pending()
    return pending[0] if pending else None


def test_stopping_the_service_during_the_anomaly_fit_cancels_it(monkeypatch):
    """The anomaly monitor's background fit (tens of seconds) is still running when the
    service stops: stop_service cancels it cleanly, its thread ends and nothing attaches."""
    for var in CONSOLE_ENV:
        monkeypatch.delenv(var, raising=False)

    async def run():
        svc = await start_service(
            tokens=TokenRegistry(),
            demo=True,
            days=1,
            mqtt_url=None,
            store_url="sqlite:///:memory:",
            anomaly_monitor=True,
        )
        fit = svc.console.anomaly_fit
        assert fit.thread.is_alive()  # the fit re-runs ten days of twin first
        stuck = await stop_service(svc)
        return svc, fit, stuck

    svc, fit, stuck = asyncio.run(run())
    assert stuck == []
    assert not fit.thread.is_alive()
    assert svc.console.session.anomaly_feed is None
    assert not [a for a in svc.console.session.alerts if a["source"] == "anomaly"]
