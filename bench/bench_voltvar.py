"""Voltage regulation on the summer high-PV scenario: baselines, OLTC and the optimizer with
reactive power and taps.

    PYTHONPATH=$PWD .venv/bin/python bench/bench_voltvar.py [--days 28] [--start 2016-06-06]
        [--only NAME,...] [--out bench/results/voltvar.json]

Runs, each over the same window:

- ``uncontrolled`` and ``volt-var`` (every PV inverter on the IEEE 1547-2018 Category B default
  Volt-VAR curve, reactive priority, kVA = kWp, solved to steady state with the power flow in
  each twin step) on the scenario as it is (fixed tap), and again with an OLTC on the feeder
  transformer under its local band controller (``+oltc``: band ``OLTC`` below, 60 s delay, the
  network's +-2 x 2.5 % taps);
- ``mpc-p+shield`` (the optimizer on active power only) and ``mpc+shield`` (inverter Q in the
  LP, the tap position per re-plan) on the same feeder with the OLTC under dispatch control
  (``OLTC_DISPATCH``: the tap moves only when the controller commands it, at most
  ``max_operations_per_day`` a day).

Per run: voltage-violation bus-steps (outside 0.95-1.05 p.u.), bus-steps above 1.05 p.u.,
days with a violation, max/min voltage, curtailed PV (kWh, inverter limits included), the
inverters' reactive energy (kvarh, |Q|), tap operations (total, most in a day), losses (kWh),
cost and cost incl. penalties; then the issue-19 targets. ``--only`` runs a subset and merges
it into the existing JSON (so the slow optimizer runs can go in separate processes). Prints a
table and writes bench/results/voltvar.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "voltvar.json"
SCENARIOS = ROOT / "gridsync" / "data" / "scenarios"
OLTC = {"enabled": True, "vm_lower_pu": 0.97, "vm_upper_pu": 1.01, "time_delay_s": 60.0}
OLTC_DISPATCH = {**OLTC, "control": "dispatch", "max_operations_per_day": 30}
# label -> (controller, OLTC settings or None)
RUNS = {
    "uncontrolled": ("uncontrolled", None),
    "volt-var": ("volt-var", None),
    "uncontrolled+oltc": ("uncontrolled", OLTC),
    "volt-var+oltc": ("volt-var", OLTC),
    "mpc-p+shield": ("mpc-p+shield", OLTC_DISPATCH),
    "mpc+shield": ("mpc+shield", OLTC_DISPATCH),
}
KEYS = [
    "voltage_violation_bus_steps",
    "max_voltage_pu",
    "min_voltage_pu",
    "curtailed_kwh",
    "reactive_kvarh",
    "losses_kwh",
    "total_cost_eur",
    "total_cost_incl_penalties_eur",
    "tap_operations",
    "runtime_s",
]


def run(days: int, start: str, labels: list[str]) -> dict:
    from gridsync.model.tap_changer import OLTCConfig
    from gridsync.sim.builder import build_scenario, load_scenario
    from gridsync.sim.kpi import compute_kpis
    from gridsync.sim.registry import make_controller
    from gridsync.sim.simulator import simulate

    plain = load_scenario("summer-high-pv", start=dt.date.fromisoformat(start), days=days)
    cfg = plain.config
    lim = cfg.limits
    steps_per_day = int(round(24 / plain.dt_h))
    out = {}
    for label in labels:
        name, oltc = RUNS[label]
        scenario = plain
        if oltc is not None:
            grid = cfg.grid.model_copy(update={"oltc": OLTCConfig(**oltc)})
            scenario = build_scenario(cfg.model_copy(update={"grid": grid}), base_dir=SCENARIOS)
        res = simulate(scenario, make_controller(name))
        k = compute_kpis(res, scenario)
        with np.errstate(invalid="ignore"):
            over = res.vm_pu > lim.voltage_max_pu
            bad = over | (res.vm_pu < lim.voltage_min_pu) | np.isnan(res.vm_pu)
        per_day = bad.any(axis=1).reshape(-1, steps_per_day).any(axis=1)
        taps = np.asarray(res.extras["tap_operations"]).reshape(-1, steps_per_day).sum(axis=1)
        row = {key: float(k[key]) for key in KEYS}
        row["overvoltage_bus_steps"] = int(over.sum())
        row["days_with_violation"] = int(per_day.sum())
        row["max_tap_operations_per_day"] = int(taps.max())
        row["powerflow_failures"] = int(k["powerflow_failures"])
        out[label] = row
    return out


def targets(rows: dict) -> dict:
    """Issue 19's targets from the rows present."""
    out = {}
    if {"uncontrolled", "volt-var"} <= rows.keys():
        base = rows["uncontrolled"]["voltage_violation_bus_steps"]
        vv = rows["volt-var"]["voltage_violation_bus_steps"]
        out["volt_var_violation_reduction_frac"] = (base - vv) / base if base else float("nan")
        out["volt_var_fewer_violations_than_uncontrolled"] = vv < base
    if {"mpc+shield", "mpc-p+shield"} <= rows.keys():
        q, p = rows["mpc+shield"], rows["mpc-p+shield"]
        cut = 1 - q["curtailed_kwh"] / p["curtailed_kwh"] if p["curtailed_kwh"] else float("nan")
        out["mpc_zero_violations"] = q["voltage_violation_bus_steps"] == 0
        out["mpc_curtailment_reduction_vs_mpc_p_frac"] = cut
        out["mpc_curtailment_halved"] = bool(cut >= 0.5)
        out["mpc_cost_incl_penalties_not_higher"] = (
            q["total_cost_incl_penalties_eur"] <= p["total_cost_incl_penalties_eur"]
        )
        limit = OLTC_DISPATCH["max_operations_per_day"]
        out["mpc_tap_operations_within_wear_limit"] = q["max_tap_operations_per_day"] <= limit
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--days", type=int, default=28)
    ap.add_argument("--start", default="2016-06-06")
    ap.add_argument("--only", default=",".join(RUNS), help="comma-separated run labels")
    ap.add_argument("--out", default=str(RESULTS), help="JSON to write (merged with --only)")
    args = ap.parse_args()
    out_path = Path(args.out).resolve()
    labels = [x for x in args.only.split(",") if x]
    unknown = sorted(set(labels) - RUNS.keys())
    if unknown:
        ap.error(f"--only: unknown run labels {unknown}; choose from {', '.join(RUNS)}")
    t0 = time.perf_counter()
    rows = run(args.days, args.start, labels)
    payload = {"controllers": {}, "wall_s": {}, "command": {}}
    kept = json.loads(out_path.read_text()) if out_path.exists() else {}
    if set(labels) != set(RUNS) and isinstance(kept.get("wall_s"), dict):
        payload = kept
        if (payload.get("start"), payload.get("days")) != (args.start, args.days):
            ap.error(f"{out_path.name} holds another window: run every label or the same window")
    command = (
        f"bench/bench_voltvar.py --days {args.days} --start {args.start} --only {args.only} "
        f"--out {out_path.relative_to(ROOT)}"
    )
    wall = time.perf_counter() - t0
    payload["controllers"].update(rows)
    payload["wall_s"].update({label: wall for label in labels})
    payload["command"].update({label: command for label in labels})
    all_rows = payload["controllers"]
    print(f"summer-high-pv, {args.days} days from {args.start}")
    print(f"{'kpi':32s}" + "".join(f"{c:>20s}" for c in all_rows))
    keys = [*KEYS, "overvoltage_bus_steps", "days_with_violation", "max_tap_operations_per_day"]
    for key in [*keys, "powerflow_failures"]:
        print(f"{key:32s}" + "".join(f"{all_rows[c][key]:20.3f}" for c in all_rows))
    found = targets(all_rows)
    for key, value in found.items():
        print(f"{key}: {value}")
    payload.update(
        {
            "scenario": "summer-high-pv",
            "start": args.start,
            "days": args.days,
            "oltc": OLTC,
            "oltc_dispatch": OLTC_DISPATCH,
            "targets": found,
            "machine": {"python": platform.python_version(), "processor": platform.machine()},
        }
    )
    out_path.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"wrote {out_path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
