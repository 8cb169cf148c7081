"""GridSync's controllers on the CityLearn 2022 challenge data, full year, all buildings.

    .venv/bin/python bench/bench_citylearn.py [--hours N] [--controllers mpc ...]

Unpacks bench/data/citylearn_challenge_2022_phase_all.tar.gz (the CityLearn repository's
dataset, 17 homes with PV and a 6.4 kWh battery each, 8760 hours) into a temp dir, runs
no-battery, the self-consumption rule, the MPC (no look-ahead) and the perfect-foresight
bound with and without the no-battery peak cap, prints the KPI table and writes
bench/results/citylearn.json and reports/citylearn_citylearn_challenge_2022_phase_all.html.
Wall times are on a shared machine: the CPU time and load average are recorded next to them.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "bench" / "data" / "citylearn_challenge_2022_phase_all.tar.gz"
RESULTS = ROOT / "bench" / "results" / "citylearn.json"
sys.path.insert(0, str(ROOT))

KEYS = ("score_2022", "cost_ratio", "co2_ratio", "ramping_ratio", "one_minus_load_factor_ratio",
        "daily_peak_ratio", "all_time_peak_ratio", "building_cost_ratio_mean",
        "building_co2_ratio_mean", "peak_import_kw", "peak_import_kw_no_battery")


def main() -> None:
    from gridsync.citylearn.cli import make_controller
    from gridsync.citylearn.dataset import read_dataset
    from gridsync.citylearn.report import write_report
    from gridsync.citylearn.simulate import run

    parser = argparse.ArgumentParser()
    parser.add_argument("--hours", type=int, default=None)
    parser.add_argument("--controllers", nargs="+",
                        default=["no-battery", "rule", "mpc", "bound", "bound-peak-cap"])
    parser.add_argument("--merge", nargs="*", type=Path, default=None,
                        help="also keep the controllers' rows of these earlier result JSONs")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        with tarfile.open(DATA) as tar:
            tar.extractall(tmp, filter="data")
        dataset = read_dataset(Path(tmp) / "citylearn_challenge_2022_phase_all")
    if args.hours:
        dataset = dataset.truncated(args.hours)
    results, rows = [], {}
    for name in args.controllers:
        c0 = time.process_time()
        result = run(dataset, make_controller(name, dataset))
        cpu = time.process_time() - c0
        results.append(result)
        extra = {k: v for k, v in result.kpis.items() if k.startswith("lp_")}
        rows[name] = {**{k: result.kpis[k] for k in KEYS}, **extra,
                      "wall_s": round(result.runtime_s, 1), "cpu_s": round(cpu, 1)}
        print(f"{name:>16}: " + ", ".join(f"{k}={v:.4f}" for k, v in rows[name].items()), flush=True)
    report = write_report(dataset, results,
                          ROOT / "reports" / f"citylearn_{dataset.name}.html")
    for earlier in args.merge or []:
        rows = {**json.loads(earlier.read_text())["controllers"], **rows}
    payload = {
        "dataset": "citylearn_challenge_2022_phase_all (CityLearn repository, MIT)",
        "buildings": len(dataset.buildings),
        "hours": dataset.hours,
        "load_average_1m": os.getloadavg()[0],
        "controllers": rows,
        "command": "python bench/bench_citylearn.py (wall and CPU seconds per controller; "
                   "the machine's 2 cores are shared, see load_average_1m)",
        "report": str(report.relative_to(ROOT)),
    }
    if "mpc" in rows:
        mpc = rows["mpc"]
        payload["targets"] = {
            "mpc_score_2022_le_0.72": mpc["score_2022"] <= 0.72,
            "mpc_peak_not_above_no_battery": mpc["peak_import_kw"] <= mpc["peak_import_kw_no_battery"] + 1e-9,
            "mpc_full_year_under_5_min_cpu": mpc["cpu_s"] < 300,
            "mpc_full_year_under_5_min_wall": mpc["wall_s"] < 300,
        }
    print(f"\n{'KPI':<30}" + "".join(f"{n:>16}" for n in rows))
    for key in (*KEYS, "lp_score_2022", "wall_s", "cpu_s"):
        print(f"{key:<30}" + "".join(f"{r.get(key, float('nan')):>16.4f}" for r in rows.values()))
    args.out.write_text(json.dumps(payload, indent=2))
    print(f"\nwrote {args.out} and {payload['report']}")


if __name__ == "__main__":
    main()
