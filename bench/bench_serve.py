"""`gridsync serve` integration benchmark: what publishing the console twin on the runtime costs.

For each telemetry path (in-process ingestion; MQTT -> bridge -> bus when Mosquitto answers)
the console session is stepped directly (no wall-clock pacing) and, per step, we measure:

* the console step time (controller, approvals, shield, twin) with the runtime link attached,
  against the same steps of an identical session without any link (baseline, same run);
* the latency from the end of a step until the runtime state (what ``/api/v1/state`` returns)
  shows that step, and until its meter readings are in the store.

Prints a table and writes bench/results/bench_serve.json.

    .venv/bin/python bench/bench_serve.py [--steps 40]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import socket
import time
from pathlib import Path

import numpy as np

from gridsync.api.auth import TokenRegistry
from gridsync.runtime.service import start_service, stop_service

OUT = Path(__file__).parent / "results" / "bench_serve.json"
DAYS = 2  # the demo starts at 10:00, so 2 days leave 152 steps


def ms(xs: list[float], q: float) -> float:
    return round(float(np.percentile(np.asarray(xs) * 1e3, q)), 2)


def broker_answers(port: int = 1883) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


async def _wait(predicate, timeout_s: float = 10.0) -> float:
    """Seconds until ``predicate()`` holds (polling every 1 ms); NaN on timeout."""
    t0 = time.perf_counter()
    while not predicate():
        if time.perf_counter() - t0 > timeout_s:
            return float("nan")
        await asyncio.sleep(0.001)
    return time.perf_counter() - t0


async def run_path(path: str, steps: int) -> dict:
    svc = await start_service(
        tokens=TokenRegistry(),
        demo=True,
        days=DAYS,
        mqtt_url="127.0.0.1:1883" if path == "mqtt" else None,
        store_url="sqlite:///:memory:",
    )
    try:
        session, rt = svc.console.session, svc.runtime
        step_s, to_state_s, to_store_s = [], [], []
        for _ in range(steps):
            stored_before = rt.state.counters["stored_readings"]
            t0 = time.perf_counter()
            await asyncio.to_thread(session.step)
            step_s.append(time.perf_counter() - t0)
            want = session.twin.step
            to_state = await _wait(lambda w=want: (rt.state.twin or {}).get("step") == w)
            to_store = await _wait(lambda b=stored_before: rt.state.counters["stored_readings"] > b)
            to_state_s.append(to_state)
            to_store_s.append(to_state + to_store)  # both counted from the end of the step
        return {
            "path": svc.telemetry_path,
            "steps": steps,
            "readings_per_step": int(rt.state.counters["readings"] / max(steps, 1)),
            "step_ms_p50": ms(step_s, 50),
            "step_ms_p99": ms(step_s, 99),
            "step_to_api_state_ms_p50": ms(to_state_s, 50),
            "step_to_api_state_ms_p99": ms(to_state_s, 99),
            "step_to_store_ms_p50": ms(to_store_s, 50),
            "step_to_store_ms_p99": ms(to_store_s, 99),
            "link_failures": svc.link.failures,
        }
    finally:
        await stop_service(svc)


def baseline(steps: int) -> dict:
    """The same console steps with no runtime link (what `serve` cost before integration)."""
    from gridsync.hitl.policy import ApprovalPolicy
    from gridsync.hitl.session import ConsoleSession
    from gridsync.sim.builder import load_scenario
    from gridsync.sim.registry import make_controller
    from gridsync.web.server import DEMO_IMPORT_LIMIT_KW, DEMO_START, DEMO_START_HOUR, first_step_at

    sc = load_scenario(start=DEMO_START, days=DAYS, history_days=7)
    s = ConsoleSession(
        sc,
        make_controller("tou"),
        ApprovalPolicy(feeder_import_limit_kw=DEMO_IMPORT_LIMIT_KW),
        start_step=first_step_at(sc, DEMO_START_HOUR),
    )
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        s.step()
        times.append(time.perf_counter() - t0)
    return {"steps": steps, "step_ms_p50": ms(times, 50), "step_ms_p99": ms(times, 99)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=40, help="console steps per path")
    args = ap.parse_args()
    if not 1 <= args.steps <= 150:
        ap.error(f"--steps must be within 1..150 (the {DAYS}-day demo window), got {args.steps}")
    load_start = os.getloadavg()
    base = baseline(args.steps)
    rows = [asyncio.run(run_path("inprocess", args.steps))]
    if broker_answers():
        rows.append(asyncio.run(run_path("mqtt", args.steps)))
    else:
        print("Mosquitto not reachable on 127.0.0.1:1883: MQTT path skipped")
    for r in rows:
        r["step_p50_ratio_vs_baseline"] = round(r["step_ms_p50"] / base["step_ms_p50"], 3)
    head = f"{'telemetry path':44} {'step p50/p99 ms':>16} {'->state p50/p99':>16} {'->store p50/p99':>16}"
    print(head)
    print(f"{'baseline (no runtime link)':44} {base['step_ms_p50']:>7} / {base['step_ms_p99']:<7}")
    for r in rows:
        print(
            f"{r['path']:44} {r['step_ms_p50']:>7} / {r['step_ms_p99']:<7}"
            f"{r['step_to_api_state_ms_p50']:>7} / {r['step_to_api_state_ms_p99']:<7}"
            f"{r['step_to_store_ms_p50']:>7} / {r['step_to_store_ms_p99']:<7}"
        )
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text(
        json.dumps(
            {
                "machine": {
                    "cpus": os.cpu_count(),
                    "python": platform.python_version(),
                    "loadavg_start": load_start,
                    "loadavg_end": os.getloadavg(),
                },
                "baseline": base,
                "paths": rows,
            },
            indent=2,
        )
    )
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
