"""Hostile input on the ingestion path (issue 25: defects 1, 2, 4, 9), on the embedded default
(in-process bus + SQLite) and on the production path (NATS JetStream + PostgreSQL), with the
real Mosquitto broker: poison messages, unstorable values, a source posing as another, a
stalled stage, and a SIGTERM restart of the bridge during a 4 msg/s stream. The expectations
are the contract: every bad message is dead-lettered with its reason, every good one is
stored exactly once, nothing stalls, and no reading the broker acknowledged is lost."""

from __future__ import annotations

import asyncio
import json
import math
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import httpx
import pytest

from gridsync.bus import BusError, InProcessBus
from gridsync.runtime.runtime import Runtime
from gridsync.store import SqliteStore, StoreError
from tests.conftest import require_service, until

HOST, PORT = "127.0.0.1", 1883
NATS_URL = "nats://127.0.0.1:4222"
PG_DSN = "postgresql://postgres@127.0.0.1:5432/test"
REPO = Path(__file__).resolve().parents[2]
GRIDSYNC = str(Path(sys.executable).with_name("gridsync"))

pytestmark = pytest.mark.service


class Unavailable(Exception):
    """A service the test needs did not answer (name, reason)."""


async def _runtime(kind: str, tag: str, tmp_path: Path, **kw) -> Runtime:
    """A started runtime: ``embedded`` (in-process bus, SQLite file) or ``production``
    (NATS JetStream with a unique prefix, PostgreSQL in a unique schema)."""
    if kind == "embedded":
        rt = Runtime(InProcessBus(), SqliteStore(tmp_path / f"{tag}.db"), step_s=0.2, **kw)
    else:
        from gridsync.bus.nats import NatsBus
        from gridsync.store.postgres import PostgresStore

        bus = NatsBus(NATS_URL, prefix=f"h{tag}", connect_timeout_s=1)
        try:
            await asyncio.wait_for(bus.connect(), 5)
        except (BusError, TimeoutError) as err:
            raise Unavailable("NATS JetStream", repr(err)) from None
        store = PostgresStore(PG_DSN, schema=f"h_{tag}")
        try:
            await asyncio.to_thread(store.migrate)
        except StoreError as err:
            await bus.close()
            raise Unavailable("PostgreSQL", str(err)) from None
        rt = Runtime(bus, store, step_s=0.2, **kw)
    await rt.start()
    return rt


async def _close(rt: Runtime) -> None:
    if rt.bus.kind == "nats":
        await rt.bus.delete_streams()
    await rt.stop()
    if rt.store.kind == "postgres":
        await asyncio.to_thread(rt.store.drop_schema)
    rt.store.close()


def _run(coro):
    try:
        return asyncio.run(coro)
    except Unavailable as err:
        require_service(*err.args)


def _readings(source: str, seq: int, n: int = 5, ts_s: float | None = None) -> bytes:
    ts = time.time() - 10 + seq / 1000 if ts_s is None else ts_s  # distinct per message
    rd = [
        {"device_id": f"{source}-m{i}", "quantity": "p", "unit": "W", "value": 100.0 * seq + i, "ts": ts}
        for i in range(n)
    ]  # fmt: skip
    return json.dumps({"source": source, "seq": seq, "readings": rd}).encode()


async def _bridge(rt: Runtime, root: str, **kw):
    from gridsync.data.ingest_mqtt import MqttBridge, MqttUnavailable

    br = MqttBridge(
        rt.ingestor, HOST, PORT, topic_root=root, client_id=f"hb-{uuid.uuid4().hex[:8]}", **kw
    )
    try:
        await br.start(timeout_s=3)
    except MqttUnavailable as err:
        raise Unavailable("Mosquitto MQTT", str(err)) from None
    rt.ingestion_stages.append(br.progress)
    return br


def _device(source: str, root: str, port: int = PORT, **kw):
    from gridsync.data.ingest_mqtt import MqttTelemetryPublisher, MqttUnavailable

    dev = MqttTelemetryPublisher(source, HOST, port, topic_root=root, **kw)
    try:
        dev.connect(timeout_s=3)
    except MqttUnavailable as err:
        raise Unavailable("Mosquitto MQTT", str(err)) from None
    return dev


