"""Fleet scale-out: throughput, loop times, CPU and memory from 1 to 100 feeders on Ray.

    .venv/bin/python bench/bench_fleet.py [--sizes 1 10 50 100] [--asset-scale 0.25]
        [--full-size-feeders 5] [--bus nats://127.0.0.1:4222]

Every run steps N feeders (varied copies of the bundled scenario: the same 111-bus SimBench
network, load profiles and weather; each feeder its own seeded customers' assets and plant)
over one day at 15-minute steps, each with the MPC re-planning hourly behind the safety
shield, the twin's AC power flow every step, the shared learned forecast (trained once for
the whole bench), a checkpoint committed to the store with every step, telemetry, plans,
limits and the VPP bid published on the fleet bus, and the coordinator sharing a substation
limit of ``--limit-per-feeder-kw`` x N every hour.

Runs: N in ``--sizes`` on 2 Ray workers; N = ``--compare-feeders`` on 1 Ray worker (scaling
efficiency 1 -> 2 workers = throughput(2) / (2 x throughput(1))) and in-process without Ray
(Ray overhead = run time on 1 worker / in-process run time - 1); and ``--full-size-feeders``
feeders at the bundled feeder's full size (asset scale 1) on 2 workers, to compare the costs.
The load average of the shared machine is recorded before and after every run: read the wall
times and the scaling numbers with it. Results: bench/results/fleet.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "fleet.json"
sys.path.insert(0, str(ROOT))


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def _commit() -> str:
    try:
        return subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _write(path: Path, data: dict) -> None:
    path.write_text(json.dumps(data, indent=2), encoding="utf-8")


def one_run(name, n, workers, backend, source, model, args, tmp) -> dict:
    from gridsync.fleet.runner import FleetRunConfig, run_fleet

    # a fresh store and subject prefix per run (a store holding a fleet would resume it, and
    # JetStream would drop a repeated run's messages as duplicates)
    store = str(Path(tmp) / f"{name}-x{source.asset_scale}.sqlite")

    cfg = FleetRunConfig(
        n_feeders=n,
        workers=workers,
        backend=backend,
        source=source,
        store_url=store,
        bus_url=args.bus,
        bus_prefix=f"b{os.getpid()}_{name.replace('-', '_')}"[:32].lower(),
        substation_limit_kw=args.limit_per_feeder_kw * n,
        forecast="learned",
        max_in_flight=args.max_in_flight,
        steps=args.steps,
    )
    before = _load()
    result = run_fleet(cfg, model=model)
    if args.bus:  # the run's stream is not needed after it
        from gridsync.fleet.bus import NatsFleetBus

        bus = NatsFleetBus(args.bus, cfg.bus_prefix)
        bus.delete_stream()
        bus.close()
    out = result.summary()
    out.pop("resumed")
    out.update(asset_scale=source.asset_scale, load_avg_before=before, load_avg_after=_load())
    print(
        f"{backend:9s} {out['workers']}w {n:4d} feeders x{source.asset_scale:<5g}: "
        f"{out['feeder_steps_per_s']:7.2f} feeder-steps/s, loop p50 {out['loop_p50_s']:.3f} s "
        f"p99 {out['loop_p99_s']:.3f} s, CPU {out['cpu_per_feeder_step_s']:.4f} s/feeder-step, "
        f"{out['rss_per_feeder_mb']:.1f} MB/feeder, load {before[0]:.1f}->{out['load_avg_after'][0]:.1f}",
        flush=True,
    )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1, 10, 50, 100])
    ap.add_argument("--asset-scale", type=float, default=0.25)
    ap.add_argument("--compare-feeders", type=int, default=10)
    ap.add_argument("--repeat", type=int, default=2, help="repetitions of the comparison runs")
    ap.add_argument("--full-size-feeders", type=int, default=5, help="0 to skip")
    ap.add_argument("--limit-per-feeder-kw", type=float, default=60.0)
    ap.add_argument("--max-in-flight", type=int, default=2)
    ap.add_argument("--steps", type=int, default=None, help="fewer steps (a quick check)")
    ap.add_argument("--bus", default=None)
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args()

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    import ray

    from gridsync.fleet.forecast import train_shared_model
    from gridsync.fleet.replicas import ReplicaFactory, ScenarioSource

    load_start = _load()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False,
             object_store_memory=256 * 2**20)  # fmt: skip
    source = ScenarioSource(days=1, asset_scale=args.asset_scale)
    base = ReplicaFactory.for_source(source).base
    t0 = time.perf_counter()
    model = train_shared_model(base, "learned")
    train_s = time.perf_counter() - t0
    runs: dict[str, dict] = {}
    n_cmp = args.compare_feeders
    meta = {
        "what": "gridsync fleet on Ray: N feeders x 1 day at 15 min, mpc re-planning hourly "
        "behind the safety shield, AC power flow every step, per-step checkpoints",
        "command": "python bench/bench_fleet.py " + " ".join(sys.argv[1:]),
        "commit": _commit(),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "ray": ray.__version__,
        },  # fmt: skip
        "load_avg_1_5_15_before": load_start,
        "feeder": {
            "network_buses": base.feeder.n_bus,
            "asset_scale": args.asset_scale,
            "assets": base.fleet.size,
            "fleet": base.fleet.counts(),
            "steps": args.steps or base.n_steps,
        },
        "store": "sqlite file per run (temporary)",
        "bus": args.bus or "in-process",
        "limit_per_feeder_kw": args.limit_per_feeder_kw,
        "forecast_train_s": round(train_s, 2),
    }
    # the comparisons first (close together in time), then the headline size: every run is
    # written out as soon as it ends, so an interrupted bench keeps what it measured
    # the three comparison runs are repeated in turn (load on a shared machine drifts) and
    # compared on their best repetition
    cmp_runs = [("inprocess_1w", 1, "inprocess"), ("ray_1w", 1, "ray"), ("ray_2w", 2, "ray")]
    plan = [
        (f"{name}_{n_cmp}_r{r}", n_cmp, workers, backend)
        for r in range(args.repeat)
        for name, workers, backend in cmp_runs
    ]
    plan += [(f"ray_2w_{n}", n, 2, "ray") for n in sorted(args.sizes, reverse=True) if n != n_cmp]
    out_path = Path(args.out)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="bench-fleet-") as tmp:
        for name, n, workers, backend in plan:
            runs[name] = one_run(name, n, workers, backend, source, model, args, tmp)
            _write(out_path, {**meta, "complete": False, "runs": runs})
        full = None
        if args.full_size_feeders:
            full_source = ScenarioSource(days=1, asset_scale=1.0)
            full_base = ReplicaFactory.for_source(full_source).base
            full_model = train_shared_model(full_base, "learned")
            n_full = args.full_size_feeders
            full = one_run("full", n_full, 2, "ray", full_source, full_model, args, tmp)
            full["assets"] = full_base.fleet.size
    ray.shutdown()

    def best(name: str) -> dict:
        reps = [runs[f"{name}_{n_cmp}_r{r}"] for r in range(args.repeat)]
        return max(reps, key=lambda x: x["feeder_steps_per_s"])

    one, two, inproc = best("ray_1w"), best("ray_2w"), best("inprocess_1w")
    runs[f"ray_2w_{n_cmp}"] = two
    efficiency = two["feeder_steps_per_s"] / (2 * one["feeder_steps_per_s"])
    overhead = one["run_s"] / inproc["run_s"] - 1.0
    cpu_ratio = two["cpu_per_feeder_step_s"] / one["cpu_per_feeder_step_s"]
    biggest = runs[f"ray_2w_{max(args.sizes)}"]
    result = {
        **meta,
        "complete": True,
        "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "load_avg_1_5_15_after": _load(),
        "runs": runs,
        "full_size": full,
        "scaling_efficiency_1_to_2_workers": round(efficiency, 3),
        "scaling_efficiency_how": f"best of {args.repeat} runs each at {n_cmp} feeders: "
        "feeder-steps/s on 2 workers / (2 x on 1 worker)",
        "cpu_per_feeder_step_2w_over_1w": round(cpu_ratio, 3),
        "ray_overhead_how": "run time on 1 Ray worker / in-process run time - 1 (best runs)",
        "ray_overhead_vs_inprocess": round(overhead, 3),
        "targets": {
            f"p99_loop_s_at_{max(args.sizes)}_feeders_below_5": biggest["loop_p99_s"] < 5.0,
            "scaling_efficiency_at_least_0.8": efficiency >= 0.8,
            f"ray_overhead_at_{n_cmp}_feeders_below_10pct": overhead < 0.10,
        },
    }
    print(
        f"scaling efficiency 1->2 workers at {n_cmp} feeders: {efficiency:.1%}; "
        f"Ray overhead vs in-process: {overhead:+.1%}; p99 loop at {max(args.sizes)} feeders: "
        f"{biggest['loop_p99_s']:.3f} s"
    )
    _write(out_path, result)
    print(f"wrote {out_path}")


if __name__ == "__main__":
    main()
