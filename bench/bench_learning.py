"""RL bench: the trained shared policy against the baselines on held-out weeks.

    .venv/bin/python bench/bench_learning.py --checkpoint shared-ppo [--mpc] [--days 2]

What runs: the checkpoint (``gridsync learn train``: behaviour cloning of ``smart-rule`` on
seven 2-day windows of May-August 2016, then PPO with one policy shared by every building,
the shield in the loop, randomised telemetry latency/loss and plant noise) plays the default
scenario (SimBench 1-LV-semiurb5, ~380 assets, the mismatched ``[plant]`` on) on the held-out
windows ``gridsync.learning.train.EVAL_STARTS`` (other weeks than training and validation),
alone (``rl:``) and behind the safety shield (``rl:...+shield``), next to ``uncontrolled``,
``tou``, ``smart-rule`` and, with ``--mpc``, ``mpc+shield``. All through
``gridsync.sim.simulator.simulate`` and ``compute_kpis``.

Reported per controller (mean over windows; violation counts summed): cost, cost incl.
penalties, peak import, voltage/overload violations, violations caused by dispatch (not
violated in the uncontrolled run of the same window), unmet EV energy, comfort, decision time
per step (``act``; shield included for ``+shield``), and the checkpoint's training wall time
from its meta.json. Writes bench/results/learning.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "learning.json"
sys.path.insert(0, str(ROOT))

from gridsync.learning.evaluation import evaluate_window, mean_over_windows  # noqa: E402
from gridsync.learning.policy import META, resolve_checkpoint  # noqa: E402
from gridsync.learning.train import EVAL_STARTS  # noqa: E402
from gridsync.sim.builder import load_scenario  # noqa: E402

COLUMNS = (
    ("total_cost_eur", "cost EUR"),
    ("total_cost_incl_penalties_eur", "incl. pen."),
    ("peak_import_kw", "peak kW"),
    ("violations", "viol."),
    ("violations_caused", "caused"),
    ("unmet_ev_kwh", "unmet EV kWh"),
    ("comfort_violation_degree_hours", "comfort °C·h"),
    ("decision_ms_per_step", "ms/step"),
)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--checkpoint", default="shared-ppo")
    ap.add_argument("--days", type=int, default=2)
    ap.add_argument("--start", action="append", type=dt.date.fromisoformat, default=None)
    ap.add_argument("--mpc", action="store_true", help="also run mpc+shield (slow)")
    ap.add_argument("--out", type=Path, default=RESULTS, help="results JSON")
    args = ap.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    path = resolve_checkpoint(args.checkpoint)
    meta = json.loads((path / META).read_text())
    rl = f"rl:{args.checkpoint}"
    names = ["tou", "smart-rule", rl, f"{rl}+shield"] + (["mpc+shield"] if args.mpc else [])
    starts = tuple(args.start or EVAL_STARTS)
    per_window = {}
    t0 = time.perf_counter()
    for start in starts:
        sc = load_scenario(start=start, days=args.days, history_days=7)
        per_window[str(start)] = evaluate_window(
            sc, names, lambda n, s=start: print(f"  {s} {n}", file=sys.stderr, flush=True)
        )
    mean = mean_over_windows(per_window)
    header = f"{'controller':34}" + "".join(f"{h:>14}" for _, h in COLUMNS)
    print(header)
    for n, row in mean.items():
        print(f"{n:34}" + "".join(f"{row[k]:14.2f}" for k, _ in COLUMNS))
    summary = meta.get("summary", {})
    commit = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    out = {
        "what": "held-out windows, default scenario with the plant mismatch; means over windows, "
        "violation counts summed; violations_caused = not violated by uncontrolled",
        "commit": commit,
        "machine": f"{platform.machine()}, {os.cpu_count()} shared cores",
        "checkpoint": str(args.checkpoint),
        "training": {
            "wall_s": summary.get("training_wall_s"),
            "chosen": summary.get("chosen"),
            "chosen_ppo_steps": summary.get("chosen_ppo_steps"),
            "validation": summary.get("validation"),
            "config": meta.get("config"),
        },
        "windows": list(starts),
        "days": args.days,
        "bench_wall_s": time.perf_counter() - t0,
        "mean": mean,
        "per_window": per_window,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2, default=str))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
