"""Runtime benchmark: store-only and end-to-end ingestion throughput (per-reading JSON and
columnar batches, in-process and NATS bus), bus and API latency, the 10k-asset loop latency
under continuous ingestion, and fault drills that crash the real servers (private instances).

Prints a table and writes bench/results/bench_runtime.json. The shared services (PostgreSQL,
NATS, Mosquitto on their standard ports) are used when reachable and reported as skipped
otherwise; the fault drills start their own servers. All rates come from the same run; the
machine's 2 cores are shared with other work (load average recorded), so timings are noisy.

    .venv/bin/python bench/bench_runtime.py [--quick] [--no-faults]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import time
import uuid
from pathlib import Path

import numpy as np
from runtime_e2e import bench_e2e_mqtt, bench_e2e_two_processes

from gridsync.bus import InProcessBus
from gridsync.bus.base import encode
from gridsync.data.ingest import Ingestor, TelemetryValidator
from gridsync.runtime.runtime import Runtime
from gridsync.store import ReadingBatch, SqliteStore, StoreError

PG_DSN = "postgresql://postgres@127.0.0.1:5432/test"
OUT = Path(__file__).parent / "results" / "bench_runtime.json"


def pct(xs, q):
    return float(np.percentile(np.asarray(xs) * 1e3, q))


def pg_store():
    from gridsync.store.postgres import PostgresStore

    s = PostgresStore(PG_DSN, schema="bench_" + uuid.uuid4().hex[:8])
    try:
        s.migrate()
    except StoreError as err:
        print(f"  PostgreSQL unavailable: {err}")
        return None
    return s


def drop(store):
    if store is not None and store.kind == "postgres":
        store.drop_schema()
    if store is not None:
        store.close()


def batches(n_total: int, per_batch: int, n_meters: int = 2000):
    t0 = time.time() - 3600
    k = 0
    while k < n_total:
        n = min(per_batch, n_total - k)
        i = np.arange(k, k + n)
        yield ReadingBatch(
            t0 + (i // n_meters) * 1.0,
            np.array([f"meter-{j}" for j in (i % n_meters)], dtype=object),
            np.full(n, "p", dtype=object),
            np.full(n, "kW", dtype=object),
            np.sin(i) * 5.0,
        )
        k += n


def bench_store(store, n_total: int, per_batch: int) -> dict:
    bs = list(batches(n_total, per_batch))
    t = time.perf_counter()
    stored = sum(store.write_readings(b, batch_id=f"bench:{i}") for i, b in enumerate(bs))
    dt = time.perf_counter() - t
    assert stored == n_total == store.count_readings(), (stored, n_total)
    return {
        "store": store.kind,
        "readings": n_total,
        "batch": per_batch,
        "seconds": dt,
        "readings_per_s": n_total / dt,
    }


async def bus_latency(bus, n: int) -> dict:
    await bus.connect()
    got = asyncio.Queue()

    async def handler(msg):
        got.put_nowait(time.perf_counter())

    await bus.subscribe("telemetry", handler)
    lat = []
    for i in range(n):
        t = time.perf_counter()
        await bus.publish("telemetry", {"i": i, "v": 1.0})
        lat.append(await asyncio.wait_for(got.get(), 10) - t)
    # throughput: fire-and-collect
    t = time.perf_counter()
    for k in range(0, n, 100):  # up to 100 publishes awaiting their acks concurrently
        await asyncio.gather(
            *(bus.publish("telemetry", {"i": i, "v": 1.0}) for i in range(k, min(k + 100, n)))
        )
    for _ in range(n):
        await asyncio.wait_for(got.get(), 30)
    thr = n / (time.perf_counter() - t)
    if bus.kind == "nats":
        await bus.delete_streams()
    await bus.close()
    return {
        "bus": bus.kind,
        "messages": n,
        "p50_ms": pct(lat, 50),
        "p99_ms": pct(lat, 99),
        "msgs_per_s": thr,
    }


def api_latency(n: int) -> dict:
    from fastapi.testclient import TestClient

    from gridsync.api.app import create_app
    from gridsync.api.auth import TokenRegistry

    reg = TokenRegistry()
    tok = reg.issue("bench", "viewer")
    rt = Runtime(step_s=3600)
    keys = [f"bus-{i}/{q}" for i in range(111) for q in ("p", "q", "v")]
    rt.buffer.ingest(keys, np.full(len(keys), time.time()), np.ones(len(keys)))
    rt.state.snapshot = rt.buffer.snapshot(time.time() + 1).to_dict()
    lat = []
    with TestClient(create_app(rt, tokens=reg)) as c:
        hdr = {"Authorization": f"Bearer {tok}"}
        for _ in range(n):
            t = time.perf_counter()
            r = c.get("/api/v1/state", headers=hdr)
            lat.append(time.perf_counter() - t)
            assert r.status_code == 200
    return {
        "endpoint": "/api/v1/state",
        "series": len(keys),
        "requests": n,
        "p50_ms": pct(lat, 50),
        "p99_ms": pct(lat, 99),
    }


async def loop_latency(
    store, n_assets: int, n_steps: int, step_s: float, bg_readings_per_s: float
) -> dict:
    """Per step: 2 readings (p, soc) per asset arrive as columnar batches of 1000 assets
    through the validator and bus into the state buffer; then a vectorised dispatcher (peak
    shaving on the snapshot) and the limits clip run and setpoints are published. Latency =
    setpoints received - last measurement message published. Background meter traffic
    (columnar, 1000 readings per message, paced to ``bg_readings_per_s``) flows through the
    same validator, bus and store sink throughout."""
    rt = Runtime(InProcessBus(), store, step_s=3600)
    await rt.start()
    ing = Ingestor(rt.bus, TelemetryValidator(max_age_s=1e9))
    ids = [f"asset-{i}" for i in range(n_assets)]
    keys_p = [f"{d}/p" for d in ids]
    keys_soc = [f"{d}/soc" for d in ids]
    rating = np.full(n_assets, 5.0)
    received = asyncio.Queue()

    async def on_sp(msg):
        received.put_nowait((msg.data["step"], time.perf_counter()))

    await rt.bus.subscribe("setpoints", on_sp)
    stop = asyncio.Event()

    bg_sent = [0]

    async def background():
        seq, per_msg = 0, 1000
        ids = [f"bg-{i}" for i in range(per_msg)]
        period = per_msg / bg_readings_per_s
        next_t = time.perf_counter()
        while not stop.is_set():
            seq += 1
            body = {"source": "bg", "seq": seq, "device_id": ids, "quantity": "v", "unit": "pu",
                    "ts_s": time.time(), "value": [1.0] * per_msg}  # fmt: skip
            await ing.submit(encode(body))
            bg_sent[0] += per_msg
            next_t += period
            await asyncio.sleep(max(next_t - time.perf_counter(), 0))

    bg = asyncio.create_task(background())
    t_bg0 = time.perf_counter()
    lat = []
    seq = 0
    for step in range(n_steps):
        t_step = time.perf_counter()
        now = time.time()
        p = np.random.default_rng(step).uniform(-3, 3, n_assets)
        soc = np.random.default_rng(step + 1).uniform(0.1, 0.9, n_assets)
        for k in range(0, n_assets, 1000):
            for q, unit, v in (("p", "kW", p), ("soc", "frac", soc)):
                seq += 1
                body = {"source": "fleet", "seq": seq, "device_id": ids[k : k + 1000],
                        "quantity": q, "unit": unit, "ts_s": now, "value": v[k : k + 1000]}  # fmt: skip
                await ing.submit(encode(body))
        t_last = time.perf_counter()
        # the bus delivers asynchronously: wait until this step's readings are in the buffer
        target = now
        while True:
            pos = rt.buffer.indices(keys_soc[-1:])
            if rt.buffer._ts[0, pos[0]] >= target:
                break
            await asyncio.sleep(0)
        snap = rt.buffer.snapshot(time.time() + 1)
        idx = {k: i for i, k in enumerate(snap.keys)}
        pi = np.fromiter((idx[k] for k in keys_p), int, n_assets)
        si = np.fromiter((idx[k] for k in keys_soc), int, n_assets)
        net = snap.value[pi].sum()
        # vectorised peak shaving: discharge in proportion to state of charge above 20 %
        share = np.clip(snap.value[si] - 0.2, 0, None)
        req = -net * share / max(share.sum(), 1e-9)
        sp = np.clip(req, -rating, rating)
        await rt.bus.publish("setpoints", {"step": step, "setpoints": {"battery_kw": sp}})
        while True:
            s, t_recv = await received.get()
            if s == step:
                break
        lat.append(t_recv - t_last)
        spent = time.perf_counter() - t_step
        await asyncio.sleep(max(step_s - spent, 0))
    t_bg = time.perf_counter() - t_bg0
    stop.set()
    await bg
    stored = rt.state.counters["stored_readings"]
    await rt.stop()
    return {
        "assets": n_assets,
        "store": store.kind,
        "readings_per_step": 2 * n_assets,
        "background_readings_per_s_target": bg_readings_per_s,
        "background_readings_per_s_achieved": bg_sent[0] / t_bg,
        "stored_readings": stored,
        "steps": n_steps,
        "step_s": step_s,
        "p50_ms": pct(lat, 50),
        "p99_ms": pct(lat, 99),
        "max_ms": pct(lat, 100),
    }


async def amain(quick: bool, faults: bool = True) -> dict:
    res: dict = {
        "machine": platform.platform(),
        "python": platform.python_version(),
        "quick": quick,
        "cpus": os.cpu_count(),
        "loadavg_1m_at_start": os.getloadavg()[0],  # the 2 cores are shared with other work
    }
    n = 50_000 if quick else 300_000
    print("store bulk ingestion ...")
    res["store_ingest"] = []
    for make, per_batch in ((SqliteStore, 5000), (pg_store, 5000), (pg_store, 20000)):
        s = make()
        if s is None:
            continue
        if s.kind == "sqlite":
            s.migrate()
        res["store_ingest"].append(bench_store(s, n, per_batch))
        drop(s)
    print("end-to-end MQTT -> bridge -> bus -> store ...")
    res["e2e_mqtt"] = []
    k = 4 if quick else 1
    cases = [  # (store, bus, format, messages, readings per message)
        (pg_store, "inprocess", "readings", 200 // k, 500),
        (pg_store, "inprocess", "columnar", 200 // k, 1000),
        (pg_store, "inprocess", "columnar", 100 // k, 5000),
        (pg_store, "nats", "readings", 200 // k, 500),
        (pg_store, "nats", "columnar", 200 // k, 1000),
        (pg_store, "nats", "columnar", 100 // k, 5000),
        (pg_store, "inprocess", "readings", 800 // k, 1),
        (pg_store, "nats", "readings", 800 // k, 1),
        (SqliteStore, "inprocess", "readings", 200 // k, 500),
        (SqliteStore, "inprocess", "columnar", 100 // k, 5000),
    ]
    for make, bus_kind, fmt, n_msgs, per_msg in cases:
        s = make()
        if s is None:
            continue
        r = await bench_e2e_mqtt(s, bus_kind, fmt, n_msgs, per_msg)
        if r:
            res["e2e_mqtt"].append(r)
        drop(s)
    for fmt, n_msgs, per_msg in (("readings", 200 // k, 500), ("columnar", 200 // k, 1000),
                                 ("columnar", 100 // k, 5000), ("readings", 800 // k, 1)):  # fmt: skip
        s = pg_store()
        if s is None:
            break
        r = await bench_e2e_two_processes(s, fmt, n_msgs, per_msg)
        if r:
            res["e2e_mqtt"].append(r)
        drop(s)
    print("bus latency ...")
    res["bus"] = [await bus_latency(InProcessBus(), 2000)]
    try:
        from gridsync.bus.nats import NatsBus

        res["bus"].append(
            await bus_latency(
                NatsBus(prefix="bench" + uuid.uuid4().hex[:6]), 1000 if quick else 2000
            )
        )
    except Exception as err:
        print(f"  NATS unavailable: {err!r}")
    print("API latency ...")
    res["api"] = await asyncio.to_thread(api_latency, 300)
    print("10k-asset loop latency under continuous ingestion ...")
    res["loop"] = []
    for bg_rate in (5_000.0, 50_000.0):
        s = pg_store() or SqliteStore()
        res["loop"].append(await loop_latency(s, 10_000, 8 if quick else 20, 1.0, bg_rate))
        drop(s)
    if faults:
        print("fault drills on private servers ...")
        res["faults"] = await fault_drills(quick)
    return res


async def fault_drills(quick: bool) -> dict:
    """Crash (SIGKILL; PostgreSQL: immediate shutdown) or stop each real server during
    continuous ingestion; see gridsync.runtime.fault_drill for the bookkeeping."""
    from gridsync.runtime.fault_drill import Lab, run_drill
    from gridsync.runtime.private_services import missing_binaries

    missing = missing_binaries()
    if missing:
        print(f"  skipped: missing {missing}")
        return {"skipped": f"missing {missing}"}
    runs = [("postgres", True), ("nats", True), ("mosquitto", True)]
    if not quick:
        runs += [("postgres", False), ("nats", False), ("mosquitto", False)]
    out = []
    with Lab() as lab:
        for server, hard in runs:
            r = (await run_drill(lab, server, hard)).to_dict()
            print(f"  {server:9s} {r['mode']:4s} ok={r['ok']} lost={r['lost']} dup={r['duplicated']}"
                  f" bad={r['bad_stored']} recovery {r['recovery_s']:.2f} s")  # fmt: skip
            out.append(r)
    return {"drills": out, "all_ok": all(r["ok"] for r in out)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="smaller sizes (about a minute)")
    ap.add_argument("--no-faults", action="store_true", help="skip the server fault drills")
    args = ap.parse_args()
    res = asyncio.run(amain(args.quick, not args.no_faults))
    res["loadavg_1m_at_end"] = os.getloadavg()[0]
    print()
    print(f"{'benchmark':44s} {'size':>22s} {'result':>30s}")
    for r in res["store_ingest"]:
        name = f"store write_readings ({r['store']}, batch {r['batch']})"
        print(f"{name:44s} {r['readings']:>14,d} readings {r['readings_per_s']:>20,.0f} rd/s")
    for r in res["e2e_mqtt"]:
        name = f"MQTT->{r['bus']}->{r['store']} ({r['format']} x{r['readings_per_msg']})"
        flag = "" if r["complete"] else "  INCOMPLETE"
        print(f"{name:44s} {r['stored']:>14,d} readings {r['readings_per_s']:>20,.0f} rd/s{flag}")
    base = res["bus"][0]
    for r in res["bus"]:
        ratio = r["p50_ms"] / base["p50_ms"]
        print(
            f"{'bus round trip (' + r['bus'] + ')':44s} {r['messages']:>14,d} messages  p50 {r['p50_ms']:.3f} ms p99 {r['p99_ms']:.3f} ms ({ratio:.0f}x)"
        )
        print(
            f"{'bus throughput (' + r['bus'] + ')':44s} {'':>23s} {r['msgs_per_s']:>20,.0f} msg/s"
        )
    a = res["api"]
    print(
        f"{'API GET /api/v1/state':44s} {a['series']:>14,d} series   p50 {a['p50_ms']:.2f} ms p99 {a['p99_ms']:.2f} ms"
    )
    for lp in res["loop"]:
        name = f"loop: measurement -> setpoints (bg {lp['background_readings_per_s_achieved']:,.0f} rd/s)"
        print(
            f"{name:44s} {lp['assets']:>14,d} assets   p50 {lp['p50_ms']:.0f} ms p99 {lp['p99_ms']:.0f} ms"
        )
    for r in res.get("faults", {}).get("drills", []):
        name = f"fault drill: {r['server']} {r['mode']}"
        print(f"{name:44s} {r['readings_stored']:>14,d} stored   lost {r['lost']} dup {r['duplicated']}"
              f" bad {r['bad_stored']} recovery {r['recovery_s']:.2f} s ok={r['ok']}")  # fmt: skip
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(res, indent=2))
    print(f"\nwrote {OUT}")


if __name__ == "__main__":
    main()
