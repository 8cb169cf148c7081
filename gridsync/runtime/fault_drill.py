"""Fault drills: crash or stop a REAL server (private Mosquitto, NATS JetStream or PostgreSQL,
see :mod:`gridsync.runtime.private_services`) while a device streams telemetry through the
whole path (device -> MQTT -> bridge -> validation -> NATS -> store sink -> PostgreSQL), with
hostile payloads mixed in, then account for every reading.

The bookkeeping is independent of the code under test: the device numbers its messages
(``seq``), every good reading is ``(m<i>, t0 + seq / 100 s, seq + i / 1000 kW)``, the bridge's
own answer says which messages were accepted (forwarded and acknowledged by JetStream), and
PostgreSQL is read back at the end. ``lost`` = accepted readings not stored, ``duplicated``
= stored rows beyond one per (meter, time), ``bad_stored`` = stored rows that are not exactly
a good reading. ``device_acked_not_accepted`` counts messages the broker acknowledged to the
device that never reached the bridge (a broker crash can drop what it held only in memory).
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from gridsync.bus.base import encode
from gridsync.runtime.private_services import PrivateMosquitto, PrivateNats, PrivatePostgres
from gridsync.runtime.supervisor import Agent, Backoff

SERVERS = ("mosquitto", "nats", "postgres")


@dataclass
class DrillResult:
    server: str
    mode: str  # "kill" (crash) or "stop" (graceful)
    messages_sent: int = 0
    messages_device_acked: int = 0
    messages_accepted: int = 0
    readings_accepted: int = 0
    readings_stored: int = 0
    lost: int = 0
    duplicated: int = 0
    bad_stored: int = 0
    device_acked_not_accepted: int = 0
    hostile_sent: int = 0
    deadletters: int = 0
    deadletter_reasons_missing: list[str] = field(default_factory=list)
    down_s: float = 0.0
    snapshots_during_outage: int = 0
    agent_ticks_after_recovery: int = 0
    recovery_s: float | None = None  # restart -> first reading stored after it
    caught_up_s: float | None = None  # restart -> everything accepted before it is stored

    @property
    def ok(self) -> bool:
        return (
            self.lost == 0
            and self.duplicated == 0
            and self.bad_stored == 0
            and not self.deadletter_reasons_missing
            and self.snapshots_during_outage > 0
            and self.agent_ticks_after_recovery > 0
            and self.readings_stored == self.readings_accepted
        )

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok}


class Lab:
    """The three private servers, started once and shared by several drills."""

    def __init__(self) -> None:
        self.mqtt = PrivateMosquitto()
        self.nats = PrivateNats()
        self.pg = PrivatePostgres()

    def server(self, name: str):
        return {"mosquitto": self.mqtt, "nats": self.nats, "postgres": self.pg}[name]

    def __enter__(self) -> Lab:
        for s in (self.mqtt, self.nats, self.pg):
            s.start()
        return self

    def __exit__(self, *exc: object) -> None:
        for s in (self.mqtt, self.nats, self.pg):
            s.close()


class _Heartbeat(Agent):
    """A minimal control agent: reads the snapshot and publishes a setpoint every tick."""

    name, period_s = "drill-heartbeat", 0.25

    def __init__(self, runtime) -> None:
        super().__init__()
        self.rt, self.ok_ticks = runtime, 0

    async def tick(self, bus) -> None:
        snap = self.rt.state.snapshot or {}
        await bus.publish("setpoints", {"t_s": snap.get("t_s"), "n": snap.get("n_series", 0)})
        self.ok_ticks += 1


def _hostile(
    source: str, seq: int, ts_s: float, now: float, replay: bytes
) -> list[tuple[bytes, str]]:
    """(payload, expected dead-letter reason) for each hostile message. The first is a
    columnar batch whose one good row (``m0``) follows the drill's value rule."""
    mixed = {
        "source": source,
        "seq": seq,
        "device_id": ["m0", "x'); DROP TABLE readings;--", "m2", "m3"],
        "quantity": "p",
        "unit": "kW",
        "ts_s": ts_s,
        "value": [float(seq), 2.0, "DROP TABLE", 1e300],
    }
    wrong = {"source": source, "seq": seq + 1, "readings": [{"device_id": "m0", "quantity": "p", "unit": "kW", "value": "7", "ts": now}]}  # fmt: skip
    return [
        (json.dumps(mixed).encode(), "3 of 4 rows rejected"),
        (json.dumps(wrong).encode(), "readings.0.value"),
        (b"\x00" * 1_200_000, "exceeds"),
        (b"{'not': json", "not valid JSON"),
        (replay, "duplicate message"),
    ]


