"""Fault tests: database and MQTT broker outages (through a cuttable TCP proxy in front of
the shared services) lose nothing that was accepted and store nothing twice; the loop keeps
running. test_real_faults.py crashes and restarts real (private) servers instead."""

from __future__ import annotations

import asyncio
import json
import time
import uuid

from gridsync.runtime.runtime import Runtime
from gridsync.store import StoreError
from tests.conftest import until
from tests.runtime.tcp_proxy import TcpProxy


def _until(cond, timeout=30.0):
    return until(cond, timeout)


def _msg(seq: int, n: int = 50) -> bytes:
    now = time.time()
    rd = [
        {
            "device_id": f"m{i}",
            "quantity": "p",
            "unit": "kW",
            "value": float(seq),
            "ts": now - 60 + seq,
        }
        for i in range(n)
    ]
    return json.dumps({"source": "gw-f", "seq": seq, "readings": rd}).encode()


def test_database_outage_loses_nothing_and_duplicates_nothing():
    from gridsync.store.postgres import PostgresStore

    async def main():
        proxy = TcpProxy("127.0.0.1", 5432)
        proxy.start()
        store = PostgresStore(
            f"postgresql://postgres@127.0.0.1:{proxy.port}/test",
            schema="t_" + uuid.uuid4().hex[:10],
            connect_timeout_s=1,
        )
        try:
            await asyncio.to_thread(store.migrate)
        except StoreError as err:
            proxy.stop()
            return str(err)
        rt = Runtime(store=store, step_s=0.2)
        async with rt:
            for s in range(1, 6):
                assert (await rt.ingestor.submit(_msg(s))).accepted
            assert await _until(lambda: rt.state.counters["stored_readings"] == 250)
            proxy.stop()  # database "restarts": connections cut, new ones refused
            for s in range(6, 11):
                assert (await rt.ingestor.submit(_msg(s))).accepted  # ingestion keeps accepting
            await asyncio.sleep(2.0)
            during = rt.state.counters["stored_readings"]
            snap_alive = rt.state.snapshot is not None
            proxy.start()  # back on the same port
            assert await _until(lambda: rt.state.counters["stored_readings"] == 500)
            n = await asyncio.to_thread(store.count_readings)
        store.drop_schema()
        store.close()
        proxy.close()
        return during, snap_alive, n

    out = asyncio.run(main())
    if isinstance(out, str):
        from tests.conftest import require_service

        require_service("PostgreSQL", out)
    during, snap_alive, n = out
    assert during == 250 and snap_alive
    assert n == 500


def test_broker_outage_bridge_reconnects_and_receives_queued_messages():
    from gridsync.data.ingest_mqtt import MqttBridge, MqttTelemetryPublisher, MqttUnavailable

    root = f"gsfault/{uuid.uuid4().hex[:8]}"
    client_id = f"fault-bridge-{uuid.uuid4().hex[:8]}"

    async def main():
        proxy = TcpProxy("127.0.0.1", 1883)
        proxy.start()
        rt = Runtime(step_s=0.2)
        await rt.start()
        bridge = MqttBridge(
            rt.ingestor, "127.0.0.1", proxy.port, topic_root=root, client_id=client_id
        )
        try:
            await bridge.start(timeout_s=3)
        except MqttUnavailable as err:
            await rt.stop()
            proxy.stop()
            return str(err)
        dev = MqttTelemetryPublisher("gw-f", "127.0.0.1", 1883, topic_root=root)  # direct to broker
        dev.connect()
        try:
            for s in range(1, 4):
                dev.publish_raw(_msg(s), qos=1)
            assert await _until(lambda: rt.state.counters["stored_readings"] == 150), (
                rt.state.counters,
                rt.ingestor.accepted,
                rt.ingestor.rejected,
                bridge.backlog,
            )
            proxy.stop()  # the bridge loses the broker
            assert await _until(lambda: not bridge.connected.is_set(), timeout=20)
            for s in range(4, 8):  # published while the bridge is cut off: the broker queues them
                dev.publish_raw(_msg(s), qos=1).wait_for_publish(5)
            proxy.start()
            ok = await _until(lambda: rt.state.counters["stored_readings"] == 350, timeout=40)
            await asyncio.sleep(0.5)
            dead = [e["message"] for e in rt.store.events(kind="deadletter")]
            return ok, bridge.connects, rt.store.count_readings(), rt.state.counters.copy(), dead
        finally:
            dev.close()
            await bridge.stop()
            await rt.stop()
            proxy.close()

    out = asyncio.run(main())
    if isinstance(out, str):
        from tests.conftest import require_service

        require_service("Mosquitto MQTT", out)
    ok, connects, n, counters, dead = out
    assert ok, counters
    assert connects >= 2 and n == 350
    # unacknowledged messages may be redelivered after the reconnect: refused as duplicates
    assert all("duplicate" in m for m in dead), dead
