"""Storage lifespan bench: a year of behind-the-meter battery dispatch, three cost models.

    .venv/bin/python bench/bench_storage.py [--homes 8] [--days 365] [--chemistry LFP NMC]
        [--weights 1 2 4 8] [--calibration-days 7] [--jobs 2]

What runs: the homes of the default scenario that have rooftop PV and a battery on the same
bus (one battery each, the first ``--homes`` buses), each with its bus's real SimBench load
profile and pvlib PV on TMY weather, under the scenario's time-of-use import tariff and export
price (household bills, no demand charge), from 2016-01-08 for ``--days`` days at 15-minute
steps. Every hour an LP over the next 24 h (4 h at 15 min, then hourly) plans all batteries
from what is known then: the tariff, and a seasonal-naive forecast of each home's load and PV
(the same 15 minutes a day earlier, all measured by t-1); the first hour's setpoints are
applied to the realised load and PV through the twin's battery physics. Stored energy left
at the horizon end is worth the horizon's cheapest import price; in the bill, stored energy
above (below) the window's start level is credited (charged) at the window's mean import
price (``sim.accounting``'s default end-of-window rule). Variants:

- ``throughput``: the scenario's constant wear per kWh through the inverter (0.031 EUR/kWh);
- ``ageing``: ageing priced by the cell model (``gridsync.dispatch.degradation``: Shi et al.
  cycle-depth segments, calendar SoC bands; cells at 300 EUR/kWh, 10-year warranty), times a
  weight chosen before the evaluation run: the ageing weights of ``--weights`` are swept over
  four calibration weeks (Feb, May, Aug, Nov; each from new batteries), giving the Pareto curve
  of savings kept vs capacity saved against ``throughput``, and the rule fixed in advance takes
  the largest weight that keeps >= 95 % of the savings there;
- ``none``: the homes without a battery.

Every simulated day the batteries age (``gridsync.storage``, 25 C cells, rainflow depths; once
with LFP, once with NMC cells, ``--chemistry``) and fade feeds back: the next day's plans and physics use the faded capacity and efficiency.
Reported per variant: bills, savings against ``none``, capacity lost, equivalent full cycles,
savings per percentage point of capacity lost, the year's loss split into calendar and cycling,
and a 10-year projection (the year's energy
profile repeated, throughput conserved as capacity fades). Writes bench/results/storage.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "storage.json"
sys.path.insert(0, str(ROOT))

from gridsync.dispatch.degradation import AgeingCosts, add_battery_ageing  # noqa: E402
from gridsync.dispatch.lp import INF, LinearProgram  # noqa: E402
from gridsync.model import physics  # noqa: E402
from gridsync.storage.ageing import AgeingState, age_profile, age_window, capacity_frac  # noqa: E402
from gridsync.storage.calibration import AgeingEconomics  # noqa: E402
from gridsync.storage.cells import cell_for  # noqa: E402
from gridsync.storage.health import faded_batteries  # noqa: E402

FINE, COARSE_BLOCKS, BLOCK = 16, 20, 4  # 4 h of 15-min steps, then 20 hourly blocks
REPLAN = 4


def homes(s, n: int):
    """Batteries on distinct buses that also have PV: (battery index, bus)."""
    b, pv = s.fleet.battery, s.fleet.pv
    idx = [i for i in range(len(b)) if b.bus[i] in pv.bus]
    _, first = np.unique(b.bus[idx], return_index=True)
    idx = np.sort(np.asarray(idx)[first])[:n]
    return idx, b.bus[idx]


def blocks() -> np.ndarray:
    return np.r_[np.ones(FINE, int), np.full(COARSE_BLOCKS, BLOCK)]


def block_mean(x: np.ndarray, lens: np.ndarray) -> np.ndarray:
    """Mean of consecutive rows of ``x`` over blocks of ``lens`` steps."""
    edges = np.r_[0, np.cumsum(lens)]
    return np.add.reduceat(x, edges[:-1], axis=0) / lens.reshape((-1,) + (1,) * (x.ndim - 1))


def plan(bat, e0, net_kw, imp_p, exp_p, dt_h, deg_eur_per_kwh, costs):
    """Battery kW (charge +) per home for the first block, from one LP over the horizon."""
    n, H = len(e0), len(dt_h)
    lp = LinearProgram()
    tile = lambda a: np.repeat(a, H)  # noqa: E731
    dtb = np.tile(dt_h, n)
    wear = tile(np.full(n, deg_eur_per_kwh)) * dtb
    c = lp.add_cols("c", n * H, 0.0, tile(bat.power_kw), wear)
    d = lp.add_cols("d", n * H, 0.0, tile(bat.power_kw), wear)
    e_lo, e_hi = np.minimum(bat.energy_min_kwh, e0), np.maximum(bat.energy_max_kwh, e0)
    end_value = np.zeros(n * H)
    end_value[H - 1 :: H] = -imp_p.min() * bat.efficiency_discharge
    e = lp.add_cols("e", n * H, tile(e_lo), tile(e_hi), end_value)
    imp = lp.add_cols("imp", n * H, 0.0, INF, np.tile(imp_p, n) * dtb)
    exp = lp.add_cols("exp", n * H, 0.0, INF, -np.tile(exp_p, n) * dtb)
    r = np.arange(n * H)
    prev = r[r % H != 0]
    rhs = np.where(r % H == 0, tile(e0), 0.0)
    lp.add_rows(
        "energy",
        n * H,
        np.r_[r, r, r, prev],
        np.r_[e, c, d, e[prev - 1]],
        np.r_[
            np.ones(n * H),
            -tile(bat.efficiency_charge) * dtb,
            dtb / tile(bat.efficiency_discharge),
            -np.ones(len(prev)),
        ],
        rhs,
        rhs,
    )
    load = net_kw.T.reshape(-1)
    lp.add_rows(
        "balance",
        n * H,
        np.r_[r, r, r, r],
        np.r_[imp, exp, c, d],
        np.r_[np.ones(n * H), -np.ones(n * H), -np.ones(n * H), np.ones(n * H)],
        load,
        load,
    )
    if costs is not None:
        add_battery_ageing(
            lp,
            costs,
            c,
            d,
            e,
            dt_h,
            e0,
            e_lo,
            e_hi,
            bat.efficiency_charge,
            bat.efficiency_discharge,
        )
    sol = lp.solve(time_limit_s=20.0, options={"presolve": "off"})
    if not sol.ok:
        return np.zeros((n, REPLAN)), sol.solve_s, False
    p = sol.x[c] - sol.x[d]
    return p.reshape(n, H)[:, :REPLAN], sol.solve_s, True


def run(s, idx, bus, days: int, variant: str, cfg, weight: float = 1.0, offset_days: int = 0):
    """One variant over ``days`` from ``offset_days`` after the scenario's start, new batteries
    (``cfg``: the battery config, chemistry included; ``weight`` scales the ageing costs);
    returns bills, energy series and ageing state."""
    start = s.start_step + offset_days * s.steps_per_day
    T = days * s.steps_per_day
    dt = s.dt_h
    load = s.base_load_kw[:, bus]
    pv = s.pv_by_bus_kw(slice(0, None))[:, bus]
    imp_p, exp_p = s.tariff.import_eur_per_kwh, s.tariff.export_eur_per_kwh
    n = len(idx)
    cell = cell_for(cfg.chemistry)
    bat0 = s.fleet.battery
    nominal = bat0.capacity_kwh[idx]
    sub = type(bat0)(*(np.asarray(getattr(bat0, f))[idx] for f in bat0.__dataclass_fields__))
    state = AgeingState.fresh(n)
    bat = faded_batteries(sub, nominal, state, cell)
    energy = nominal * cfg.soc_initial_frac
    bill = np.zeros(n)
    e_series = np.zeros((n, T + 1))
    e_series[:, 0] = energy
    lens = blocks()
    dt_h = lens * dt
    solve_s, failed = 0.0, 0
    p_plan = np.zeros((n, REPLAN))
    day_start = 0
    for k in range(T):
        t = start + k
        if variant != "none" and k % REPLAN == 0:
            h = np.arange(t, t + lens.sum())
            net_fc = load[h - s.steps_per_day] - pv[h - s.steps_per_day]  # seasonal naive
            costs = None
            if variant == "ageing":
                econ = AgeingEconomics(
                    cell,
                    bat.capacity_kwh,
                    cfg.pack_cost_eur_per_kwh,
                    warranty_years=cfg.warranty_years,
                    temp_c=cfg.cell_temp_c,
                )
                costs = AgeingCosts(econ, state, weight=weight)
            deg = cfg.degradation_cost_eur_per_kwh if variant == "throughput" else 0.0
            p_plan, sec, ok = plan(
                bat,
                energy,
                block_mean(net_fc, lens),
                block_mean(imp_p[h], lens),
                block_mean(np.minimum(exp_p[h], imp_p[h]), lens),
                dt_h,
                deg,
                costs,
            )
            solve_s += sec
            failed += not ok
        if variant == "none":
            p = np.zeros(n)
        else:
            p, energy = physics.battery_step(bat, energy, p_plan[:, k % REPLAN], dt)
        grid = load[t] - pv[t] + p
        bill += (np.maximum(grid, 0) * imp_p[t] - np.maximum(-grid, 0) * exp_p[t]) * dt
        e_series[:, k + 1] = energy
        if variant != "none" and (k + 1) % s.steps_per_day == 0:
            seg = e_series[:, day_start : k + 2] / bat.capacity_kwh[:, None]
            state = age_window(state, cell, np.clip(seg, 0, 1), cfg.cell_temp_c, dt)
            bat = faded_batteries(sub, nominal, state, cell)
            energy = np.minimum(energy, bat.energy_max_kwh)
            day_start = k + 1
    # end-of-window accounting (``sim.accounting``'s default rule): stored energy above
    # (below) the start level is credited (charged) at the window's mean import price
    bill -= (e_series[:, -1] - e_series[:, 0]) * imp_p[start : start + T].mean()
    return {
        "bill": bill,
        "energy": e_series,
        "state": state,
        "nominal": nominal,
        "cell": cell,
        "solve_s": solve_s,
        "failed": failed,
    }


def summarise(res, none_bill, years_projection, days, cfg):
    cell = res["cell"]
    n = len(res["bill"])
    state = res["state"]
    cap = capacity_frac(state, cell)
    lost_pp = 100 * (1 - cap)
    savings = none_bill - res["bill"]
    profile = np.clip(res["energy"] / res["nominal"][:, None], 0, 1)
    repeats = int(np.ceil(years_projection * 365 / days))
    _, t_days, caps = age_profile(cell, profile, cfg.cell_temp_c, 0.25, repeats=repeats)
    at = np.array([np.interp(365.0 * years_projection, t_days[i], caps[i]) for i in range(n)])
    lost10 = 100 * (1 - at)
    soc = res["energy"] / res["nominal"][:, None]
    value_pp = cfg.pack_cost_eur_per_kwh * res["nominal"] / (100 * 0.2)  # EUR per pp to 80 %
    savings_10y = years_projection * 365 / days * savings.sum()
    return {
        "bill_eur": round(float(res["bill"].sum()), 2),
        "savings_eur": round(float(savings.sum()), 2),
        "capacity_lost_pp_mean": round(float(lost_pp.mean()), 4),
        "calendar_lost_pp_mean": round(float(100 * state.q_cal.mean()), 4),
        "cycle_lost_pp_mean": round(float(100 * state.q_cyc.mean()), 4),
        "efc_mean": round(float(state.efc.mean()), 1),
        "mean_soc_frac": round(float(soc.mean()), 4),
        "hours_above_80pct_soc_mean": round(float((soc > 0.8).sum(axis=1).mean() * 0.25), 1),
        "savings_eur_per_pp_lost": round(float(savings.sum() / lost_pp.sum()), 2),
        "projection_years": years_projection,
        "capacity_lost_pp_mean_10y": round(float(lost10.mean()), 3),
        "savings_eur_10y": round(float(savings_10y), 2),
        "capacity_value_lost_eur_10y": round(float((value_pp * lost10).sum()), 2),
        "net_eur_10y": round(float(savings_10y - (value_pp * lost10).sum()), 2),
        "per_home": {
            "savings_eur": np.round(savings, 2).tolist(),
            "capacity_lost_pp": np.round(lost_pp, 4).tolist(),
            "efc": np.round(state.efc, 1).tolist(),
        },
        "lp_solve_s": round(res["solve_s"], 1),
        "lp_failed": int(res["failed"]),
        "n_homes": n,
    }


CALIBRATION_OFFSETS_D = (38, 129, 220, 311)  # a week each in Feb, May, Aug, Nov
KEPT_MIN = 0.95


def calibrate(s, idx, bus, cfg, weights, week_days: int) -> dict:
    """Savings kept and capacity saved against ``throughput`` per ageing weight, over four
    calibration weeks (each from new batteries, summed), and the weight the rule fixed in
    advance picks: the largest whose savings kept >= KEPT_MIN (1, the model's own price, if
    none)."""
    none = {
        off: run(s, idx, bus, week_days, "none", cfg, offset_days=off)["bill"].sum()
        for off in CALIBRATION_OFFSETS_D
    }
    tot = {}
    for name, w in [("throughput", 1.0)] + [(f"ageing x{w:g}", w) for w in weights]:
        variant = name.split()[0]
        sav = lost = 0.0
        for off in CALIBRATION_OFFSETS_D:
            r = run(s, idx, bus, week_days, variant, cfg, w, off)
            sav += none[off] - r["bill"].sum()
            lost += 100 * (1 - capacity_frac(r["state"], r["cell"])).mean()
        tot[name] = (w, sav, lost)
    _, sav_t, lost_t = tot.pop("throughput")
    curve = [
        {
            "weight": w,
            "savings_eur": round(sav, 2),
            "capacity_lost_pp_mean": round(lost, 4),
            "savings_kept_frac": round(sav / sav_t, 4),
            "capacity_saved_frac": round(1 - lost / lost_t, 4),
        }
        for w, sav, lost in tot.values()
    ]
    ok = [c["weight"] for c in curve if c["savings_kept_frac"] >= KEPT_MIN]
    return {
        "weeks_from_start_day": list(CALIBRATION_OFFSETS_D),
        "week_days": week_days,
        "throughput": {"savings_eur": round(sav_t, 2), "capacity_lost_pp_mean": round(lost_t, 4)},
        "pareto": curve,
        "rule": f"largest weight with savings kept >= {KEPT_MIN} on these weeks, else 1",
        "chosen_weight": max(ok) if ok else 1.0,
    }


def one_chemistry(args, chem: str) -> dict:
    """Calibration sweep, then the evaluation window at the chosen weight, for one chemistry."""
    from gridsync.sim.builder import load_scenario

    days = max(args.days, max(CALIBRATION_OFFSETS_D) + args.calibration_days)
    s = load_scenario(days=days, start=dt.date.fromisoformat(args.start), history_days=7)
    idx, bus = homes(s, args.homes)
    cfg = s.config.fleet.battery.model_copy(update={"chemistry": chem})
    cal = calibrate(s, idx, bus, cfg, args.weights, args.calibration_days)
    print(f"{chem} calibration: {json.dumps(cal['pareto'])}", flush=True)
    none_bill = run(s, idx, bus, args.days, "none", cfg)["bill"]
    res = {"none": {"bill_eur": round(float(none_bill.sum()), 2)}, "calibration": cal}
    for variant in ("throughput", "ageing"):
        c0, w0 = time.process_time(), time.perf_counter()
        r = run(s, idx, bus, args.days, variant, cfg, cal["chosen_weight"])
        res[variant] = summarise(r, none_bill, args.years, args.days, cfg)
        res[variant]["cpu_s"] = round(time.process_time() - c0, 1)
        print(f"{chem} {variant}: {time.perf_counter() - w0:.0f} s wall", flush=True)
    res["ageing"]["weight"] = cal["chosen_weight"]
    thr, age = res["throughput"], res["ageing"]
    res["targets"] = {
        "savings_kept_frac": round(age["savings_eur"] / thr["savings_eur"], 4),
        "capacity_loss_reduction_frac": round(
            1 - age["capacity_lost_pp_mean"] / thr["capacity_lost_pp_mean"], 4
        ),
        "net_10y_gain_eur": round(age["net_eur_10y"] - thr["net_eur_10y"], 2),
    }
    print(f"{chem}: {json.dumps(res['targets'])}", flush=True)
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--homes", type=int, default=8)
    ap.add_argument("--days", type=int, default=365)
    ap.add_argument("--years", type=int, default=10)
    ap.add_argument("--start", default="2016-01-08")
    ap.add_argument("--chemistry", nargs="+", default=["LFP", "NMC"], choices=["LFP", "NMC"])
    ap.add_argument("--weights", type=float, nargs="+", default=[1.0, 2.0, 4.0, 8.0])
    ap.add_argument("--calibration-days", type=int, default=7)
    ap.add_argument("--jobs", type=int, default=2, help="chemistries run in parallel")
    args = ap.parse_args()
    from gridsync.sim.builder import load_scenario

    s = load_scenario(days=args.days, start=dt.date.fromisoformat(args.start), history_days=7)
    idx, bus = homes(s, args.homes)
    base_cfg = s.config.fleet.battery
    t0 = time.perf_counter()
    with ProcessPoolExecutor(max_workers=max(1, min(args.jobs, len(args.chemistry)))) as pool:
        done = pool.map(one_chemistry, [args] * len(args.chemistry), args.chemistry)
        out = {"chemistries": dict(zip(args.chemistry, done, strict=True))}
    out["wall_s"] = round(time.perf_counter() - t0, 1)
    out["setup"] = {
        "scenario": s.config.name,
        "start": args.start,
        "days": args.days,
        "homes_battery_index": idx.tolist(),
        "homes_bus": bus.tolist(),
        "capacity_kwh": np.round(s.fleet.battery.capacity_kwh[idx], 2).tolist(),
        "cell_temp_c": base_cfg.cell_temp_c,
        "pack_cost_eur_per_kwh": base_cfg.pack_cost_eur_per_kwh,
        "throughput_wear_eur_per_kwh": round(base_cfg.degradation_cost_eur_per_kwh, 5),
        "replan_every_steps": REPLAN,
        "horizon": "16 x 15 min + 20 x 1 h",
        "forecast": "seasonal naive (same step a day earlier), tariff known",
        "ageing_cost": "model marginal at 300 EUR/kWh per 20 pp, x the weight chosen on the "
        "calibration weeks (see chemistries.*.calibration)",
    }
    out["machine"] = {"python": platform.python_version(), "cpus": os.cpu_count()}
    head = ("chem", "variant", "bill EUR", "savings", "lost pp", "EFC", "EUR/pp", "lost 10y")
    print("{:<5}{:<12}{:>10}{:>10}{:>9}{:>7}{:>9}{:>10}{:>10}".format(*head, "net 10y"))
    for chem, res in out["chemistries"].items():
        print(f"{chem:<5}{'none':<12}{res['none']['bill_eur']:>10.2f}")
        for name in ("throughput", "ageing"):
            v = res[name]
            print(
                f"{chem:<5}{name:<12}{v['bill_eur']:>10.2f}{v['savings_eur']:>10.2f}"
                f"{v['capacity_lost_pp_mean']:>9.3f}{v['efc_mean']:>7.1f}"
                f"{v['savings_eur_per_pp_lost']:>9.2f}{v['capacity_lost_pp_mean_10y']:>10.2f}"
                f"{v['net_eur_10y']:>10.2f}"
            )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