class _Device(threading.Thread):
    """Publishes columnar batches at a fixed rate; remembers each message's MQTT delivery."""

    def __init__(self, port: int, root: str, rate_hz: float, n_meters: int, t0: float) -> None:
        super().__init__(daemon=True)
        from gridsync.data.ingest_mqtt import MqttTelemetryPublisher

        self.pub = MqttTelemetryPublisher(f"dev-{uuid.uuid4().hex[:6]}", port=port, topic_root=root)
        self.rate_hz, self.n, self.t0 = rate_hz, n_meters, t0
        self.infos: dict[int, Any] = {}
        self.payloads: dict[int, bytes] = {}
        self.hostile: list[tuple[bytes, str]] = []
        self.hostile_at: set[int] = set()
        self.hostile_sent = 0
        self.stop_evt = threading.Event()
        self.lock = threading.Lock()

    def acked(self, seq: int) -> bool:
        return self.infos[seq].mid in self.pub.acked

    def batch(self, seq: int) -> bytes:
        i = np.arange(self.n)
        body = {"source": self.pub.source, "seq": seq, "device_id": [f"m{k}" for k in i],
                "quantity": "p", "unit": "kW", "ts_s": self.t0 + seq / 100, "value": seq + i / 1000}  # fmt: skip
        return encode(body)

    def run(self) -> None:
        self.pub.connect()
        seq, next_t = 0, time.monotonic()
        while not self.stop_evt.is_set():
            seq += 1
            with self.lock:
                if seq in self.hostile_at:  # a burst of hostile messages, then go on
                    ts = self.t0 + seq / 100
                    self.hostile = _hostile(self.pub.source, seq, ts, time.time(), self.payloads[1])
                    infos = [self.pub.publish_raw(raw) for raw, _ in self.hostile]
                    self.infos[seq] = infos[0]
                    self.payloads[seq] = self.hostile[0][0]  # its good row counts
                    self.hostile_sent += len(self.hostile)
                    seq += 1  # the second hostile message carried seq + 1
                    continue
                raw = self.batch(seq)
                self.payloads[seq] = raw
                self.infos[seq] = self.pub.publish_raw(raw)
            next_t += 1 / self.rate_hz
            time.sleep(max(next_t - time.monotonic(), 0))
        self.pub.close()


async def _until(cond, timeout_s: float) -> float | None:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout_s:
        if cond():
            return time.monotonic() - t0
        await asyncio.sleep(0.02)
    return None


