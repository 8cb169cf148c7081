"""`gridsync bridge` as its own process: MQTT (Mosquitto) -> validation -> NATS JetStream,
read back by a runtime in this process that stores the readings."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from gridsync.bus import BusError
from gridsync.runtime.runtime import Runtime
from gridsync.store import SqliteStore
from tests.conftest import until

pytestmark = pytest.mark.service


def test_bridge_process_forwards_good_rows_and_dead_letters_bad_ones():
    from gridsync.bus.nats import NatsBus
    from gridsync.data.ingest_mqtt import MqttTelemetryPublisher, MqttUnavailable

    tag = uuid.uuid4().hex[:8]
    prefix, root = f"bp{tag}", f"gsbp/{tag}"

    async def main():
        bus = NatsBus(prefix=prefix, connect_timeout_s=1)
        try:
            await asyncio.wait_for(bus.connect(), 5)
        except (BusError, TimeoutError) as err:
            return "NATS JetStream", repr(err)
        pub = MqttTelemetryPublisher(f"dc-{tag}", topic_root=root)
        try:
            pub.connect(timeout_s=2)
        except MqttUnavailable as err:
            await bus.close()
            return "Mosquitto MQTT", str(err)
        rt = Runtime(bus, SqliteStore(), step_s=0.2)
        await rt.start()
        exe = str(Path(sys.executable).with_name("gridsync"))
        cmd = [exe, "bridge", "--prefix", prefix, "--topic-root", root, "--client-id", tag]
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=env)
        try:
            banner = await asyncio.to_thread(proc.stdout.readline)
            assert banner.startswith("bridge: MQTT"), banner
            now = time.time()
            ids = [f"m{i}" for i in range(100)]
            for k in range(5):
                pub.publish_batch(ids, [100.0 * k + i for i in range(100)], "p", "W", now - 5 + k)
            pub.publish_batch(["m1", "bad id!"], [5.0, 6.0], "p", "W", now)
            ok = await until(lambda: rt.state.counters["stored_readings"] >= 501)
            await until(lambda: rt.state.counters["deadletters"] >= 1)
            dead = rt.store.events(kind="deadletter")
            return ok, rt.store.count_readings(), dead, rt.store.query_readings(device_id="m7")
        finally:
            proc.terminate()
            proc.wait(10)
            pub.close()
            await rt.bus.delete_streams()
            await rt.stop()

    out = asyncio.run(main())
    if isinstance(out[0], str):
        from tests.conftest import require_service

        require_service(*out)
    ok, n, dead, m7 = out
    assert ok and n == 501
    assert len(dead) == 1 and "1 of 2 rows rejected" in dead[0]["message"]
    assert dead[0]["payload"]["rows"][0]["device_id"] == "'bad id!'"
    # W -> kW, one value per batch
    assert sorted(m7.value.round(6)) == [0.007, 0.107, 0.207, 0.307, 0.407]
