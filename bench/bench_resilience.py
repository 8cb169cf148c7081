"""Resilience benchmarks: RBTS Bus 2 indices, FLISR and islanding KPIs, storm posture.

``rbts``: the bundled RBTS Bus 2 base case (Allan et al., 1991), analytical FMEA and a
1,000,000-year sequential Monte Carlo (seed 20), every system index beside the published value.

``flisr``: 150 seeded faults (seed 20) on the CIGRE MV study feeder
(``gridsync/data/reliability/cigre_mv_flisr.toml``), each played with manual restoration, FLISR
and FLISR + islanding under the same switching-time model; expected annual SAIFI, SAIDI, MAIFI
and ENS, their distribution over 2,000 resampled years, per-fault customer minutes saved, and
whether every restoration plan was radial and passed the AC power flow.

``storms``: 30 seeded storms (seed 20): day-ahead risk flag hit and false-alarm rates, and one
fault per storm under FLISR + islanding with and without pre-charged batteries.

``drill``: the console's fault drill (``gridsync serve --resilience``) on every normally closed
line at two hours (the demo's June morning, a January evening peak): whether the FLISR agent
put the faulted line in the section it located from the field readings (FCIs sit only at
remote switches, so lines between two switches are one section), raised the plan at the fault's step, had it applied
in the step after approval, how much of the load that lost voltage outside the faulted section
came back, and whether each applied state is radial and passed the AC check.

Writes bench/results/resilience.json (merging the parts run).

    nice -n 10 python bench/bench_resilience.py rbts flisr storms drill
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

from gridsync.resilience.report import format_report, reliability_report

RESULTS = Path(__file__).resolve().parent / "results" / "resilience.json"


def bench_rbts() -> dict:
    report = reliability_report(years=1_000_000, seed=20)
    print(format_report(report))
    return report


def bench_flisr(n_faults: int = 150, seed: int = 20) -> dict:
    from gridsync.resilience.feeder import load_feeder_study, year_conditions
    from gridsync.resilience.report import format_kpis
    from gridsync.resilience.risk import RiskModel, base_rates, line_risk
    from gridsync.resilience.study import annual_kpis, evaluate_fault, sample_faults

    feeder, cond = load_feeder_study(), year_conditions()
    rng = np.random.default_rng(seed)
    risk = line_risk(feeder, cond, RiskModel())
    scenarios = sample_faults(feeder, risk.rate_per_yr, n_faults, rng)
    t0 = time.perf_counter()
    outcomes = [evaluate_fault(feeder, cond, sc) for sc in scenarios]
    elapsed = time.perf_counter() - t0
    kpis = annual_kpis(feeder, outcomes, float(base_rates(feeder).sum()), rng)
    plans = [p for o in outcomes for ps in o.plans.values() for p in ps]
    kpis |= {
        "seed": seed,
        "restoration_plans": len(plans),
        "plans_radial": int(sum(o.plans_radial(feeder) for o in outcomes)),
        "plans_ac_feasible": int(sum(p.ac.ok for p in plans)),
        "plans_needing_ac_cuts": int(sum(p.milp_solves > 1 for p in plans)),
        "plans_fallback": int(sum(p.status != "optimal" for p in plans)),
        "faults_located_exactly_or_zone": int(sum(feeder.line_name[o.scenario.line] in o.located
                                                  for o in outcomes if o.plans)),
        "line_faults": int(sum(bool(o.plans) for o in outcomes)),
        "islands_formed": int(sum(len(o.islands) for o in outcomes)),
        "resync_checks_passed": int(sum(bool(i["resync_ok"]) for o in outcomes for i in o.islands)),
        "seconds_per_fault": elapsed / n_faults,
    }
    print(format_kpis(kpis))

    # the same faults with every indicator silent with probability 5 % (seeded)
    miss_rng = np.random.default_rng(seed + 1)
    n_fci = 2 * int(feeder.remote.sum())
    silent = [evaluate_fault(feeder, cond, sc, fci_miss=miss_rng.random(n_fci) < 0.05)
              for sc in scenarios]
    noisy = annual_kpis(feeder, silent, float(base_rates(feeder).sum()), np.random.default_rng(seed))
    kpis["silent_fci_5_percent"] = {
        "modes": {m: {k: v[k] for k in ("saifi", "saidi_min", "maifi", "ens_kwh")}
                  for m, v in noisy["modes"].items()},
        "faults_with_reclosure_onto_fault": int(sum(o.retries > 0 for o in silent)),
        "plans_radial": int(sum(o.plans_radial(feeder) for o in silent)),
        "plans_ac_feasible": int(sum(p.ac.ok for o in silent for ps in o.plans.values() for p in ps)),
    }
    print("with 5 % silent FCIs:", json.dumps(kpis["silent_fci_5_percent"], indent=1))
    return kpis


def bench_storms(n_storms: int = 30, seed: int = 20) -> dict:
    from gridsync.resilience.feeder import load_feeder_study, year_conditions
    from gridsync.resilience.storms import storm_study

    result = storm_study(load_feeder_study(), year_conditions(), n_storms=n_storms, seed=seed)
    print(json.dumps(result, indent=2))
    return result


def bench_drill() -> dict:
    import pandas as pd

    from gridsync.hitl.approvals import ApprovalManager
    from gridsync.hitl.policy import ApprovalPolicy
    from gridsync.resilience import flisr as F
    from gridsync.resilience.drill import FeederDrill
    from gridsync.resilience.feeder import load_feeder_study

    feeder = load_feeder_study()
    rows = []
    for when in (pd.Timestamp("2016-06-10 10:00"), pd.Timestamp("2016-01-14 18:00")):
        for line in np.flatnonzero(feeder.normally_closed):
            name = feeder.line_name[line]
            manager = ApprovalManager(ApprovalPolicy(timeout_s=600))
            drill = FeederDrill(feeder, manager)
            drill.step(0, when)
            drill.inject(name, "bench")
            t0 = time.perf_counter()
            s = drill.step(1, when)
            fault_step_s = time.perf_counter() - t0
            fault = s["fault"]
            manager.approve(fault["request_id"], "bench", "operator")
            s = drill.step(2, when)
            st = drill.agent.state
            section = set(fault["section_buses"])
            lost = set(fault["lost_voltage"])
            healthy = [ld for ld in s["loads"] if ld["bus"] in lost and ld["bus"] not in section]
            rows.append({
                "line": name, "time": when.isoformat(),
                "located_lines": fault["located"],
                "fault_in_located_section": name in fault["located"],
                "section_buses": fault["section_buses"],
                "isolating_switches": fault["isolating_switches"],
                "request_raised_at_fault_step": fault["request_id"] is not None,
                "applied_step_after_approval": any(e.startswith("step 2: switching plan approved")
                                                   for e in drill.events),
                "healthy_lost_kw": sum(ld["kw"] for ld in healthy),
                "restored_kw": s["by_status"]["restored"]["kw"],
                "customers_until_repair": s["by_status"]["faulted"]["customers"],
                "customers_still_off": s["by_status"]["off"]["customers"],
                "radial": bool(F.is_radial_forest(feeder, st.closed, st.energised)),
                "ac_ok": bool(drill.ac.ok),
                "fault_step_s": round(fault_step_s, 3),
            })
            print(rows[-1]["time"], name, fault["located"],
                  f"{rows[-1]['restored_kw']:.0f}/{rows[-1]['healthy_lost_kw']:.0f} kW")
    full = [r for r in rows if abs(r["restored_kw"] - r["healthy_lost_kw"]) < 1e-6]
    return {
        "faults": len(rows),
        "fault_in_located_section": sum(r["fault_in_located_section"] for r in rows),
        "applied_step_after_approval": sum(r["applied_step_after_approval"] for r in rows),
        "all_healthy_load_restored": len(full),
        "radial_and_ac_ok": sum(r["radial"] and r["ac_ok"] for r in rows),
        "fault_step_s_max": max(r["fault_step_s"] for r in rows),
        "rows": rows,
    }


PARTS = {"rbts": bench_rbts, "flisr": bench_flisr, "storms": bench_storms, "drill": bench_drill}


def main(argv: list[str]) -> None:
    parts = argv or list(PARTS)
    unknown = [p for p in parts if p not in PARTS]
    if unknown:
        sys.exit(f"unknown part(s) {unknown}; choose from {sorted(PARTS)}")
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    for part in parts:
        results[part] = PARTS[part]()
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main(sys.argv[1:])
