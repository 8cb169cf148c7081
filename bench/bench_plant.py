"""Effect of the plant-model mismatch (gridsync.sim.plant) on the controllers' results.

    .venv/bin/python bench/bench_plant.py [--days 7] [--controllers uncontrolled tou mpc+shield]
    .venv/bin/python bench/bench_plant.py --ablation [--controllers uncontrolled tou]

Runs each controller on the bundled scenario twice, with the shipped plant (on by default) and
with the model as plant (``[plant] enabled = false``), and writes the KPIs side by side to
bench/results/bench_plant.json (section ``on_off``), with violations caused by dispatch
(bus/branch-steps violated in a run but not in ``uncontrolled`` on the same plant).
``--ablation``: each part of the plant alone (the others off), section ``ablation``.
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


def _save(section: str, payload: dict) -> None:
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    data = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    data[section] = payload
    data["machine"] = {"python": platform.python_version()}
    RESULTS.write_text(json.dumps(data, indent=2))
    print(f"wrote {RESULTS.relative_to(ROOT)} [{section}]")


def _ablation_variants(shipped, only: list[str] | None = None) -> dict:
    """The shipped scenario with one part of the plant on at a time (same seed)."""
    from gridsync.data.weather import pv_output_per_kwp, read_weather
    from gridsync.model.scenario_config import PlantConfig
    from gridsync.sim.plant import build_plant

    full = shipped.config.plant
    off = {k: 0 for k, v in full.model_dump().items() if k not in ("enabled", "seed")}
    parts = {
        "battery": ("battery_capacity_error_frac", "battery_efficiency_error"),
        "thermal_rc": ("thermal_rc_error_frac",),
        "pv": ("pv_soiling_max_frac", "pv_tilt_error_deg", "pv_azimuth_error_deg"),
        "meters": ("meter_noise_frac", "meter_dropout_prob"),
        "latency": ("command_latency_steps",),
        "tracking": ("tracking_error_frac",),
        "ev_departure": ("ev_departure_error_sd_min",),
        "ev_energy": ("ev_energy_error_frac",),
        "deferrable_noshow": ("deferrable_noshow_prob",),
    }
    weather = read_weather(shipped.config.weather.tmy, shipped.index)
    out = {"none": dataclasses.replace(shipped, plant=None)}
    for name, keys in parts.items():
        if only and name not in only:
            continue
        cfg = PlantConfig(**{**off, **{k: getattr(full, k) for k in keys}, "seed": full.seed})
        plant = build_plant(
            cfg,
            shipped.fleet,
            shipped.dt_h,
            len(shipped.index),
            shipped.pv_per_kwp,
            shipped.pv_orientation,
            lambda t, a: pv_output_per_kwp(weather, t, a),
        )
        out[name] = dataclasses.replace(shipped, plant=plant)
    out["all"] = shipped
    return {k: v for k, v in out.items() if not only or k in only}


def run(
    days: int, controllers: list[str], ablation: bool = False, parts: list[str] | None = None
) -> dict:
    from gridsync.sim.builder import load_scenario
    from gridsync.sim.kpi import compute_kpis
    from gridsync.sim.registry import make_controller
    from gridsync.sim.simulator import simulate

    shipped = load_scenario(days=days)
    if ablation:
        variants = _ablation_variants(shipped, parts)
    else:
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
    ap.add_argument("--controllers", nargs="+", default=None)
    ap.add_argument("--ablation", action="store_true", help="each part of the plant alone")
    ap.add_argument("--parts", nargs="+", default=None, help="ablation: only these variants")
    args = ap.parse_args()
    from gridsync.model.scenario_config import PlantConfig

    default = ["uncontrolled", "tou"] if args.ablation else ["uncontrolled", "tou", "mpc+shield"]
    controllers = args.controllers or default
    what = (
        "each part of the shipped plant alone (others off); 'none' = model as plant"
        if args.ablation
        else "bundled scenario, shipped plant vs model as plant"
    )
    payload = {
        "what": what + "; *_caused_* = violated here but not uncontrolled on the same plant",
        "days": args.days,
        "plant_config": PlantConfig().model_dump(),
        "runs": run(args.days, controllers, args.ablation, args.parts),
    }
    section = "on_off"
    if args.ablation:
        section = "ablation" if not args.parts else "ablation_" + "_".join(controllers)
    _save(section, payload)


if __name__ == "__main__":
    main()