async def _health(rt: Runtime) -> dict:
    from gridsync.api.app import create_app
    from gridsync.api.auth import TokenRegistry

    app = create_app(rt, tokens=TokenRegistry(), manage_runtime=False)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        r = await c.get("/health")
    assert r.status_code == 200, r.text
    return r.json()


KINDS = ["embedded", "production"]


# defect 1 --------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", KINDS)
def test_poison_mqtt_message_is_dead_lettered_and_ingestion_goes_on(kind, tmp_path):
    """JSON nested 50,000 deep (RecursionError in the parser) between good messages."""
    tag = uuid.uuid4().hex[:10]
    root, src = f"gsh/{tag}", f"gw-{tag}"

    async def main():
        rt = await _runtime(kind, tag, tmp_path)
        br = dev = None
        try:
            br = await _bridge(rt, root)
            dev = _device(src, root)
            dev.publish_raw(_readings(src, 1))
            dev.publish_raw(b"[" * 50_000 + b"]" * 50_000)
            dev.publish_raw(b'{"source": "' + src.encode() + b'", "seq": ' + b"[" * 50_000)
            for seq in (2, 3):
                dev.publish_raw(_readings(src, seq))
            ok = await until(
                lambda: (
                    rt.state.counters["stored_readings"] >= 15
                    and rt.state.counters["deadletters"] >= 2
                ),
                timeout=30,
            )
            dead = [e["message"] for e in await asyncio.to_thread(rt.store.events, "deadletter")]
            health = await _health(rt)
            return ok, await asyncio.to_thread(rt.store.count_readings), dead, health
        finally:
            if dev is not None:
                dev.close()
            if br is not None:
                await br.stop()
            await _close(rt)

    ok, n, dead, health = _run(main())
    assert ok and n == 15, (n, dead)
    assert len(dead) == 2 and all("RecursionError" in d for d in dead), dead
    assert health["status"] == "ok" and health["ingestion"]["stalled"] == []


def test_message_too_large_for_the_bus_is_dead_lettered_after_bounded_retries(tmp_path):
    """A columnar batch under the 1 MiB MQTT limit whose forwarded form exceeds NATS's 1 MB
    max payload: the bus refuses it on every attempt. It is dead-lettered after
    ``max_attempts`` and the next message goes through (on main: retried forever)."""
    tag = uuid.uuid4().hex[:10]
    root, src = f"gsh/{tag}", f"gw-{tag}"

    async def main():
        rt = await _runtime("production", tag, tmp_path)
        br = dev = None
        try:
            br = await _bridge(rt, root, max_attempts=3, retry_delay_s=0.1)
            dev = _device(src, root)
            n = 20_000
            big = {
                "source": src, "seq": 1, "device_id": [f"{src}-meter-{i:06d}" for i in range(n)],
                "quantity": "p", "unit": "W", "ts_s": time.time() - 1,
                "value": [1234.567890123 + i for i in range(n)],
            }  # fmt: skip
            raw = json.dumps(big).encode()
            info = dev.publish_raw(raw)
            raw_bytes = len(raw)
            dev.publish_raw(_readings(src, 2))
            ok = await until(
                lambda: (
                    rt.state.counters["stored_readings"] >= 5
                    and rt.state.counters["deadletters"] >= 1
                ),
                timeout=30,
            )
            dead = await asyncio.to_thread(rt.store.events, "deadletter")
            return ok, info.mid, raw_bytes, rt.state.counters.copy(), dead, rt.ingestion()
        finally:
            if dev is not None:
                dev.close()
            if br is not None:
                await br.stop()
            await _close(rt)

    ok, _, raw_bytes, counters, dead, ingestion = _run(main())
    assert raw_bytes < 1_048_576  # accepted by the validator's size limit
    assert ok and counters["stored_readings"] == 5, counters
    assert len(dead) == 1 and "not forwarded after 3 attempts" in dead[0]["message"], dead
    assert ingestion["status"] == "ok", ingestion


