"""Solve time and size of the perfect-foresight bound (``--controller oracle``).

    .venv/bin/python bench/bench_bound.py [--days 2 7]

For each window length, builds the bundled scenario on the model as plant, runs the bound's
single full-window LP (native 15-minute resolution, every asset, network rows, AC-checked
losses) from the first step and records the LP's size, the time of each phase and the bound
in EUR, to bench/results/bench_bound.json. Wall times on a shared machine: read them with the
CPU time and the load average recorded next to them.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "bench_bound.json"
sys.path.insert(0, str(ROOT))


def run(days: int) -> dict:
    from gridsync.dispatch.formulation import build_dispatch_lp
    from gridsync.dispatch.oracle import PerfectForesightBound
    from gridsync.sim.builder import load_scenario
    from gridsync.sim.twin import SteppedTwin

    scenario = dataclasses.replace(load_scenario(days=days), plant=None)
    ctrl = PerfectForesightBound()
    ctrl.reset(scenario)
    obs = SteppedTwin(scenario).observe()
    t0, c0 = time.perf_counter(), time.process_time()
    ctrl.act(obs)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    plan = ctrl.last_plan
    lp, _ = build_dispatch_lp(ctrl.horizon(obs), ctrl.weights, None, ctrl.options)
    return {
        "days": days,
        "steps": scenario.n_steps,
        "assets": scenario.fleet.size,
        "status": plan.status,
        "bound_eur": ctrl.bound_eur,
        "wall_s": wall,
        "cpu_s": cpu,
        "timings_s": plan.timings_s,
        "network_passes": plan.network_iterations,
        "lp_without_network_rows": {"cols": lp.n_col, "rows": lp.n_row, "nnz": lp.matrix().nnz},
        "load_avg_1min": os.getloadavg()[0],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--days", type=int, nargs="+", default=[2, 7])
    args = ap.parse_args()
    rows = []
    for d in args.days:
        r = run(d)
        rows.append(r)
        print(
            f"{d} days: {r['status']} bound {r['bound_eur']:.2f} EUR in {r['wall_s']:.1f} s wall, {r['cpu_s']:.1f} s CPU "
            f"(solve {r['timings_s'].get('solve', float('nan')):.1f} s, "
            f"{r['network_passes']} passes), LP {r['lp_without_network_rows']}",
            flush=True,
        )
    out = {
        "what": "perfect-foresight bound: one full-window LP on the bundled scenario",
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
        "runs": rows,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(out, indent=2), encoding="utf-8")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
