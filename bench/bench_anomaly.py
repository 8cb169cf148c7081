"""Anomaly detection on a labelled benchmark built from the twin.

Clean telemetry (SCADA, 4 PMUs, smart meters delayed one interval with 3 % lost, pseudo-
measurements from yesterday's load) over evaluation windows in every season, plus the
stressed scenarios when they are bundled; the monitor is calibrated on disjoint windows
(other weeks of each season). Reports per-step false alarms by detector and overall, then
injects every event type ``--events`` times (each alone) and reports detection, time to
detect and identification. Writes bench/results/bench_anomaly.json.

    python bench/bench_anomaly.py [--days 8] [--events 50] [--quick]

``--quick`` (development): 2-day windows and 12 injections per type, to bench/results/
bench_anomaly_quick.json; its rates are too coarse for the targets.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from gridsync.safety import benchmark as bm
from gridsync.sim.builder import load_scenario

OUT = Path(__file__).parent / "results" / "bench_anomaly.json"
SCENARIOS = Path(__file__).parents[1] / "gridsync" / "data" / "scenarios"
EVAL_STARTS = ("2016-01-11", "2016-04-11", "2016-07-11", "2016-10-10")
CAL_STARTS = ("2016-02-15", "2016-05-16", "2016-08-15", "2016-11-14")


# the electrified village (another feeder): its own calibration weeks, disjoint from evaluation
WINTER_EVAL = ("2016-02-01", "2016-12-12")
WINTER_CAL = ("2016-01-11", "2016-11-14")


def _path(name: str) -> Path | None:
    return next((p for p in SCENARIOS.glob(f"{name}.*") if p.suffix in (".toml", ".yaml")), None)


def _group(name, cal_specs, eval_specs):
    """Calibrate one monitor on ``cal_specs`` and build its evaluation windows; a spec is
    (label, scenario, load)."""
    monitor, cal, ev = None, [], []
    for label, s, load in cal_specs:
        monitor, bw = bm.make_window(monitor, s, label, load)
        cal.append(bw)
    bm.calibrate(monitor, cal)
    for label, s, load in eval_specs:
        ev.append(bm.make_window(monitor, s, label, load)[1])
    print(f"{name}: calibrated on {len(cal)} windows, {len(ev)} evaluation windows", flush=True)
    return monitor, cal, ev


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--days", type=int, default=8, help="days per seasonal evaluation window")
    ap.add_argument("--cal-days", type=int, default=6, help="days per calibration window")
    ap.add_argument("--stressed-days", type=int, default=4, help="days per stressed window")
    ap.add_argument("--events", type=int, default=50, help="injections per event type")
    ap.add_argument(
        "--default-truth",
        choices=("simulated", "inflexible"),
        default="simulated",
        help="default feeder's truth: an uncontrolled run of every flexible asset (EVs, heat "
        "pumps, ...) or its inflexible load and PV only",
    )
    ap.add_argument(
        "--feeders",
        choices=("all", "winter"),
        default="all",
        help="'winter': only the electrified village (a quick check; no setpoint benchmark)",
    )
    ap.add_argument("--quick", action="store_true", help="2-day windows, 12 events per type")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    if args.quick:
        args.days = args.cal_days = args.stressed_days = 2
        args.events = 12
    args.out = args.out or (OUT.with_name("bench_anomaly_quick.json") if args.quick else OUT)
    t0 = time.perf_counter()
    groups = []
    if args.feeders == "all":

        def spec(label: str, start: str, days: int):
            if args.default_truth == "simulated":
                return (label, *bm.simulated_window(None, start, days))
            return (label, load_scenario(days=days, history_days=7, start=start), None)

        cal_specs = [spec(f"calibration {d}", d, args.cal_days) for d in CAL_STARTS]
        eval_specs = [spec(f"evaluation {d}", d, args.days) for d in EVAL_STARTS]
        hot = _path("summer-high-pv")
        if hot is not None:  # same feeder, 8-18 kWp of PV: scored by the seasonal monitor
            if args.default_truth == "simulated":
                sim = bm.simulated_window(hot, "2016-06-06", args.stressed_days)
                eval_specs.append(("stressed summer-high-pv", *sim))
            else:
                s = load_scenario(hot, days=args.stressed_days, history_days=7)
                eval_specs.append(("stressed summer-high-pv", s, None))
        groups.append(_group("default feeder", cal_specs, eval_specs))
    cold = _path("winter-electrified")
    if cold is not None:
        n = args.stressed_days
        wc = [
            (f"calibration winter-electrified {d}", *bm.simulated_window(cold, d, n))
            for d in WINTER_CAL
        ]
        we = [
            (f"stressed winter-electrified {d}", *bm.simulated_window(cold, d, n))
            for d in WINTER_EVAL
        ]
        groups.append(_group("winter-electrified (Kerber village)", wc, we))
    t_cal = time.perf_counter() - t0
    mon_groups = [(m, ev) for m, _, ev in groups]
    clean = bm.clean_rates(mon_groups)
    by_group = {ev[0].label: bm.clean_rates([(m, ev)]) for m, ev in mon_groups}
    t_clean = time.perf_counter() - t0
    per_group = [bm.run_events(groups[0][0], groups[0][2], args.events)]
    for m, _, ev in groups[1:]:
        per_group.append(bm.run_events(m, ev, max(args.events // 5, 4), seed=12))
    outcomes = [o for g in per_group for o in g]
    events = bm.summarise(outcomes)
    events_by_group = {
        ev[0].scenario.config.name: bm.summarise(g)
        for (_, _, ev), g in zip(groups, per_group, strict=True)
    }
    n_ev = min(r["events"] for r in events.values())
    main_mon, main_ev = groups[0][0], groups[0][2]
    setpoint = bm.setpoint_benchmark(main_ev[0].scenario, clean["steps"], args.events)
    events["setpoint"] = {
        "events": setpoint["events"],
        "detection_rate": setpoint["detection_rate"],
    }
    chi = bm.chi2_nominal(main_mon, main_ev[0])
    det_ok = all(r["detection_rate"] >= 0.95 for r in events.values())
    id_ok = all(
        events[k].get("identification_rate_redundant", 0.0) >= 0.9 for k in bm.IDENTIFY_TYPES
    )
    results = {
        "feeders": [ev[0].scenario.config.name for _, ev in mon_groups],
        "evaluation_windows": [bw.label for _, ev in mon_groups for bw in ev],
        "calibration_windows": [bw.label for _, cal, _ in groups for bw in cal],
        "days_per_evaluation_window": {"seasonal": args.days, "stressed": args.stressed_days},
        "false_alarm_budget_per_step": main_mon.cfg.false_alarm_budget_per_step,
        "truth": {
            "default_feeder": "uncontrolled run of every flexible asset"
            if args.default_truth == "simulated"
            else "inflexible load and PV only",
            "winter-electrified": "uncontrolled run of every flexible asset",
            "pseudo_measurements": "yesterday's consumption without the flexible assets, "
            "minus today's PV, plus what the flexible assets' own telemetry reports today",
        },
        "thresholds": {
            ev[0].label: {k: round(float(v), 4) for k, v in m.thresholds.items()}
            for m, ev in mon_groups
        },
        "clean": clean,
        "clean_by_first_window_of_group": by_group,
        "setpoint_clean": setpoint,
        "chi2_on_clean_steps": chi,
        "events_per_type_min": n_ev,
        "events": events,
        "events_by_feeder": events_by_group,
        "identifiability": {ev[0].label: bm.identifiability(m) for m, ev in mon_groups},
        "targets": {
            "false_alarms_le_0.1pct_of_steps": clean["rate"]["overall"] <= 1e-3
            and clean["steps"] >= 2880,
            "detection_ge_95pct_every_type": det_ok,
            "identification_ge_90pct_redundant_gross_and_fdia": id_ok,
            "detection_ge_95pct_every_type_counting_only_events_with_a_redundant_reading": all(
                (r.get("detection_with_a_redundant_reading", {}).get("rate") or r["detection_rate"])
                >= 0.95
                for r in events.values()
            ),
        },
        "runtime_s": {
            "calibration_and_evidence": t_cal,
            "clean_scoring": t_clean - t_cal,
            "total": time.perf_counter() - t0,
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2), encoding="utf-8")
    print(
        f"clean: {clean['steps']} steps, false alarms {100 * clean['rate']['overall']:.3f} % of steps"
    )
    for k, v in clean["alarm_steps"].items():
        print(f"  {k:<18} {v:4d} steps")
    for kind, row in events.items():
        ident = row.get("identification_rate_redundant")
        ttd = row.get("time_to_detect_min", {}).get("median", float("nan"))
        print(
            f"{kind:<22} n={row['events']:3d} detected {100 * row['detection_rate']:5.1f} %"
            f"  median TTD {ttd:5.0f} min"
            + (f"  identified (redundant) {100 * ident:5.1f} %" if ident is not None else "")
        )
    print(json.dumps(results["targets"]))
    print(f"wrote {args.out} in {results['runtime_s']['total']:.0f} s")


if __name__ == "__main__":
    main()
