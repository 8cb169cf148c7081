"""Dispatch optimizer benchmarks: the default week (MPC vs oracle vs baselines) and scaling.

    .venv/bin/python bench/bench_dispatch.py week [--days 7] [--resolve-every 4]
    .venv/bin/python bench/bench_dispatch.py scaling [--sizes 100 1000 10000]
    .venv/bin/python bench/bench_dispatch.py aggregate [--sizes 100 1000 10000]

Each part prints a table and updates its section of bench/results/bench_dispatch.json.
``week``: KPIs of uncontrolled, tou, mpc (seasonal-naive forecasts) with and without its
per-step correction layer, mpc+shield and oracle (perfect foresight) on the bundled scenario
(``--start`` for another week), the share of the oracle's saving each captures, violations in
total and caused by dispatch, and solve-time statistics. ``scaling``: build + solve time of
the dispatch LP for synthetic fleets of N assets over 96 steps, vectorised build vs a
per-asset-loop reference build of the same LP (objective values compared), plus per-bus
aggregation with its optimality gap.
``aggregate``: at N assets x 96 steps, the full LP, the per-asset-loop reference build of it
and the per-bus aggregated LP (gridsync.dispatch.aggregate) with EV sessions/deferrable jobs
per asset or as per-bus energy envelopes, each with HiGHS's default (simplex) and with IPM
without crossover: build, solve (+ re-solve), disaggregation and direct pricing times, the
priced objective of the per-asset plan and its gap vs the full LP optimum where that finishes.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "bench_dispatch.json"
sys.path.insert(0, str(ROOT))


def _save(section: str, payload: dict) -> None:
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    data = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    data[section] = payload
    data["machine"] = {"python": platform.python_version(), "cpus": __import__("os").cpu_count()}
    RESULTS.write_text(json.dumps(data, indent=2))
    print(f"wrote {RESULTS.relative_to(ROOT)} [{section}]")


def week(
    days: int,
    resolve_every: int,
    time_limit_s: float,
    section: str = "week",
    start: str | None = None,
    forecaster: str = "naive",
) -> None:
    from gridsync.dispatch.mpc import MPCConfig, MPCController, OracleController
    from gridsync.dispatch.rules import TouController, UncontrolledController
    from gridsync.safety.shield import ShieldedController
    from gridsync.sim.builder import load_scenario
    from gridsync.sim.kpi import compute_kpis
    from gridsync.sim.simulator import simulate

    overrides = {"days": days}
    if start:
        overrides["start"] = dt.date.fromisoformat(start)
    s = load_scenario(**overrides)
    lim = s.config.limits
    cfg = MPCConfig(resolve_every=resolve_every, time_limit_s=time_limit_s)
    plan_only = dataclasses.replace(cfg, realtime=False, ac_correct=False)

    def mpc(config, name):
        if forecaster == "learned":
            from gridsync.forecast.scenario import LearnedForecaster

            return MPCController(LearnedForecaster(), config, name)
        return MPCController(config=config, name=name)

    runs, logs, violated = {}, {}, {}
    for ctrl in (
        UncontrolledController(),
        TouController(),
        mpc(plan_only, "mpc-plan-only"),
        mpc(cfg, "mpc"),
        ShieldedController(mpc(cfg, "mpc")),
        OracleController(cfg),
    ):
        t0 = time.perf_counter()
        res = simulate(s, ctrl)
        runs[ctrl.name] = compute_kpis(res, s)
        with np.errstate(invalid="ignore"):
            violated[ctrl.name] = (
                (res.vm_pu < lim.voltage_min_pu)
                | (res.vm_pu > lim.voltage_max_pu)
                | np.isnan(res.vm_pu),
                (res.branch_loading_pct > lim.loading_max_pct) | np.isnan(res.branch_loading_pct),
            )
        print(f"{ctrl.name:>14}: {time.perf_counter() - t0:7.1f} s", flush=True)
        inner = getattr(ctrl, "inner", ctrl)
        if hasattr(inner, "solve_log"):
            log = inner.solve_log
            total = np.array([r.timings_s.get("total", np.nan) for r in log])
            solve = np.array([r.timings_s.get("solve", np.nan) for r in log])
            statuses = [r.status for r in log]
            logs[ctrl.name] = {
                "solves": len(log),
                "statuses": {k: statuses.count(k) for k in sorted(set(statuses))},
                "total_s_mean": float(np.nanmean(total)),
                "total_s_p95": float(np.nanpercentile(total, 95)),
                "solve_s_mean": float(np.nanmean(solve)),
                "network_passes_mean": float(np.mean([r.network_passes for r in log])),
            }
    base_v, base_l = violated["uncontrolled"]
    for name, (v_bad, l_bad) in violated.items():
        # violations dispatch caused: bus/branch-steps violated here but not uncontrolled
        runs[name]["voltage_violations_caused_bus_steps"] = int((v_bad & ~base_v).sum())
        runs[name]["overloads_caused_branch_steps"] = int((l_bad & ~base_l).sum())
    base = runs["uncontrolled"]["total_cost_eur"]
    saving = {k: base - v["total_cost_eur"] for k, v in runs.items()}
    share = {
        k: v / saving["oracle"] if saving["oracle"] > 0 else float("nan") for k, v in saving.items()
    }
    keys = [
        "total_cost_eur",
        "energy_cost_eur",
        "demand_charge_eur",
        "degradation_cost_eur",
        "peak_import_kw",
        "emissions_kg",
        "voltage_violation_bus_steps",
        "voltage_violations_caused_bus_steps",
        "overload_branch_steps",
        "overloads_caused_branch_steps",
        "max_voltage_pu",
        "unmet_ev_kwh",
        "unmet_deferrable_kwh",
        "comfort_violation_degree_hours",
        "curtailed_kwh",
        "runtime_s",
    ]
    print(f"\n{'kpi':<36}" + "".join(f"{k:>15}" for k in runs))
    for k in keys:
        print(f"{k:<36}" + "".join(f"{runs[c][k]:>15.2f}" for c in runs))
    print(f"{'share of oracle saving':<36}" + "".join(f"{share[c]:>15.1%}" for c in runs))
    print(
        f"\nMPC captures {share['mpc']:.1%} of the oracle's saving over uncontrolled "
        f"(target >= 80 %; without the per-step correction {share['mpc-plan-only']:.1%})"
    )
    _save(
        section,
        {
            "scenario": s.config.name,
            "start": str(s.index[s.start_step].date()),
            "days": days,
            "steps": s.n_steps,
            "forecaster": forecaster,
            "horizon_steps": cfg.horizon_steps,
            "resolve_every_steps": resolve_every,
            "fine_steps": cfg.fine_steps,
            "coarse_steps": cfg.coarse_steps,
            "solve_budget_s": time_limit_s,
            "mpc_config": dataclasses.asdict(cfg),
            "kpis": {c: {k: runs[c][k] for k in keys} for c in runs},
            "saving_vs_uncontrolled_eur": saving,
            "share_of_oracle_saving": share,
            "mpc_share_of_oracle_saving": share["mpc"],
            "solver": logs,
            "note": "mpc-plan-only = the same MPC without the per-step correction layer and AC "
            "check (realtime=False, ac_correct=False); *_caused_* = bus/branch-steps violated "
            "under the controller but not under uncontrolled. Runtimes on a shared 2-core "
            "machine are noisy.",
        },
    )


def synthetic_horizon(base, n_assets: int, horizon: int = 96, blocks: bool = False):
    """``HorizonData`` for a fleet of about ``n_assets`` assets in the default mix (PV,
    batteries, EV chargers, appliances, heat pumps) on the base scenario's feeder, with the
    inflexible load scaled by the same factor, perfect forecasts, states at the window start."""
    from gridsync.dispatch.horizon import FleetState, horizon_from_scenario
    from gridsync.sim.builder import build_fleet
    from gridsync.sim.forecasts import PerfectForecaster

    fc = base.config.fleet
    scale = n_assets / base.fleet.size
    counts = {
        kind: max(1, round(getattr(fc, kind).count * scale))
        for kind in ("pv", "battery", "ev", "deferrable", "thermal")
    }
    cfg = fc.model_copy(
        update={k: getattr(fc, k).model_copy(update={"count": n}) for k, n in counts.items()}
    )
    fleet = build_fleet(cfg, base.config.seed, base.feeder, base.index, base.start_step, base.dt_h)
    orient = np.random.default_rng(0).integers(0, base.pv_per_kwp.shape[1], len(fleet.pv))
    s = dataclasses.replace(
        base,
        fleet=fleet,
        pv_orientation=orient,
        base_load_kw=base.base_load_kw * scale,
        base_load_kvar=base.base_load_kvar * scale,
    )
    state = FleetState(
        battery_energy_kwh=fleet.battery.capacity_kwh * fleet.battery.soc_initial_frac,
        ev_delivered_kwh=np.zeros(len(fleet.ev.sessions)),
        deferrable_done_kwh=np.zeros(len(fleet.deferrable)),
        thermal_temp_c=fleet.thermal.initial_temp_c.astype(float),
    )
    step = base.start_step
    forecast = PerfectForecaster().forecast(s, step, horizon)
    return horizon_from_scenario(
        s,
        step,
        horizon,
        state,
        forecast,
        known_future_sessions=True,
        fine_steps=16 if blocks else None,
        coarse_steps=4 if blocks else 1,
    )


def scaling(sizes: list[int], time_limit_s: float, reference_solve_max: int = 1000) -> None:
    from gridsync.dispatch.formulation import Weights, build_dispatch_lp
    from gridsync.dispatch.reference import build_reference_lp
    from gridsync.sim.builder import load_scenario

    base = load_scenario(days=1, history_days=1)
    w = Weights.from_config(base.config.objective)
    rows = []
    for n in sizes:
        hd = synthetic_horizon(base, n)
        t0 = time.perf_counter()
        lp, _ = build_dispatch_lp(hd, w)
        build_s = time.perf_counter() - t0
        sol = lp.solve(time_limit_s)
        hb = synthetic_horizon(base, n, blocks=True)
        t0 = time.perf_counter()
        lpb, _ = build_dispatch_lp(hb, w)
        block_build_s = time.perf_counter() - t0
        solb = lpb.solve(time_limit_s)
        t0 = time.perf_counter()
        ref = build_reference_lp(hd, w)
        ref_build_s = time.perf_counter() - t0
        ref_sol = ref.solve(time_limit_s) if n <= reference_solve_max else None
        row = {
            "assets": int(hd.fleet.size),
            "steps": hd.horizon,
            "columns": lp.n_col,
            "rows": lp.n_row,
            "nonzeros": int(lp.matrix().nnz),
            "build_s": build_s,
            "solve_s": sol.solve_s,
            "total_s": build_s + sol.solve_s,
            "status": sol.status,
            "objective_eur": sol.objective,
            "blocked_lp_blocks": hb.horizon,
            "blocked_columns": lpb.n_col,
            "blocked_build_s": block_build_s,
            "blocked_solve_s": solb.solve_s,
            "blocked_total_s": block_build_s + solb.solve_s,
            "blocked_status": solb.status,
            "blocked_objective_eur": solb.objective,
            "reference_build_s": ref_build_s,
            "reference_solve_s": None if ref_sol is None else ref_sol.solve_s,
            "reference_status": None if ref_sol is None else ref_sol.status,
            "reference_objective_eur": None if ref_sol is None else ref_sol.objective,
            "build_speedup_vs_reference": ref_build_s / build_s,
        }
        rows.append(row)
        ref_txt = "not solved" if ref_sol is None else f"{ref_sol.objective:.2f} [{ref_sol.status}]"
        print(
            f"{row['assets']:>6} assets x {hd.horizon}: {lp.n_col:>8} cols, build "
            f"{build_s:6.3f} s (reference loop {ref_build_s:6.2f} s, "
            f"x{row['build_speedup_vs_reference']:.0f}), solve {sol.solve_s:7.2f} s "
            f"[{sol.status}] obj {sol.objective:.2f} (reference {ref_txt}); "
            f"{hb.horizon} blocks: {lpb.n_col} cols, build+solve "
            f"{row['blocked_total_s']:.2f} s [{solb.status}] obj {solb.objective:.2f}",
            flush=True,
        )
    _save("scaling", {"time_limit_s": time_limit_s, "rows": rows})


IPM = {"run_crossover": "off"}
AGG_METHODS = {
    # name: (envelopes, Grouping fields, solver, HiGHS options)
    "aggregated": (False, {}, "choose", None),
    "aggregated_ipm": (False, {}, "ipm", IPM),
    "envelopes": (True, {}, "choose", None),
    "envelopes_ipm": (True, {}, "ipm", IPM),
    "envelopes_ipm_one_group_per_bus": (
        True,
        {"ev_class_steps": None, "deferrable_class_steps": None, "need_classes": 1},
        "ipm",
        IPM,
    ),
    "feeder_envelopes_ipm": (
        True,
        {"by_bus": False, "ev_class_steps": 1, "deferrable_class_steps": 1, "need_classes": 16},
        "ipm",
        IPM,
    ),
}


def aggregate(sizes: list[int], time_limit_s: float, reference_max: int = 1000) -> None:
    """Full LP, per-asset-loop reference LP and the aggregated variants at N assets x 96."""
    from gridsync.dispatch.aggregate import Grouping, evaluate_plan, solve_aggregated
    from gridsync.dispatch.formulation import Weights, build_dispatch_lp
    from gridsync.dispatch.reference import build_reference_lp
    from gridsync.sim.builder import load_scenario

    base = load_scenario(days=1, history_days=1)
    w = Weights.from_config(base.config.objective)
    rows = []
    for n in sizes:
        hd = synthetic_horizon(base, n)
        row: dict = {"assets": int(hd.fleet.size), "steps": hd.horizon}
        t0 = time.perf_counter()
        lp, _ = build_dispatch_lp(hd, w)
        build_s = time.perf_counter() - t0
        full = lp.solve(time_limit_s)
        row["full_lp"] = {
            "columns": lp.n_col,
            "build_s": build_s,
            "solve_s": full.solve_s,
            "total_s": build_s + full.solve_s,
            "status": full.status,
            "objective_eur": full.objective if full.ok else None,
        }
        print(
            f"{row['assets']:>6} assets: full LP {lp.n_col} cols {build_s + full.solve_s:6.2f} s "
            f"[{full.status}] {full.objective:.3f}",
            flush=True,
        )
        del lp
        t0 = time.perf_counter()
        ref = build_reference_lp(hd, w)
        ref_build_s = time.perf_counter() - t0
        ref_sol = ref.solve(time_limit_s) if n <= reference_max else None
        row["reference"] = {
            "build_s": ref_build_s,
            "solve_s": None if ref_sol is None else ref_sol.solve_s,
            "total_s": None if ref_sol is None else ref_build_s + ref_sol.solve_s,
            "status": "not solved (the same LP as full_lp, which hits the limit)"
            if ref_sol is None
            else ref_sol.status,
            "objective_eur": ref_sol.objective if ref_sol is not None and ref_sol.ok else None,
        }
        print(
            f"        reference: build {ref_build_s:.2f} s, {row['reference']['status']}",
            flush=True,
        )
        del ref
        for name, (env, grouping, solver, opts) in AGG_METHODS.items():
            res = solve_aggregated(
                hd,
                w,
                time_limit_s=time_limit_s,
                envelopes=env,
                grouping=Grouping(**grouping),
                solver=solver,
                solver_options=opts,
            )
            total = res.build_s + res.solve_s + res.resolve_s + res.disaggregate_s + res.evaluate_s
            plan = res.plan
            entry = {
                "virtual_columns": res.virtual_columns,
                "build_s": res.build_s,
                "solve_s": res.solve_s,
                "resolve_s": res.resolve_s,
                "disaggregate_s": res.disaggregate_s,
                "price_s": res.evaluate_s,
                "total_s": total,
                "status": res.status,
                "virtual_objective_eur": res.virtual_objective_eur,
                "objective_eur": res.objective_eur if res.status == "optimal" else None,
                "gap_pct": (res.objective_eur - full.objective) / abs(full.objective) * 100
                if full.ok and res.status == "optimal"
                else None,
                "ev_deviation_kwh": None if plan is None else plan.ev_deviation_kwh,
                "deferrable_deviation_kwh": None if plan is None else plan.deferrable_deviation_kwh,
                "battery_shortfall_kwh": None if plan is None else plan.battery_shortfall_kwh,
                "max_limit_violation": None
                if res.cost is None
                else max(res.cost.violation.values()),
            }
            if name == "envelopes_ipm" and plan is not None:
                t0 = time.perf_counter()
                ev, _ = evaluate_plan(hd, plan, w, time_limit_s=time_limit_s)
                entry["pinned_lp_price_s"] = time.perf_counter() - t0
                entry["pinned_lp_objective_eur"] = ev.objective if ev.ok else None
            row[name] = entry
            gap = "n/a" if entry["gap_pct"] is None else f"{entry['gap_pct']:.2f} %"
            print(
                f"        {name:>15}: {res.virtual_columns:>7} cols, build {res.build_s:.2f} solve "
                f"{res.solve_s:.2f} resolve {res.resolve_s:.2f} disaggregate "
                f"{res.disaggregate_s:.3f} price {res.evaluate_s:.3f} = {total:6.2f} s "
                f"[{res.status}] obj {res.objective_eur:.3f} (virtual "
                f"{res.virtual_objective_eur:.3f}), gap {gap}",
                flush=True,
            )
        priced = [
            row[m]["objective_eur"] for m in AGG_METHODS if row[m]["objective_eur"] is not None
        ]
        best = min(priced + ([full.objective] if full.ok else []), default=None)
        for m in AGG_METHODS:
            obj = row[m]["objective_eur"]
            row[m]["gap_vs_best_plan_pct"] = (
                None if obj is None or best is None else (obj - best) / abs(best) * 100
            )
        rows.append(row)
    _save(
        "aggregate",
        {
            "time_limit_s": time_limit_s,
            "note": "one thread per solve; other jobs shared the 2 cores, so times are noisy. "
            "gap_pct is vs the full LP optimum (null where it did not finish); "
            "gap_vs_best_plan_pct is vs the cheapest feasible plan of this row.",
            "methods": {
                k: {"envelopes": e, "grouping": Grouping(**g).__dict__, "solver": s_, "options": o}
                for k, (e, g, s_, o) in AGG_METHODS.items()
            },
            "envelope_groups": "always split by bus (unless by_bus is false: one feeder-wide "
            "group, valid without network rows), efficiency, need > 0 and V2G; then by the "
            "grouping's classes. After disaggregation the virtual LP is re-solved once with the "
            "default solver around what the sessions/jobs take (resolve_s).",
            "rows": rows,
        },
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = ap.add_subparsers(dest="part", required=True)
    w = sub.add_parser("week")
    w.add_argument("--days", type=int, default=7)
    w.add_argument("--resolve-every", type=int, default=4)
    w.add_argument("--solve-budget-s", type=float, default=30.0)
    w.add_argument("--section", default="week", help="JSON section to write")
    w.add_argument("--start", default=None, help="first day YYYY-MM-DD (default: scenario's)")
    w.add_argument("--forecaster", choices=["naive", "learned"], default="naive")
    sc = sub.add_parser("scaling")
    sc.add_argument("--sizes", type=int, nargs="+", default=[100, 1000, 10000])
    sc.add_argument("--time-limit-s", type=float, default=120.0)
    ag = sub.add_parser("aggregate")
    ag.add_argument("--sizes", type=int, nargs="+", default=[100, 1000, 10000])
    ag.add_argument("--time-limit-s", type=float, default=120.0)
    args = ap.parse_args()
    if args.part == "week":
        week(
            args.days,
            args.resolve_every,
            args.solve_budget_s,
            args.section,
            args.start,
            args.forecaster,
        )
    elif args.part == "aggregate":
        aggregate(args.sizes, args.time_limit_s)
    else:
        scaling(args.sizes, args.time_limit_s)


if __name__ == "__main__":
    main()
