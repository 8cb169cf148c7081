"""Forecasting benchmark: accuracy on real demand (half-hourly and hourly), speed on 1,000 nodes.

1. Real data, both bundled in gridsync/data/demand: Taylor's half-hourly England & Wales
   demand (Jun-Aug 2000, via pmdarima) and hourly Victoria (AU) demand (2012, AEMO via
   tsibbledata/statsmodels). Rolling-origin backtest, 56-day training window, a 24 h forecast
   issued every 12 h (Taylor, all origins of the remaining ~4 weeks) or 24 h (Victoria, last
   20 days), learned models refitted weekly. Models: seasonal-naive (day, week), double-seasonal
   Holt-Winters, the global LightGBM quantile model, the hybrid (profile-AR +
   Holt-Winters + profile-residual LightGBM + MSTL-like decomposition, NNLS-stacked, with a
   conformal band scaled by time of day, the default learned model)
   and the peer statsforecast MSTL + AutoETS (refitted at every origin, as it must be). Per
   model: MAPE per lead hour, mean MAPE, pinball, P10-P90 coverage, and for every other model
   whether it is beaten at every lead hour (``beats_at_every_lead``), and the lowest/highest
   per-lead coverage (``coverage_by_lead_min``/``_max``).
2. Scale: 1,000 synthetic-but-realistic nodes at 15 min built from the bundled SimBench
   2016 load profiles (random profile, scale, whole-week shift and 10 % multiplicative
   noise), 28 days of history: fit + 24 h (96-step) forecast wall time of LightGBM (default
   and a lighter 50k-row/100-tree setting) and the hybrid, against seasonal-naive measured in
   the same run, and next-day accuracy of each.
3. Dispatch scenario: ``LearnedForecaster`` with the LightGBM (default) and the hybrid load
   model on the bundled SimBench household feeder, a 24 h forecast issued at midnight on each
   of 7 days (21-day training window): feeder-head MAPE and P10-P90 coverage, per-bus MAE.

Single-threaded (OMP_NUM_THREADS=1, LightGBM num_threads=1); timings on a shared 2-core
machine are noisy. Usage: .venv/bin/python bench/bench_forecast.py [--nodes 1000]
Writes bench/results/bench_forecast.json.
"""

from __future__ import annotations

import argparse
import json
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
from pathlib import Path

import numpy as np
import pandas as pd

from gridsync.forecast.backtest import lead_metrics, run_backtest
from gridsync.forecast.baselines import SeasonalNaive
from gridsync.forecast.datasets import taylor_halfhourly, vic_elec_hourly
from gridsync.forecast.gbm import GlobalLightGBM
from gridsync.forecast.hybrid import HybridForecaster
from gridsync.forecast.models import model_factories

RESULTS = Path(__file__).parent / "results" / "bench_forecast.json"
PROFILES = (
    Path(__file__).parents[1] / "gridsync/data/profiles/simbench_lv_semiurb5_load_2016.csv.gz"
)


DATASETS = {
    "taylor_halfhourly": dict(
        load=taylor_halfhourly,
        holidays=dict(country="GB", subdiv="ENG"),
        issue_every_h=12,
        max_origins=0,
        data="Taylor (2003) England & Wales half-hourly demand, 2000-06-05..2000-08-27 "
        "(via pmdarima, MIT)",
    ),
    "vic_hourly": dict(
        load=vic_elec_hourly,
        holidays=dict(country="AU", subdiv="VIC"),
        issue_every_h=24,
        max_origins=20,
        data="vic_elec hourly 2012 (AEMO via tsibbledata/statsmodels)",
    ),
}