def test_health_turns_degraded_while_the_store_is_down_and_recovers_without_loss(tmp_path):
    """A private PostgreSQL stopped under a running sink: readings wait (the bus redelivers),
    /health says degraded after stall_after_s, and once the database is back every reading
    is stored once and /health is ok again."""
    from gridsync.bus.nats import NatsBus
    from gridsync.runtime.private_services import PrivatePostgres, missing_binaries
    from gridsync.store.postgres import PostgresStore

    if missing_binaries():
        require_service("server binaries", f"missing {missing_binaries()}")
    tag = uuid.uuid4().hex[:10]
    src = f"gw-{tag}"
    pg = PrivatePostgres()

    async def main():
        await asyncio.to_thread(pg.start)
        bus = NatsBus(NATS_URL, prefix=f"h{tag}", connect_timeout_s=1)
        try:
            await asyncio.wait_for(bus.connect(), 5)
        except (BusError, TimeoutError) as err:
            raise Unavailable("NATS JetStream", repr(err)) from None
        rt = Runtime(
            bus,
            PostgresStore(pg.dsn, schema="gs", connect_timeout_s=1),
            step_s=0.2,
            stall_after_s=1.0,
            sink_retry_delay_s=0.2,
        )
        await rt.start()
        try:
            assert (await rt.ingestor.submit(_readings(src, 1))).accepted
            assert await until(lambda: rt.state.counters["stored_readings"] == 5)
            await asyncio.to_thread(pg.stop)
            for seq in (2, 3, 4):
                assert (await rt.ingestor.submit(_readings(src, seq))).accepted
            stalled = await until(lambda: rt.ingestion()["status"] == "stalled", timeout=20)
            down = await _health(rt)
            await asyncio.to_thread(pg.start)
            back = await until(lambda: rt.state.counters["stored_readings"] == 20, timeout=30)
            await until(lambda: rt.ingestion()["status"] == "ok", timeout=10)
            up = await _health(rt)
            n = await asyncio.to_thread(rt.store.count_readings)
            return stalled, down, back, up, n
        finally:
            await rt.bus.delete_streams()
            await rt.stop()
            rt.store.close()

    try:
        stalled, down, back, up, n = _run(main())
    finally:
        pg.close()
    assert stalled and down["status"] == "degraded", down
    assert down["ingestion"]["stalled"] == ["store-sink"]
    assert back and n == 20 and up["status"] == "ok", (n, up)


# defect 4 --------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", [*KINDS, "inprocess-postgres"])
def test_unstorable_plans_are_dead_lettered_and_later_plans_stored(kind, tmp_path):
    """Plans the store cannot hold (valid_to_s 1e17, a NaN timestamp) are dead-lettered once
    with a reason naming the field; a NaN setpoint is stored as null; the plans after them
    are stored (on main: the writer retried forever and blocked the in-process bus)."""
    tag = uuid.uuid4().hex[:10]

    async def main():
        if kind == "inprocess-postgres":
            from gridsync.store.postgres import PostgresStore

            store = PostgresStore(PG_DSN, schema=f"h_{tag}")
            try:
                await asyncio.to_thread(store.migrate)
            except StoreError as err:
                raise Unavailable("PostgreSQL", str(err)) from None
            rt = Runtime(InProcessBus(), store, step_s=0.2)
            await rt.start()
        else:
            rt = await _runtime(kind, tag, tmp_path)
        try:
            base = {"setpoints": {"battery_kw": [1.0, 2.0]}, "valid_from_s": time.time()}
            far = await rt.submit_plan({**base, "valid_to_s": 1e17}, "op", "operator")
            nan_ts = await rt.submit_plan({**base, "valid_from_s": math.nan}, "op", "operator")
            nan_sp = await rt.submit_plan(
                {**base, "setpoints": {"battery_kw": [math.nan, 1.0]}}, "op", "operator"
            )
            good = await rt.submit_plan(base, "op", "operator")

            def stored() -> set[str]:
                return {p["plan_id"] for p in rt.store.plans(limit=10)}

            ok = await until(
                lambda: {nan_sp, good} <= stored() and rt.state.counters["deadletters"] >= 2,
                timeout=30,
            )
            plans = {p["plan_id"]: p for p in await asyncio.to_thread(rt.store.plans)}
            dead = await asyncio.to_thread(rt.store.events, "deadletter")
            return ok, (far, nan_ts, nan_sp, good), plans, dead
        finally:
            if rt.bus.kind == "nats":
                await rt.bus.delete_streams()
            await rt.stop()
            if rt.store.kind == "postgres":
                await asyncio.to_thread(rt.store.drop_schema)

    ok, (far, nan_ts, nan_sp, good), plans, dead = _run(main())
    assert ok, (plans.keys(), dead)
    assert set(plans) == {nan_sp, good}
    assert plans[nan_sp]["payload"]["setpoints"]["battery_kw"][0] in (None,) or math.isnan(
        plans[nan_sp]["payload"]["setpoints"]["battery_kw"][0]
    )
    by_plan = {e["payload"]["data"]["plan_id"]: e for e in dead}
    assert set(by_plan) == {far, nan_ts}, dead
    assert "valid_to_s" in by_plan[far]["message"] and "1e+17" in by_plan[far]["message"]
    assert "valid_from_s" in by_plan[nan_ts]["message"]
    assert all(e["payload"]["deliveries"] == 1 for e in dead)  # no retry of a bad value


