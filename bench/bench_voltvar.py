"""Volt-VAR baseline against uncontrolled on the summer high-PV scenario.

    PYTHONPATH=$PWD .venv/bin/python bench/bench_voltvar.py [--days 28] [--start 2016-06-06]

Both controllers run the same devices (EVs on arrival, batteries self-consume, appliances as
allowed); ``volt-var`` also puts every PV inverter on the IEEE 1547-2018 Category B default
Volt-VAR curve (reactive priority, kVA = kWp), solved to steady state with the power flow in
each twin step. Each runs once as the scenario is (fixed tap) and once with an OLTC on the
feeder transformer (``+oltc``: band ``OLTC`` below, 60 s delay, the network's +-2 x 2.5 %
taps). Per run: voltage-violation bus-steps (outside 0.95-1.05 p.u.), bus-steps
above 1.05 p.u., days with a violation, max voltage, curtailed PV (kWh, inverter limits
included), the inverters' reactive energy (kvarh, |Q|), feeder losses (kWh) and cost; then the
reduction in violation bus-steps volt-var achieves. Prints a table and writes
bench/results/voltvar.json.
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
CONTROLLERS = ["uncontrolled", "volt-var"]
OLTC = {"enabled": True, "vm_lower_pu": 0.97, "vm_upper_pu": 1.01, "time_delay_s": 60.0}
KEYS = [
    "voltage_violation_bus_steps",
    "max_voltage_pu",
    "min_voltage_pu",
    "curtailed_kwh",
    "reactive_kvarh",
    "losses_kwh",
    "total_cost_eur",
    "tap_operations",
    "runtime_s",
]


def run(days: int, start: str) -> dict:
    from gridsync.model.tap_changer import OLTCConfig
    from gridsync.sim.builder import build_scenario, load_scenario
    from gridsync.sim.kpi import compute_kpis
    from gridsync.sim.registry import make_controller
    from gridsync.sim.simulator import simulate

    plain = load_scenario("summer-high-pv", start=dt.date.fromisoformat(start), days=days)
    cfg = plain.config
    grid = cfg.grid.model_copy(update={"oltc": OLTCConfig(**OLTC)})
    with_oltc = build_scenario(cfg.model_copy(update={"grid": grid}), base_dir=SCENARIOS)
    lim = plain.config.limits
    steps_per_day = int(round(24 / plain.dt_h))
    out = {}
    runs = [(c, plain, c) for c in CONTROLLERS] + [(c, with_oltc, f"{c}+oltc") for c in CONTROLLERS]
    for name, scenario, label in runs:
        res = simulate(scenario, make_controller(name))
        k = compute_kpis(res, scenario)
        with np.errstate(invalid="ignore"):
            over = res.vm_pu > lim.voltage_max_pu
            bad = over | (res.vm_pu < lim.voltage_min_pu) | np.isnan(res.vm_pu)
        per_day = bad.any(axis=1).reshape(-1, steps_per_day).any(axis=1)
        row = {key: float(k[key]) for key in KEYS}
        row["overvoltage_bus_steps"] = int(over.sum())
        row["days_with_violation"] = int(per_day.sum())
        row["powerflow_failures"] = int(k["powerflow_failures"])
        out[label] = row
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--days", type=int, default=28)
    ap.add_argument("--start", default="2016-06-06")
    args = ap.parse_args()
    t0 = time.perf_counter()
    rows = run(args.days, args.start)
    base = rows["uncontrolled"]["voltage_violation_bus_steps"]
    vv = rows["volt-var"]["voltage_violation_bus_steps"]
    reduction = (base - vv) / base if base else float("nan")
    print(f"summer-high-pv, {args.days} days from {args.start}")
    print(f"{'kpi':32s}" + "".join(f"{c:>20s}" for c in rows))
    for key in [*KEYS, "overvoltage_bus_steps", "days_with_violation", "powerflow_failures"]:
        print(f"{key:32s}" + "".join(f"{rows[c][key]:20.3f}" for c in rows))
    print(
        f"volt-var violation bus-steps: {vv} vs {base} uncontrolled ({100 * reduction:.1f} % fewer)"
    )
    payload = {
        "scenario": "summer-high-pv",
        "start": args.start,
        "days": args.days,
        "oltc": OLTC,
        "controllers": rows,
        "violation_reduction_frac": reduction,
        "wall_s": time.perf_counter() - t0,
        "machine": {"python": platform.python_version(), "processor": platform.machine()},
        "command": f"bench/bench_voltvar.py --days {args.days} --start {args.start}",
    }
    RESULTS.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"wrote {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
