"""The runtime on NATS JetStream: telemetry through the durable store sink, replay after a
runtime restart (a new process resuming the same durable consumer)."""

from __future__ import annotations

import asyncio
import json
import time
import uuid

from gridsync.bus import BusError
from gridsync.runtime.runtime import Runtime
from gridsync.store import SqliteStore
from tests.conftest import until


def _msg(seq: int) -> bytes:
    rd = [{"device_id": f"m{i}", "quantity": "v", "unit": "pu", "value": 1.0 + i / 1000, "ts": time.time() - 60 + seq} for i in range(20)]  # fmt: skip
    return json.dumps({"source": "gw-n", "seq": seq, "readings": rd}).encode()


def test_runtime_on_nats_stores_and_resumes_after_restart(tmp_path):
    from gridsync.bus.nats import NatsBus

    prefix = "rt" + uuid.uuid4().hex[:10]
    db = tmp_path / "rt.db"

    async def main():
        bus = NatsBus(prefix=prefix, connect_timeout_s=1)
        try:
            await asyncio.wait_for(bus.connect(), 5)
        except (BusError, TimeoutError) as err:
            return repr(err)
        store = SqliteStore(db)
        rt = Runtime(bus, store, step_s=0.2)
        await rt.start()
        for s in range(1, 4):
            assert (await rt.ingestor.submit(_msg(s))).accepted
        assert await until(lambda: rt.state.counters["stored_readings"] == 60)
        assert await until(
            lambda: rt.state.snapshot is not None and rt.state.snapshot["n_series"] == 20
        )
        await rt.stop()
        # while the service is down, a producer keeps publishing onto the durable stream
        bus2 = NatsBus(prefix=prefix)
        await bus2.connect()
        for s in range(4, 6):
            acc = rt.ingestor.validator.validate(_msg(s))
            await bus2.publish("telemetry", acc.to_message(time.time()), msg_id=f"tm:gw-n:{s}")
        await bus2.close()
        # restart: the durable sink resumes where it stopped
        rt2 = Runtime(NatsBus(prefix=prefix), SqliteStore(db), step_s=0.2)
        await rt2.start()
        ok = await until(lambda: rt2.store.count_readings() == 100)
        n = rt2.store.count_readings()
        await rt2.bus.delete_streams()
        await rt2.stop()
        return ok, n

    out = asyncio.run(main())
    if isinstance(out, str):
        from tests.conftest import require_service

        require_service("NATS JetStream", out)
    ok, n = out
    assert ok and n == 100
