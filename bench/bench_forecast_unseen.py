"""Forecasting on demand the project never developed on: the hybrid vs MSTL and seasonal-naive.

Held-out windows (``gridsync/data/demand/unseen_*.csv.gz``, ``scripts/extract_unseen_demand.py``):
Great Britain national demand (NESO, half-hourly, 2022), PJM East (hourly, 2017) and France
(ENTSO-E, hourly, 2019), one winter and one summer window each. Protocol per window: 56-day
training window, the 28 following days as test, a 24 h forecast issued every 6 h (leads 1-24 h,
109 origins), learned models refitted weekly on the trailing 56 days, MSTL refitted at every
origin (as it must be). The hybrid is the CLI's default ``hybrid`` (chosen in advance; no
setting looked at these windows), univariate: no weather, no holiday calendar.

Also the two bundled sets under the CLI's default protocol (``gridsync forecast backtest
--csv bundled:taylor|vic``: 56 training days, issue every 6 h, refit weekly, all origins).

Per window and model: mean MAPE over leads, MAPE per lead hour, P10-P90 coverage, wall time.
Summary: hybrid / MSTL mean MAPE over the six windows, windows won, coverage range, cost ratio.
Single-threaded. Usage: python bench/bench_forecast_unseen.py [--models hybrid,mstl_autoets,...]
[--part unseen|bundled|all]; models not rerun keep their numbers from the existing JSON (same
protocol), so the slow MSTL need not be repeated when only the hybrid changed.
Writes bench/results/forecast_unseen.json.
"""

from __future__ import annotations

import argparse
import json
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
from pathlib import Path

import numpy as np

from gridsync.forecast.backtest import run_backtest
from gridsync.forecast.datasets import SEASONS, UNSEEN, bundled, unseen_window
from gridsync.forecast.models import model_factories

RESULTS = Path(__file__).parent / "results" / "forecast_unseen.json"
MODELS = ("seasonal_naive_week", "hybrid", "mstl_autoets")
PROTOCOL = dict(horizon_h=24.0, train_days=56.0, issue_every_h=6.0, refit_every_h=168.0)


def one_window(y, names) -> dict:
    factories = model_factories(list(names), horizon_h=24, train_days=56, require_peers=True)
    out = {}
    for name, factory in factories.items():
        t0 = time.perf_counter()
        res = run_backtest(y, {name: factory}, **PROTOCOL)
        report = res.to_json()["models"][name]
        report["wall_s"] = time.perf_counter() - t0
        report["n_origins"] = len(res.origins)
        report["first_origin"], report["last_origin"] = str(res.origins[0]), str(res.origins[-1])
        out[name] = report
        print(
            f"  {name:>20}: MAPE {report['mape_mean']:.3f} %, coverage "
            f"{report['coverage_p10_p90']:.1f} %, {report['wall_s']:.1f} s",
            flush=True,
        )
    return out


def summarise(windows: dict) -> dict:
    keys = [k for k, w in windows.items() if {"hybrid", "mstl_autoets"} <= set(w)]
    if not keys:
        return {}
    hy = np.array([windows[k]["hybrid"]["mape_mean"] for k in keys])
    ms = np.array([windows[k]["mstl_autoets"]["mape_mean"] for k in keys])
    cov = np.array([windows[k]["hybrid"]["coverage_p10_p90"] for k in keys])
    cost = np.array(
        [windows[k]["mstl_autoets"]["wall_s"] / windows[k]["hybrid"]["wall_s"] for k in keys]
    )
    return {
        "windows": keys,
        "hybrid_mape_mean": float(hy.mean()),
        "mstl_mape_mean": float(ms.mean()),
        "hybrid_over_mstl": float(hy.mean() / ms.mean()),
        "windows_hybrid_beats_mstl": int((hy < ms).sum()),
        "hybrid_coverage_min": float(cov.min()),
        "hybrid_coverage_max": float(cov.max()),
        "windows_coverage_75_85": int(((cov >= 75) & (cov <= 85)).sum()),
        "mstl_over_hybrid_wall_time_min": float(cost.min()),
        "mstl_over_hybrid_wall_time_max": float(cost.max()),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--part", choices=("unseen", "bundled", "all"), default="all")
    ap.add_argument("--results", type=Path, default=RESULTS, help="JSON to read and update")
    args = ap.parse_args()
    results = args.results
    names = [n for n in args.models.split(",") if n]
    result = json.loads(results.read_text()) if results.exists() else {}
    result["protocol"] = PROTOCOL
    parts = {"unseen": [], "bundled": []}
    if args.part in ("unseen", "all"):
        parts["unseen"] = [
            (f"{n}_{s}", lambda n=n, s=s: unseen_window(n, s)) for n in UNSEEN for s in SEASONS
        ]
    if args.part in ("bundled", "all"):
        parts["bundled"] = [(n, lambda n=n: bundled(n)) for n in ("taylor", "vic")]
    for part, items in parts.items():
        block = result.setdefault(part, {})
        for key, load in items:
            print(key, flush=True)
            block.setdefault(key, {}).update(one_window(load(), names))
    result["summary_unseen"] = summarise(result.get("unseen", {}))
    result["summary_bundled"] = summarise(result.get("bundled", {}))
    results.parent.mkdir(exist_ok=True)
    results.write_text(json.dumps(result, indent=2))
    for part in ("unseen", "bundled"):
        for key, w in result.get(part, {}).items():
            print(
                f"{key:>14} "
                + "  ".join(
                    f"{m} {w[m]['mape_mean']:.3f}%/{w[m]['coverage_p10_p90']:.0f}%" for m in w
                )
            )
    print(
        json.dumps(
            {"unseen": result["summary_unseen"], "bundled": result["summary_bundled"]}, indent=1
        )
    )
    print(f"wrote {results}")


if __name__ == "__main__":
    main()
