"""Effect of the plant-model mismatch (gridsync.sim.plant) on the controllers' results.

    .venv/bin/python bench/bench_plant.py [--days 7] [--controllers uncontrolled tou mpc+shield]

Runs each controller on the bundled scenario twice, with the shipped plant (on by default) and
with the model as plant (``[plant] enabled = false``), and writes the KPIs side by side to
bench/results/bench_plant.json, with violations caused by dispatch (bus/branch-steps violated
in a run but not in ``uncontrolled`` on the same plant).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "bench_plant.json"
sys.path.insert(0, str(ROOT))

KEYS = (
    "total_cost_eur",
    "total_cost_incl_penalties_eur",
    "peak_import_kw",
    "import_kwh",
    "voltage_violation_bus_steps",
    "overload_branch_steps",
    "unmet_ev_kwh",
    "unmet_deferrable_kwh",
    "comfort_violation_degree_hours",
    "curtailed_kwh",
)


def _violations(result, limits):
    with np.errstate(invalid="ignore"):
        vm = result.vm_pu
        v_bad = (vm < limits.voltage_min_pu) | (vm > limits.voltage_max_pu) | np.isnan(vm)
        loading = result.branch_loading_pct
        l_bad = (loading > limits.loading_max_pct) | np.isnan(loading)
    return v_bad, l_bad


def run(days: int, controllers: list[str]) -> dict:
    from gridsync.cli.controllers import make_controller
    from gridsync.sim.builder import load_scenario
    from gridsync.sim.kpi import compute_kpis
    from gridsync.sim.simulator import simulate

    shipped = load_scenario(days=days)
    variants = {"plant": shipped, "model_as_plant": dataclasses.replace(shipped, plant=None)}
    out: dict = {}
    for label, scenario in variants.items():
        lim = scenario.config.limits
        base = None
        rows = {}
        for name in ["uncontrolled", *[c for c in controllers if c != "uncontrolled"]]:
            t0 = time.perf_counter()
            res = simulate(scenario, make_controller(name))
            k = compute_kpis(res, scenario)
            row = {key: k[key] for key in KEYS if key in k}
            v_bad, l_bad = _violations(res, lim)
            if base is None:
                base = (v_bad, l_bad)
            row["voltage_violations_caused_bus_steps"] = int((v_bad & ~base[0]).sum())
            row["overloads_caused_branch_steps"] = int((l_bad & ~base[1]).sum())
            row["wall_s"] = round(time.perf_counter() - t0, 1)
            rows[name] = row
            print(label, name, {k: round(v, 2) for k, v in row.items()}, flush=True)
        out[label] = {c: rows[c] for c in controllers}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--days", type=int, default=7)
    ap.add_argument("--controllers", nargs="+", default=["uncontrolled", "tou", "mpc+shield"])
    args = ap.parse_args()
    from gridsync.model.scenario_config import PlantConfig

    payload = {
        "what": "bundled scenario, shipped plant vs model as plant; *_caused_* = violated here "
        "but not uncontrolled on the same plant",
        "days": args.days,
        "plant_config": PlantConfig().model_dump(),
        "runs": run(args.days, args.controllers),
        "machine": {"python": platform.python_version()},
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(payload, indent=2))
    print(f"wrote {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