@pytest.mark.slow
def test_plans_stuck_under_an_older_unbounded_consumer_are_released_on_restart(tmp_path):
    """NATS: plans left redelivering by an older writer (durable consumer with unbounded
    redelivery) are dead-lettered once the new runtime starts on the same streams, and the
    durable gets the bounded redelivery (on main: still stuck after a restart). The old
    writer may stop with the plan in flight: then JetStream redelivers it after its 30-s ack
    wait."""
    tag = uuid.uuid4().hex[:10]

    async def main():
        from gridsync.bus.nats import NatsBus

        old = NatsBus(NATS_URL, prefix=f"h{tag}", connect_timeout_s=1)
        try:
            await asyncio.wait_for(old.connect(), 5)
        except (BusError, TimeoutError) as err:
            raise Unavailable("NATS JetStream", repr(err)) from None
        attempts = []

        async def stuck_writer(msg) -> None:  # what the old writer did with a year-10^9 plan
            attempts.append(msg.seq)
            raise ValueError("year 3170843 is out of range")

        sub = await old.subscribe(
            "plans", stuck_writer, durable="store-sink-plans", deliver="all",
            max_deliver=None, retry_delay_s=0.05,
        )  # fmt: skip
        bad = {"plan_id": f"bad-{tag}", "created_s": time.time(), "valid_to_s": 1e17}
        await old.publish("plans", bad, msg_id=f"plan:bad-{tag}")
        assert await until(lambda: len(attempts) >= 5, timeout=20)
        await sub.unsubscribe()
        await old.close()
        rt = await _runtime("production", tag, tmp_path)
        try:
            good = await rt.submit_plan({"valid_from_s": time.time()}, "op", "operator")
            ok = await until(
                lambda: (
                    rt.state.counters["deadletters"] >= 1
                    and good in {p["plan_id"] for p in rt.store.plans()}
                ),
                timeout=75,
            )
            info = await rt.bus._jetstream().consumer_info(
                rt.bus.stream("plans"), "store-sink-plans"
            )
            dead = await asyncio.to_thread(rt.store.events, "deadletter")
            return ok, info.config.max_deliver, dead, rt.sink.max_deliver
        finally:
            await _close(rt)

    ok, max_deliver, dead, bound = _run(main())
    assert ok, dead
    assert max_deliver == bound + 1  # JetStream counts the final dead-lettering delivery
    assert len(dead) == 1 and "valid_to_s: 1e+17" in dead[0]["message"]


