"""MQTT -> bridge -> bus -> store against the real Mosquitto broker."""

from __future__ import annotations

import asyncio
import json
import time
import uuid

from gridsync.data.ingest_mqtt import MqttBridge, MqttTelemetryPublisher, MqttUnavailable
from gridsync.runtime.runtime import Runtime
from tests.conftest import until

HOST, PORT = "127.0.0.1", 1883


def test_bridge_end_to_end_with_hostile_and_duplicate_payloads():
    root = f"gstest/{uuid.uuid4().hex[:8]}"

    async def main():
        rt = Runtime(step_s=0.2)
        await rt.start()
        bridge = MqttBridge(
            rt.ingestor, HOST, PORT, topic_root=root, client_id=f"br-{uuid.uuid4().hex[:8]}"
        )
        try:
            await bridge.start(timeout_s=3)
        except MqttUnavailable as err:
            await rt.stop()
            return str(err)
        dev = MqttTelemetryPublisher("gw-9", HOST, PORT, topic_root=root)
        dev.connect()
        try:
            n_dev = 50
            for k in range(10):  # 10 messages x 50 meters x 2 quantities
                ids = [f"meter-{i}" for i in range(n_dev)] * 2
                qs = ["p"] * n_dev + ["v"] * n_dev
                us = ["W"] * n_dev + ["pu"] * n_dev
                vals = [100.0 * k + i for i in range(n_dev)] + [
                    1.0 + 0.001 * i for i in range(n_dev)
                ]
                dev.publish(ids, qs, us, vals, [time.time() - 10 + k] * 2 * n_dev)
            good = json.loads(json.dumps({"source": "gw-9", "seq": 3, "readings": []}))
            hostile = [
                b"\x00" * 2_000_000,  # oversized
                b"{'not': json}",
                json.dumps(
                    {
                        **good,
                        "readings": [
                            {
                                "device_id": "m",
                                "quantity": "p",
                                "unit": "kW",
                                "value": "DROP TABLE",
                                "ts": time.time(),
                            }
                        ],
                    }
                ).encode(),
                json.dumps(
                    {
                        "source": "gw-9",
                        "seq": 3,
                        "readings": [
                            {
                                "device_id": "meter-1",
                                "quantity": "p",
                                "unit": "kW",
                                "value": 1.0,
                                "ts": time.time(),
                            }
                        ],
                    }
                ).encode(),  # replay of seq 3
            ]
            for raw in hostile:
                dev.publish_raw(raw)

            def done():  # the conditions asserted below, each read from the same state
                snap = rt.state.snapshot or {"series": {}}
                c = rt.state.counters
                meter_3 = snap["series"].get("meter-3/p", {})
                return (
                    c["stored_readings"] >= 1000
                    and c["deadletters"] >= 4
                    and meter_3.get("value") == 0.903  # the newest message reached a snapshot
                )

            ok = await until(done)
            return (
                ok,
                rt.store.count_readings(),
                rt.state.counters.copy(),
                rt.store.events(kind="deadletter"),
                rt.state.snapshot,
            )
        finally:
            dev.close()
            await bridge.stop()
            await rt.stop()

    out = asyncio.run(main())
    if isinstance(out, str):
        from tests.conftest import require_service

        require_service("Mosquitto MQTT", out)
    ok, n_stored, counters, dead, snap = out
    assert ok, counters
    assert n_stored == 1000  # every accepted reading, once
    reasons = " | ".join(e["message"] for e in dead)
    assert "exceeds" in reasons and "not valid JSON" in reasons
    assert "readings.0.value" in reasons and "duplicate" in reasons
    assert len(dead) == 4
    assert snap["series"]["meter-3/p"]["value"] == 0.903  # 903 W, newest message, in kW