def real_demand(name: str) -> dict:
    spec = DATASETS[name]
    y = spec["load"]()
    factories = model_factories(horizon_h=24, train_days=56, **spec["holidays"])
    t0 = time.perf_counter()
    res = run_backtest(
        y,
        factories,
        horizon_h=24,
        train_days=56,
        issue_every_h=spec["issue_every_h"],
        refit_every_h=168,
        max_origins=spec["max_origins"],
    )
    report = res.to_json()
    report["wall_s"] = time.perf_counter() - t0
    report["data"] = spec["data"]
    report["resolution_min"] = (y.index[1] - y.index[0]) / pd.Timedelta(minutes=1)
    report["issue_every_h"] = spec["issue_every_h"]
    report["first_origin"], report["last_origin"] = str(res.origins[0]), str(res.origins[-1])
    models = report["models"]
    for a, ra in models.items():
        mine = np.array(list(ra["mape_by_lead_h"].values()))
        cover = np.array(list(ra["coverage_by_lead_h"].values()))
        ra["coverage_by_lead_min"], ra["coverage_by_lead_max"] = cover.min(), cover.max()
        ra["beats_at_every_lead"] = {}
        ra["leads_won"] = {}
        for b, rb in models.items():
            if b != a:
                other = np.array(list(rb["mape_by_lead_h"].values()))
                ra["beats_at_every_lead"][b] = bool((mine < other).all())
                ra["leads_won"][b] = int((mine < other).sum())
    return report


def synthetic_nodes(n_nodes: int, days: int, seed: int = 0) -> pd.DataFrame:
    raw = pd.read_csv(PROFILES, parse_dates=["time"], index_col="time")
    p = raw[[c for c in raw.columns if c.endswith("_pload")]].to_numpy()
    rng = np.random.default_rng(seed)
    steps = (days + 0) * 96
    start = 96 * 7 * 10  # mid-March 2016, a Monday-aligned whole number of weeks in
    cols = rng.integers(0, p.shape[1], n_nodes)
    shift = 96 * 7 * rng.integers(0, 20, n_nodes)
    scale = rng.uniform(2.0, 15.0, n_nodes)
    rows = start + shift[None, :] + np.arange(steps)[:, None]
    noise = 1 + 0.1 * rng.standard_normal((steps, n_nodes))
    values = p[rows, cols[None, :]] * scale * noise
    index = raw.index[start : start + steps]
    return pd.DataFrame(values, index=index, columns=[f"n{i}" for i in range(n_nodes)])


def many_nodes(n_nodes: int) -> dict:
    frame = synthetic_nodes(n_nodes, days=29)
    hist, truth = frame.iloc[:-96], frame.iloc[-96:].to_numpy()
    out = {"nodes": n_nodes, "history_days": 28, "resolution_min": 15, "horizon_steps": 96}
    for name, model in (
        ("seasonal_naive_day", SeasonalNaive("1D")),
        ("lightgbm", GlobalLightGBM(max_lead_h=24)),
        ("lightgbm_fast", GlobalLightGBM(max_lead_h=24, max_rows=50_000, n_estimators=100)),
        ("hybrid", HybridForecaster.for_history_days(28, max_lead_h=24)),
    ):
        t0 = time.perf_counter()
        model.fit(hist)
        t1 = time.perf_counter()
        fc = model.predict(96)
        t2 = time.perf_counter()
        m = lead_metrics(truth[None], fc.values[None], fc.quantiles)
        agg_true = truth.sum(axis=1)
        agg_pred = fc.p50.sum(axis=1)
        out[name] = {
            "fit_s": t1 - t0,
            "predict_s": t2 - t1,
            "total_s": t2 - t0,
            "node_mae_mean": float(m["mae"].mean()),
            "node_pinball_mean": float(m["pinball"].mean()),
            "node_coverage_p10_p90": float(m["coverage_p10_p90"].mean()),
            "sum_of_nodes_mape": float(100 * np.mean(np.abs(agg_pred - agg_true) / agg_true)),
        }
    for name in ("lightgbm", "hybrid"):
        out[f"{name}_vs_naive_time_ratio"] = out[name]["total_s"] / max(
            out["seasonal_naive_day"]["total_s"], 1e-9
        )
    return out