@pytest.mark.parametrize("kind", KINDS)
def test_unstorable_readings_on_the_bus_are_dead_lettered(kind, tmp_path):
    """A readings message published straight onto the bus (bypassing the validator) with a
    timestamp of 1e17 s: dead-lettered, the good message after it stored once (on main:
    PostgreSQL retried it forever; SQLite stored an overflowed timestamp)."""
    tag = uuid.uuid4().hex[:10]

    def body(ts: float, seq: int) -> dict:
        return {
            "kind": "readings", "source": "rogue", "seq": seq, "received_s": time.time(),
            "out_of_order": False, "device_id": ["r-1", "r-2"], "quantity": ["p", "p"],
            "unit": ["kW", "kW"], "ts_s": [ts, ts], "value": [1.0, 2.0], "late": [False, False],
        }  # fmt: skip

    async def main():
        rt = await _runtime(kind, tag, tmp_path)
        try:
            await rt.bus.publish("telemetry", body(1e17, 1), msg_id=f"tm:rogue:{tag}:1")
            await rt.bus.publish("telemetry", body(time.time() - 1, 2), msg_id=f"tm:rogue:{tag}:2")
            ok = await until(
                lambda: (
                    rt.state.counters["stored_readings"] >= 2
                    and rt.state.counters["deadletters"] >= 1
                ),
                timeout=30,
            )
            n = await asyncio.to_thread(rt.store.count_readings)
            dead = await asyncio.to_thread(rt.store.events, "deadletter")
            return ok, n, dead
        finally:
            await _close(rt)

    ok, n, dead = _run(main())
    assert ok and n == 2, (n, dead)
    assert len(dead) == 1 and "readings[0].ts_s" in dead[0]["message"], dead
    assert dead[0]["payload"]["data"] == {
        "kind": "readings",
        "source": "rogue",
        "seq": 1,
        "n_readings": 2,
    }


# defect 9 --------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", KINDS)
def test_message_claiming_another_source_is_dead_lettered(kind, tmp_path):
    """A message on gridsync/telemetry/<anything> claiming source console-twin and 99,999 kW
    at the feeder head is refused; the device's own messages on its topic are stored."""
    tag = uuid.uuid4().hex[:10]
    root, src = f"gsh/{tag}", f"gw-{tag}"

    async def main():
        rt = await _runtime(kind, tag, tmp_path)
        br = dev = None
        try:
            br = await _bridge(rt, root)
            dev = _device(src, root)
            fake = {"source": "console-twin", "seq": 1, "readings": [
                {"device_id": "feeder-head", "quantity": "p", "unit": "kW", "value": 99_999.0,
                 "ts": time.time()}]}  # fmt: skip
            dev._c.publish(f"{root}/anything", json.dumps(fake), qos=1)
            dev.publish_raw(_readings(src, 1))
            ok = await until(
                lambda: (
                    rt.state.counters["stored_readings"] >= 5
                    and rt.state.counters["deadletters"] >= 1
                ),
                timeout=30,
            )
            heads = await asyncio.to_thread(rt.store.query_readings, "feeder-head")
            dead = await asyncio.to_thread(rt.store.events, "deadletter")
            return ok, len(heads), dead
        finally:
            if dev is not None:
                dev.close()
            if br is not None:
                await br.stop()
            await _close(rt)

    ok, n_head, dead = _run(main())
    assert ok and n_head == 0
    assert len(dead) == 1, dead
    assert "'console-twin' does not match the sender 'anything'" in dead[0]["message"]


