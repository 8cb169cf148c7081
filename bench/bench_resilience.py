"""Resilience benchmarks: RBTS Bus 2 reliability indices, published vs computed.

``rbts``: the bundled RBTS Bus 2 base case (Allan et al., 1991), analytical FMEA and a
1,000,000-year sequential Monte Carlo (seed 20), every system index beside the published value.

Writes bench/results/resilience.json (merging the parts run).

    nice -n 10 python bench/bench_resilience.py rbts
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from gridsync.resilience.report import format_report, reliability_report

RESULTS = Path(__file__).resolve().parent / "results" / "resilience.json"


def bench_rbts() -> dict:
    report = reliability_report(years=1_000_000, seed=20)
    print(format_report(report))
    return report


PARTS = {"rbts": bench_rbts}


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
