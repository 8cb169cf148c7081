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

Writes bench/results/resilience.json (merging the parts run).

    nice -n 10 python bench/bench_resilience.py rbts flisr storms
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


PARTS = {"rbts": bench_rbts, "flisr": bench_flisr, "storms": bench_storms}


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