def test_shipped_mosquitto_acl_binds_devices_to_their_topics(tmp_path):
    """deploy/mosquitto (config + ACL) with a password file made by
    scripts/mosquitto_credentials.py, on a private Mosquitto: anonymous clients and wrong
    passwords are refused, a device's message on another device's topic never reaches the
    bridge, and the bridge stores what each device sends on its own topic."""
    from gridsync.data.ingest_mqtt import MqttBridge
    from gridsync.runtime.private_services import MOSQUITTO, PrivateMosquitto

    if not os.access(MOSQUITTO, os.X_OK):
        require_service("Mosquitto binary", f"{MOSQUITTO} not installed")
    creds_dir = tmp_path / "creds"
    out = subprocess.run(
        [sys.executable, str(REPO / "scripts/mosquitto_credentials.py"), "--out", str(creds_dir),
         "gridsync-bridge", "gw-a", "gw-b"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    creds = {}
    import tomllib

    for d in tomllib.loads((creds_dir / "credentials.toml").read_text())["device"]:
        creds[d["user"]] = d["password"]
    assert oct((creds_dir / "credentials.toml").stat().st_mode & 0o777) == "0o600"
    assert not any(p in (creds_dir / "passwd").read_text() for p in creds.values())  # hashed
    shipped = (REPO / "deploy/mosquitto/gridsync.conf").read_text().splitlines()
    acl = tmp_path / "acl"
    acl.write_text((REPO / "deploy/mosquitto/acl").read_text())
    auth = [
        line.replace("/etc/mosquitto/gridsync/passwd", str(creds_dir / "passwd")).replace(
            "/etc/mosquitto/gridsync/acl", str(acl)
        )
        for line in shipped
        if line.strip() and not line.startswith(("#", "listener"))
    ]
    assert "allow_anonymous false" in auth
    broker = PrivateMosquitto(auth=auth)
    root = "gridsync/telemetry"

    async def main():
        rt = Runtime(step_s=0.2)
        await rt.start()
        br = MqttBridge(
            rt.ingestor, HOST, broker.port, topic_root=root, client_id="acl-bridge",
            username="gridsync-bridge", password=creds["gridsync-bridge"],
        )  # fmt: skip
        await br.start(timeout_s=5)
        devs = []
        try:
            refused = []
            for user, password in ((None, None), ("gw-a", "wrong"), ("nobody", "x")):
                try:
                    _device("gw-a", root, broker.port, username=user, password=password).close()
                except Unavailable:
                    refused.append(user)
            a = _device("gw-a", root, broker.port, username="gw-a", password=creds["gw-a"])
            b = _device("gw-b", root, broker.port, username="gw-b", password=creds["gw-b"])
            devs += [a, b]
            # gw-a publishes as gw-b on gw-b's topic: the broker drops it (ACL)
            spoof = a._c.publish(f"{root}/gw-b", _readings("gw-b", 99), qos=1)
            a.publish_raw(_readings("gw-a", 1))
            b.publish_raw(_readings("gw-b", 1))
            ok = await until(lambda: rt.state.counters["stored_readings"] >= 10, timeout=20)
            spoof.wait_for_publish(5)
            await asyncio.sleep(1.0)  # time for a (wrongly) forwarded spoof to arrive
            rows = await asyncio.to_thread(rt.store.query_readings)
            return refused, ok, rows, br.progress.done_total
        finally:
            for d in devs:
                d.close()
            await br.stop()
            await rt.stop()

    with broker:
        refused, ok, rows, forwarded = _run(main())
    assert refused == [None, "gw-a", "nobody"]
    assert ok and len(rows) == 10
    assert sorted(rows.value.round(3).unique()) == [0.1, 0.101, 0.102, 0.103, 0.104]
    assert forwarded == 2  # the spoofed message never reached the bridge


# defect 2 --------------------------------------------------------------------------------
def _stream(dev, restart, n_msgs: int = 40, per_s: float = 4.0, at: int = 12) -> list:
    """Publish ``n_msgs`` messages of 5 readings at ``per_s`` (distinct timestamps, one per
    message); after message ``at``, ``restart()`` runs in a thread while the stream goes on.
    Returns the paho message infos."""
    infos, worker = [], None
    t0, wall = time.monotonic(), time.time()
    for k in range(n_msgs):
        ts = wall - 30 + k / per_s
        infos.append(dev.publish_raw(_readings(dev.source, k + 1, ts_s=ts)))
        if k == at:
            worker = threading.Thread(target=restart)
            worker.start()
        time.sleep(max(t0 + (k + 1) / per_s - time.monotonic(), 0.0))
    worker.join(120)
    return infos


def _start(cmd: list[str], ready: str, env: dict) -> subprocess.Popen:
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
    )
    lines = []
    while True:
        line = proc.stdout.readline()
        lines.append(line)
        if not line or ready in line:
            break
    assert ready in line, "".join(lines)
    return proc


def _sigterm(proc: subprocess.Popen) -> tuple[int, str]:
    proc.send_signal(signal.SIGTERM)
    rest = proc.stdout.read()
    return proc.wait(30), rest


@pytest.mark.slow
def test_bridge_process_sigterm_restart_loses_no_acknowledged_reading(tmp_path):
    """Production path: `gridsync bridge` (MQTT -> NATS) is SIGTERMed during a 4 msg/s stream
    and restarted with the same client id; a runtime here stores into PostgreSQL. Every
    message the broker acknowledged is stored exactly once and the bridge exits 0."""
    tag = uuid.uuid4().hex[:10]
    root, src = f"gsh/{tag}", f"gw-{tag}"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    cmd = [GRIDSYNC, "bridge", "--prefix", f"h{tag}", "--topic-root", root, "--client-id", f"hb-{tag}"]  # fmt: skip

    async def main():
        rt = await _runtime("production", tag, tmp_path)
        dev = None
        procs = [_start(cmd, "bridge: MQTT", env)]
        exits = []
        try:
            dev = _device(src, root)

            def restart() -> None:  # 3 s in: stop, wait 1 s, start (the stream goes on)
                exits.append(_sigterm(procs[-1]))
                time.sleep(1.0)
                procs.append(_start(cmd, "session resumed", env))

            infos = await asyncio.to_thread(_stream, dev, restart)
            for info in infos:
                info.wait_for_publish(10)
            acked = sum(info.mid in dev.acked for info in infos)
            ok = await until(lambda: rt.state.counters["stored_readings"] >= 5 * acked, timeout=60)
            await asyncio.sleep(1.0)  # a duplicate would arrive within this
            n = await asyncio.to_thread(rt.store.count_readings)
            return ok, len(infos), acked, n, exits
        finally:
            if dev is not None:
                dev.close()
            for p in procs:
                if p.poll() is None:
                    exits.append(_sigterm(p))
            await _close(rt)

    ok, sent, acked, stored, exits = _run(main())
    assert sent == acked == 40
    assert ok and stored == 5 * acked, (stored, acked)
    assert [code for code, _ in exits] == [0, 0], exits


@pytest.mark.slow
def test_runtime_sigterm_restart_resumes_the_mqtt_session(tmp_path):
    """Embedded default: `gridsync runtime` (bridge + in-process bus + SQLite file) on a
    private Mosquitto is SIGTERMed during a 4 msg/s stream and restarted on the same store;
    its bridge resumes the persistent session (a stable client id), so the messages sent
    while it was down are stored, and it exits 0 after storing what it had accepted."""
    from gridsync.runtime.private_services import MOSQUITTO, PrivateMosquitto, free_port

    if not os.access(MOSQUITTO, os.X_OK):
        require_service("Mosquitto binary", f"{MOSQUITTO} not installed")
    db = tmp_path / "rt.db"
    src = f"gw-{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "GRIDSYNC_API_TOKENS": ""}
    env.pop("GRIDSYNC_MQTT_CLIENT_ID", None)

    with PrivateMosquitto() as broker:
        cmd = [GRIDSYNC, "runtime", "--mqtt", f"{HOST}:{broker.port}", "--store", f"sqlite:///{db}", "--port", str(free_port())]  # fmt: skip
        procs = [_start(cmd, "serving on", env)]
        exits = []
        dev = _device(src, "gridsync/telemetry", broker.port)
        try:

            def restart() -> None:
                exits.append(_sigterm(procs[-1]))
                time.sleep(1.0)
                procs.append(_start(cmd, "serving on", env))

            infos = _stream(dev, restart)
            for info in infos:
                info.wait_for_publish(10)
            acked = sum(info.mid in dev.acked for info in infos)

            def stored() -> int:
                s = SqliteStore(db)
                try:
                    rows = s.query_readings(limit=1_000_000)
                    return int(rows.device_id.str.startswith(src).sum())
                finally:
                    s.close()

            end = time.monotonic() + 60
            while stored() < 5 * acked and time.monotonic() < end:
                time.sleep(0.2)
            exits.append(_sigterm(procs[-1]))
            n = stored()
        finally:
            dev.close()
            for p in procs:
                if p.poll() is None:
                    p.kill()
    assert len(infos) == acked == 40
    assert n == 5 * acked, (n, acked, exits)
    assert [code for code, _ in exits] == [0, 0], exits
    assert all("stopped" in out for _, out in exits)
