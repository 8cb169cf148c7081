"""End-to-end ingestion cases for bench_runtime.py: MQTT -> bridge -> bus -> store, with the
bridge in the service process or in its own (``gridsync bridge``)."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from pathlib import Path

import numpy as np

from gridsync.bus import InProcessBus
from gridsync.bus.base import encode
from gridsync.runtime.runtime import Runtime


def _payloads(fmt: str, n_msgs: int, per_msg: int, source: str) -> list[bytes]:
    """``per_msg`` meters per message, ``n_msgs`` consecutive time stamps in the last 10 min."""
    now = time.time()
    ids = [f"meter-{i}" for i in range(per_msg)]
    out = []
    for m in range(n_msgs):
        ts = now - 600 + m * 500 / n_msgs
        vals = np.round(np.sin(m + np.arange(per_msg)), 4)
        if fmt == "columnar":
            body = {"source": source, "seq": m + 1, "device_id": ids, "quantity": "p",
                    "unit": "kW", "ts_s": ts, "value": vals}  # fmt: skip
        else:
            rd = [{"device_id": d, "quantity": "p", "unit": "kW", "value": float(v), "ts": ts}
                  for d, v in zip(ids, vals, strict=True)]  # fmt: skip
            body = {"source": source, "seq": m + 1, "readings": rd}
        out.append(encode(body))
    return out


def _row(store, bus: str, fmt: str, n_msgs: int, per_msg: int, stored: int, dt: float) -> dict:
    return {
        "store": store.kind,
        "bus": bus,
        "format": fmt,
        "messages": n_msgs,
        "readings_per_msg": per_msg,
        "stored": stored,
        "complete": stored == n_msgs * per_msg,
        "seconds": dt,
        "readings_per_s": stored / dt,
        "messages_per_s": stored / per_msg / dt,
    }


async def _publish_and_wait(rt, source, root, fmt, n_msgs, per_msg) -> tuple[float, int]:
    """Publish the payloads as gateway ``source`` and wait (at most 120 s) until the runtime
    has stored them all; returns (seconds, readings stored)."""
    from gridsync.data.ingest_mqtt import MqttTelemetryPublisher

    pub = MqttTelemetryPublisher(source, topic_root=root)
    pub.connect()
    payloads = _payloads(fmt, n_msgs, per_msg, source)
    total = n_msgs * per_msg
    t = time.perf_counter()
    for p in payloads:
        pub.publish_raw(p)
    while rt.state.counters["stored_readings"] < total and time.perf_counter() - t < 120:
        await asyncio.sleep(0.005)
    dt = time.perf_counter() - t
    pub.close()
    return dt, rt.state.counters["stored_readings"]


async def bench_e2e_mqtt(store, bus_kind: str, fmt: str, n_msgs: int, per_msg: int) -> dict | None:
    """MQTT publisher -> Mosquitto -> bridge (validation) -> bus -> store sink, one process.
    Bursts stay under Mosquitto's default 1000-message queue per subscriber (beyond it the
    broker drops QoS 1 messages for a slow subscriber; see PrivateMosquitto's config)."""
    from gridsync.data.ingest_mqtt import MqttBridge, MqttUnavailable

    root = f"bench/{uuid.uuid4().hex[:6]}"
    if bus_kind == "nats":
        from gridsync.bus.nats import NatsBus

        bus = NatsBus(prefix="bench" + uuid.uuid4().hex[:6], connect_timeout_s=1)
    else:
        bus = InProcessBus()
    rt = Runtime(bus, store, step_s=1.0)
    try:
        await rt.start()
    except Exception as err:
        print(f"  {bus_kind} bus unavailable: {err!r}")
        return None
    bridge = MqttBridge(rt.ingestor, topic_root=root, client_id=f"bench-{uuid.uuid4().hex[:6]}")
    try:
        await bridge.start(timeout_s=3)
    except MqttUnavailable as err:
        print(f"  MQTT unavailable: {err}")
        await rt.stop()
        return None
    dt, stored = await _publish_and_wait(rt, "bench-gw", root, fmt, n_msgs, per_msg)
    await bridge.stop()
    if bus_kind == "nats":
        await bus.delete_streams()
    await rt.stop()
    return _row(store, bus_kind, fmt, n_msgs, per_msg, stored, dt)


async def bench_e2e_two_processes(store, fmt: str, n_msgs: int, per_msg: int) -> dict | None:
    """The bridge in its own process (``gridsync bridge``: MQTT -> validation -> NATS) and
    this process as the service (NATS -> store sink), so parsing and storing use both cores."""
    import subprocess
    import sys

    from gridsync.bus.nats import NatsBus

    tag = uuid.uuid4().hex[:6]
    prefix, root = f"bench{tag}", f"bench/{tag}"
    rt = Runtime(NatsBus(prefix=prefix, connect_timeout_s=1), store, step_s=1.0)
    try:
        await rt.start()
    except Exception as err:
        print(f"  NATS unavailable: {err!r}")
        return None
    exe = str(Path(sys.executable).with_name("gridsync"))
    cmd = [exe, "bridge", "--prefix", prefix, "--topic-root", root, "--client-id", f"b-{tag}"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env
    )
    try:
        line = await asyncio.to_thread(proc.stdout.readline)  # "bridge: MQTT ..." once ready
        if not line.startswith("bridge:"):
            print(f"  bridge process did not start: {line!r}")
            return None
        dt, stored = await _publish_and_wait(rt, f"gw-{tag}", root, fmt, n_msgs, per_msg)
    finally:
        proc.terminate()
        proc.wait(10)
        await rt.bus.delete_streams()
        await rt.stop()
    return _row(store, "nats, bridge in its own process", fmt, n_msgs, per_msg, stored, dt)