async def run_drill(
    lab: Lab,
    server: str,
    hard: bool = True,
    *,
    rate_hz: float = 20.0,
    n_meters: int = 250,
    before_s: float = 2.0,
    down_s: float = 3.0,
    after_s: float = 4.0,
) -> DrillResult:
    """Stream telemetry, crash (``hard``) or stop ``server`` for ``down_s``, restart it,
    keep streaming, drain, then account for every reading (see the module docstring)."""
    from gridsync.bus.nats import NatsBus
    from gridsync.data.ingest_mqtt import MqttBridge
    from gridsync.runtime.runtime import Runtime
    from gridsync.store.postgres import PostgresStore

    if server not in SERVERS:
        msg = f"server {server!r}: expected one of {', '.join(SERVERS)}"
        raise ValueError(msg)
    tag = uuid.uuid4().hex[:8]
    res = DrillResult(server, "kill" if hard else "stop", down_s=down_s)
    store = PostgresStore(lab.pg.dsn, schema=f"drill_{tag}", connect_timeout_s=1)
    rt = Runtime(
        NatsBus(lab.nats.url, prefix=f"drill{tag}", connect_timeout_s=1),
        store,
        step_s=0.25,
        backoff=Backoff(min_s=0.2, max_s=1.0),
    )
    accepted: dict[int, int] = {}  # seq -> readings, from the bridge's own answers
    submit = rt.ingestor.submit

    async def recording_submit(raw, origin="", source=None):
        out = await submit(raw, origin, source)
        if out.accepted:
            accepted[json.loads(raw)["seq"]] = out.n_readings
        return out

    rt.ingestor.submit = recording_submit
    await rt.start()
    agent = _Heartbeat(rt)
    rt.supervisor.start(agent)
    bridge = MqttBridge(
        rt.ingestor, port=lab.mqtt.port, topic_root=f"drill/{tag}", client_id=f"drill-{tag}"
    )
    await bridge.start(timeout_s=5)
    dev = _Device(lab.mqtt.port, f"drill/{tag}", rate_hz, n_meters, time.time() - 60)
    dev.hostile_at = {int(rate_hz * before_s / 2), int(rate_hz * (before_s + down_s / 2))}
    dev.start()
    srv = lab.server(server)
    try:
        await asyncio.sleep(before_s)
        snap_t0 = (rt.state.snapshot or {}).get("t_s", 0.0)
        stored_before = rt.state.counters["stored_readings"]
        await asyncio.to_thread(srv.kill if hard else srv.stop)
        await asyncio.sleep(down_s)
        snap_t1 = (rt.state.snapshot or {}).get("t_s", 0.0)
        res.snapshots_during_outage = int(round((snap_t1 - snap_t0) / rt.buffer.step_s))
        await asyncio.to_thread(srv.start)
        need = sum(accepted.values())
        stored_at_restart = rt.state.counters["stored_readings"]
        ticks_at_restart = agent.ok_ticks
        res.recovery_s = await _until(
            lambda: rt.state.counters["stored_readings"] > max(stored_at_restart, stored_before),
            60,
        )
        res.caught_up_s = await _until(lambda: rt.state.counters["stored_readings"] >= need, 60)
        await asyncio.sleep(after_s)
        dev.stop_evt.set()
        await asyncio.to_thread(dev.join, 10)
        # drain: everything the device got acknowledged has reached the bridge, and the store
        await _until(lambda: all(dev.acked(s) for s in dev.infos), 15)
        # the sink's counter misses commits whose acknowledgement the crash swallowed (the
        # redelivery then writes nothing), so drain on the database's own count
        t_end = time.monotonic() + 60
        while time.monotonic() < t_end:
            n = await asyncio.to_thread(store.count_readings)
            if bridge.backlog == 0 and n >= sum(accepted.values()):
                break
            await asyncio.sleep(0.5)
        await asyncio.sleep(1.0)
        res.agent_ticks_after_recovery = agent.ok_ticks - ticks_at_restart
        _account(res, dev, accepted, store, n_meters)
        dead = await asyncio.to_thread(store.events, "deadletter", None, 1000)
        reasons = " | ".join(e["message"] for e in dead)
        res.deadletters = len(dead)
        res.hostile_sent = dev.hostile_sent
        res.deadletter_reasons_missing = [r for _, r in dev.hostile if r not in reasons]
    finally:
        dev.stop_evt.set()
        await bridge.stop()
        await rt.bus.delete_streams()
        await rt.stop()
        store.drop_schema()
        store.close()
    return res


def _account(res: DrillResult, dev: _Device, accepted: dict[int, int], store, n: int) -> None:
    res.messages_sent = len(dev.infos)
    res.messages_device_acked = sum(dev.acked(s) for s in dev.infos)
    res.messages_accepted = len([s for s in accepted if s in dev.payloads])
    res.readings_accepted = sum(v for s, v in accepted.items() if s in dev.payloads)
    res.device_acked_not_accepted = sum(1 for s in dev.infos if dev.acked(s) and s not in accepted)
    df = store.query_readings(limit=10_000_000)
    res.readings_stored = len(df)
    ts_s = (df.ts - pd.Timestamp(0, tz="UTC")).dt.total_seconds().to_numpy()
    seq = np.round((ts_s - dev.t0) * 100).astype(int)
    meter = df.device_id.str.removeprefix("m")
    good_id = df.device_id.str.fullmatch(r"m\d+") & meter.str.isdigit()
    k = np.where(good_id, meter, "-1").astype(int)
    expected = seq + k / 1000
    exact = good_id.to_numpy() & (k < n) & np.isclose(df.value.to_numpy(), expected, atol=1e-9)
    exact &= np.isin(seq, list(dev.payloads))
    res.bad_stored = int((~exact).sum())
    pairs = set(zip(seq[exact].tolist(), k[exact].tolist(), strict=True))
    res.duplicated = int(exact.sum()) - len(pairs)
    per_seq = np.bincount([s for s, _ in pairs], minlength=max(dev.payloads, default=0) + 1)
    res.lost = sum(max(v - int(per_seq[s]), 0) for s, v in accepted.items() if s in dev.payloads)