def dispatch_scenario(days: int = 7) -> dict:
    from gridsync.forecast.scenario import LearnedForecaster, feeder_summary
    from gridsync.sim.builder import load_scenario

    sc = load_scenario(days=days)
    out = {"days": days, "train_days": 21, "steps_per_day": sc.steps_per_day}
    for name in ("lightgbm", "hybrid"):
        f = LearnedForecaster(load_model=name)
        mape, cover, bus_mae, wall = [], [], [], 0.0
        for d in range(days):
            step = sc.start_step + d * sc.steps_per_day
            if step + sc.steps_per_day > len(sc.index):
                break
            t0 = time.perf_counter()
            fc = f.forecast(sc, step, sc.steps_per_day)
            wall += time.perf_counter() - t0
            s = feeder_summary(sc, step, fc)
            mape.append(s["load_mape_pct"])
            cover.append(s["load_coverage_pct"])
            truth = sc.base_load_kw[step + 1 : step + sc.steps_per_day]
            bus_mae.append(float(np.abs(fc.base_load_kw[1:] - truth).mean()))
        out[name] = {
            "mode": f.mode,
            "feeder_mape_by_day": mape,
            "feeder_mape_mean": float(np.mean(mape)),
            "feeder_coverage_p10_p90": float(np.mean(cover)),
            "bus_mae_kw": float(np.mean(bus_mae)),
            "wall_s": wall,
        }
    return out


def print_real(name: str, report: dict) -> None:
    models = report["models"]
    print(f"\n{name}: {report['data']}, {report['n_origins']} origins")
    names = list(models)
    print("lead h " + " ".join(f"{n[:14]:>15}" for n in names))
    for lead in models[names[0]]["mape_by_lead_h"]:
        print(
            f"{lead:>6} " + " ".join(f"{models[n]['mape_by_lead_h'][lead]:>15.2f}" for n in names)
        )
    for key in (
        "mape_mean",
        "pinball_mean",
        "coverage_p10_p90",
        "coverage_by_lead_min",
        "coverage_by_lead_max",
        "fit_s_total",
        "predict_s_total",
    ):
        print(f"{key[:6]:>6} " + " ".join(f"{models[n][key]:>15.2f}" for n in names) + f"  {key}")
    for n in names:
        won = models[n]["leads_won"]
        print(
            f"{n:>20} wins every lead vs: {[b for b, v in models[n]['beats_at_every_lead'].items() if v]}; leads won {won}"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nodes", type=int, default=1000)
    ap.add_argument(
        "--only-scale", action="store_true", help="rerun part 2, keep part 1 from the JSON"
    )
    ap.add_argument(
        "--only-real", action="store_true", help="rerun part 1, keep part 2 from the JSON"
    )
    args = ap.parse_args()
    result = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    result.pop("real_demand", None)  # the single-data-set layout of earlier runs
    if not args.only_scale:
        result["real"] = {name: real_demand(name) for name in DATASETS}
    if not args.only_real:
        result["scale"] = many_nodes(args.nodes)
        result["scenario"] = dispatch_scenario()
    for name, report in result["real"].items():
        print_real(name, report)
    s = result["scale"]
    print(f"\n{s['nodes']} nodes, 28 days at 15 min, 96-step forecast")
    for name in ("seasonal_naive_day", "lightgbm", "lightgbm_fast", "hybrid"):
        r = s[name]
        print(
            f"{name:>20}: fit {r['fit_s']:.2f} s, predict {r['predict_s']:.2f} s, "
            f"node pinball {r['node_pinball_mean']:.3f}, coverage "
            f"{r['node_coverage_p10_p90']:.1f} %, sum-of-nodes MAPE {r['sum_of_nodes_mape']:.2f} %"
        )
    sc = result["scenario"]
    print(f"\nDispatch scenario, {sc['days']} daily issues, feeder head")
    for name in ("lightgbm", "hybrid"):
        r = sc[name]
        print(
            f"{name:>20}: feeder MAPE {r['feeder_mape_mean']:.2f} %, coverage "
            f"{r['feeder_coverage_p10_p90']:.1f} %, bus MAE {r['bus_mae_kw']:.4f} kW, "
            f"{r['wall_s']:.1f} s"
        )
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2))
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
