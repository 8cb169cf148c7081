"""Demand-response benchmark on the stressed winter-electrified week (58 houses, heat pumps and
EVs, devices uncontrolled outside events so events meet the real evening peak; 14 warm-up days).

* The agent (all programs, LP choice of customers and incentive) over several seeds of the
  customers' hidden response: predicted vs delivered reduction per event, peak, cost.
* Each program alone at a fixed (highest) incentive, on the same no-DR reference: is the
  agent's mix cheaper per kW delivered and overall than the best single fixed program?
* Baseline accuracy (MAPE / CV-RMSE) on non-event days, per method.
* Event planning at scale: offers + LP for 100,000 enrolled customers (synthetic copies of
  the feeder's customers with scattered flexibility), against the unscreened LP at 10,000.

Writes bench/results/bench_dr.json.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from gridsync.dr.config import END_USES, load_dr_config
from gridsync.dr.offers import make_offers
from gridsync.dr.planner import plan_event
from gridsync.dr.response import CustomerTraits
from gridsync.dr.run import fixed_program_config, run_dr_week

SEEDS = (111, 7, 2024)
OUT = Path(__file__).parent / "results" / "bench_dr.json"


def _row(name, s):
    o = s["overall"]
    total_kw = sum(e["delivered_kw"] for e in s["events"])
    return {
        "config": name,
        "events": o["events_called"],
        "target_kw_mean": o["target_kw_mean"],
        "predicted_kw_mean": o["predicted_kw_mean"],
        "delivered_kw_mean": o["delivered_kw_mean"],
        "delivered_vs_target_pct": o["delivered_vs_target_pct"],
        "delivered_vs_predicted_pct": o["delivered_vs_predicted_pct"],
        "event_abs_error_vs_target_pct": o["event_abs_error_vs_target_pct"],
        "event_errors_vs_target_pct": [round(e["error_vs_target_pct"], 1) for e in s["events"]],
        "event_start_hours": [e["start"][11:16] for e in s["events"]],
        "peak_import_kw": o["peak_import_kw_dr"],
        "peak_reduction_kw": o["peak_reduction_kw"],
        "incentive_cost_eur": o["incentive_cost_eur"],
        "cost_per_kw_delivered_eur": o["incentive_cost_eur"] / total_kw if total_kw > 0 else None,
        "total_cost_eur": o["total_cost_eur_dr"],
        "rebound_kw_mean": o["rebound_kw_mean"],
        "opt_out_rate": o["opt_out_rate"],
        "comfort_degree_h": o["comfort_degree_h_dr"],
    }


def _planning_scale(n_customers: int, screen: bool | None, seed: int = 0) -> dict:
    cfg = load_dr_config()
    programs = [p for p in cfg.programs if p.dispatchable]
    rng = np.random.default_rng(seed)
    mask = np.zeros((len(programs), len(END_USES)), bool)
    for j, p in enumerate(programs):
        mask[j, [END_USES.index(e) for e in p.end_uses]] = True
    # Sheddable kW per end use, scattered like the feeder's devices (EV 3.7-11, HVAC 1-5, ...)
    owns = rng.random((n_customers, len(END_USES))) < np.array([0.6, 0.7, 0.6, 0.4, 0.45])
    rated = rng.uniform([3.7, 1.0, 0.5, 2.0, 2.5], [11.0, 5.0, 2.0, 3.0, 7.5], (n_customers, 5))
    flex = owns * rated * rng.uniform(0.0, 0.6, (n_customers, 5))
    enrolled = rng.random((n_customers, len(programs))) < [p.enrolment_share for p in programs]
    beliefs = CustomerTraits.draw(cfg.customers, n_customers, seed + 1)
    recent = rng.integers(0, 3, n_customers)
    t0 = time.perf_counter()
    offers = make_offers(
        programs,
        mask,
        enrolled,
        flex,
        beliefs,
        recent,
        0.18,
        lead_h=14.0,
        dur_h=1.0,
        rebound_share=np.ones(5),
        rebound_h=2.0,
    )
    t1 = time.perf_counter()
    target = 0.05 * float(flex.sum()) * 0.5
    plan = plan_event(offers, target, rebound_headroom_kw=0.6 * target, screen=screen)
    t2 = time.perf_counter()
    return {
        "customers": n_customers,
        "offers": len(offers),
        "offers_in_lp": plan.n_offers_solved,
        "target_kw": target,
        "predicted_kw": plan.predicted_kw,
        "customers_called": plan.n_customers,
        "cost_eur": plan.cost_eur,
        "offers_s": t1 - t0,
        "lp_s": t2 - t1,
        "total_s": t2 - t0,
    }


def main() -> None:
    cfg = load_dr_config()
    t0 = time.perf_counter()
    agent_runs = []
    first = None
    for seed in SEEDS:
        run = run_dr_week(dr_config=cfg, truth_seed=seed, reuse=first)
        first = first or run
        agent_runs.append((seed, run.summary))
    single = []
    for p in cfg.programs:
        if p.dispatchable:
            run = run_dr_week(
                dr_config=fixed_program_config(cfg, p.name), truth_seed=SEEDS[0], reuse=first
            )
            single.append(_row(f"only {p.name}", run.summary))
    sim_s = time.perf_counter() - t0

    rows = [_row(f"agent seed {seed}", s) for seed, s in agent_runs]
    agent_mean = {
        k: float(np.mean([r[k] for r in rows]))
        for k in rows[0]
        if k != "config" and isinstance(rows[0][k], (int, float))
    }
    s0 = agent_runs[0][1]
    o0 = s0["overall"]
    with_delivery = [
        r for r in single if r["events"] and r["cost_per_kw_delivered_eur"] is not None
    ]
    best_single = min(with_delivery, key=lambda r: r["total_cost_eur"]) if with_delivery else None

    scale = [
        _planning_scale(100_000, None),
        _planning_scale(10_000, False),
        _planning_scale(10_000, True),
    ]

    print(
        f"DR week ({s0['dr_days']:g} days from {s0['dr_window_start']}, base {s0['base_controller']}), "
        f"no-DR peak {o0['peak_import_kw_no_dr']:.1f} kW, no-DR cost {o0['total_cost_eur_no_dr']:.1f} EUR"
    )
    hdr = [
        "config",
        "events",
        "target_kw_mean",
        "predicted_kw_mean",
        "delivered_kw_mean",
        "delivered_vs_target_pct",
        "event_abs_error_vs_target_pct",
        "peak_import_kw",
        "incentive_cost_eur",
        "cost_per_kw_delivered_eur",
        "total_cost_eur",
        "opt_out_rate",
    ]
    print(" | ".join(hdr))
    for r in rows + single:
        print(" | ".join(f"{r[h]:.2f}" if isinstance(r[h], float) else str(r[h]) for h in hdr))
    print("\nbaseline accuracy on non-event days (agent, first seed):")
    for a in s0["baseline_accuracy"].values():
        print(
            f"  {a['method']:<16} days {a['n_days']}  MAPE {a['portfolio_mape_pct']:.1f} %  "
            f"CV(RMSE) {a['customer_cv_rmse_pct']:.1f} %  bias {a['bias_pct']:.1f} %"
        )
    print("\nevent planning at scale (offers + HiGHS LP):")
    for s in scale:
        print(
            f"  {s['customers']:>7} customers  {s['offers']:>7} offers  {s['offers_in_lp']:>7} in LP  "
            f"offers {s['offers_s']:.3f} s  LP {s['lp_s']:.3f} s  total {s['total_s']:.3f} s  "
            f"cost {s['cost_eur']:.2f} EUR"
        )
    result = {
        "scenario": s0["scenario"],
        "base_controller": s0["base_controller"],
        "command": "python bench/bench_dr.py",
        "dr_days": s0["dr_days"],
        "warmup_days": s0["warmup_days"],
        "no_dr": {
            "peak_import_kw": o0["peak_import_kw_no_dr"],
            "total_cost_eur": o0["total_cost_eur_no_dr"],
        },
        "agent_runs": rows,
        "agent_mean_over_seeds": agent_mean,
        "single_fixed_programs": single,
        "best_single_fixed_program": best_single,
        "agent_cheaper_than_best_single": bool(
            best_single and agent_mean["total_cost_eur"] < best_single["total_cost_eur"]
        ),
        "baseline_accuracy": {str(seed): s["baseline_accuracy"] for seed, s in agent_runs},
        "targets": {
            "event_abs_error_vs_target_pct_max": 15.0,
            "event_abs_error_vs_target_pct_mean_over_seeds": agent_mean[
                "event_abs_error_vs_target_pct"
            ],
            "event_error_met": bool(agent_mean["event_abs_error_vs_target_pct"] <= 15.0),
            "baseline_mape_pct_max": 10.0,
            "baseline_mape_pct": {
                m: float(
                    np.mean(
                        [s["baseline_accuracy"][m]["portfolio_mape_pct"] for _, s in agent_runs]
                    )
                )
                for m in s0["baseline_accuracy"]
            },
            "baseline_customers_aggregated": s0["baseline_accuracy"]["10of10_adjusted"][
                "customers_aggregated"
            ],
        },
        "events_first_seed": s0["events"],
        "planning_scale": scale,
        "simulation_wall_s": sim_s,
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2, default=float), encoding="utf-8")
    print(f"\nwrote {OUT}")


if __name__ == "__main__":
    main()
