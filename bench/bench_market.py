"""Market benchmark: auction clearing time vs order count, ledger append/verify throughput.

* Clearing one interval of 1k / 10k / 100k orders with the vectorised sort-and-cross auction
  (``gridsync.market.auction.clear``) against the plain-Python two-pointer reference
  (``clear_reference``) in the same run; fills are checked equal.
* Ledger: signed append in blocks of 1,000 (one Ed25519 signature seals each block through the
  hash chain), append with a signature on every record, and offline verification.
* One market day on the bundled feeder (P2P with twin network check), intervals per second.
* Market days on the default and the two stressed scenarios, checked and settled on the full
  twin state (EV, heat-pump and appliance load included): self-consumption, self-sufficiency,
  where the saving comes from, who pays the network fees, network rejections and violations.

Usage: ``python bench/bench_market.py [--full]`` (``--full`` verifies a 1M-record ledger).
Writes bench/results/bench_market.json.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from gridsync.ledger import JsonlLedger, LedgerSigner
from gridsync.ledger.backend import verify_file
from gridsync.market.auction import clear, clear_reference
from gridsync.market.orders import BUY, SELL, OrderBook

OUT = Path(__file__).parent / "results" / "bench_market.json"


def _book(n: int, rng: np.random.Generator) -> OrderBook:
    side = rng.choice([BUY, SELL], n)
    price = np.round(np.where(side == BUY, rng.normal(0.22, 0.05, n), rng.normal(0.18, 0.05, n)), 4)
    return OrderBook.build(np.arange(n), side, rng.uniform(0.05, 5.0, n).round(3), price)


def _best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def auction_rows(sizes=(1_000, 10_000, 100_000)) -> list[dict]:
    rng = np.random.default_rng(1)
    rows = []
    for n in sizes:
        book = _book(n, rng)
        res = clear(book)
        lists = (book.side.tolist(), book.energy_kwh.tolist(), book.price_eur_per_kwh.tolist())
        ref_fills, ref_price, _ = clear_reference(*lists)
        assert np.allclose(res.filled_kwh, ref_fills, atol=1e-6), "vectorised != reference"
        assert abs(res.clearing_price_eur_per_kwh[0] - ref_price) < 1e-9
        t_vec = _best(lambda book=book: clear(book), 5)
        t_ref = _best(lambda lists=lists: clear_reference(*lists), 1 if n >= 100_000 else 3)
        rows.append(
            {
                "orders": n,
                "traded_kwh": float(res.traded_kwh.sum()),
                "vectorised_ms": 1e3 * t_vec,
                "reference_ms": 1e3 * t_ref,
                "speedup": t_ref / t_vec,
            }
        )
    return rows


def _entries(n: int):
    for k in range(n):
        yield (
            "trade",
            {
                "interval": "2016-06-06 12:00:00",
                "buyer": f"{k * 7919 % 104:016x}",
                "seller": f"{k * 104729 % 104:016x}",
                "energy_kwh": 0.25 + (k % 17) * 0.1,
                "buyer_price_eur_per_kwh": 0.18,
                "seller_price_eur_per_kwh": 0.18,
            },
        )


def ledger_rows(n_block: int, n_single: int) -> dict:
    signer = LedgerSigner.generate()
    with tempfile.TemporaryDirectory() as tmp:
        led = JsonlLedger(Path(tmp) / "block.jsonl", signer)
        t0 = time.perf_counter()
        led.append_many(_entries(n_block), block_size=1000)
        t_block = time.perf_counter() - t0
        t0 = time.perf_counter()
        report = verify_file(led.path, signer.public_key)
        t_verify = time.perf_counter() - t0
        assert report.ok
        size_mb = led.path.stat().st_size / 1e6
        single = JsonlLedger(Path(tmp) / "single.jsonl", signer)
        t0 = time.perf_counter()
        single.append_many(_entries(n_single), block_size=1)
        t_single = time.perf_counter() - t0
        t0 = time.perf_counter()
        assert verify_file(single.path, signer.public_key).ok
        t_verify_single = time.perf_counter() - t0
    return {
        "records_block": n_block,
        "append_block1000_records_per_s": n_block / t_block,
        "verify_block1000_records_per_s": (n_block + 1) / t_verify,
        "verify_1M_projected_s": 1e6 * t_verify / (n_block + 1),
        "file_mb": size_mb,
        "records_single": n_single,
        "append_every_record_signed_per_s": n_single / t_single,
        "verify_every_record_signed_per_s": (n_single + 1) / t_verify_single,
    }


def market_day() -> dict:
    from gridsync.market.p2p import run_p2p
    from gridsync.sim.builder import load_scenario

    scenario = load_scenario(days=1, history_days=7)
    t0 = time.perf_counter()
    res = run_p2p(scenario)
    dt = time.perf_counter() - t0
    return {
        "intervals": scenario.n_steps,
        "participants": len(res.participants),
        "orders": res.n_orders,
        "seconds": dt,
        "intervals_per_s": scenario.n_steps / dt,
    }


KPI_KEYS = (
    "participants",
    "traded_kwh",
    "community_pv_kwh",
    "community_load_kwh",
    "community_asset_load_kwh",
    "community_self_consumption",
    "community_self_consumption_no_market",
    "community_self_sufficiency",
    "community_self_sufficiency_no_market",
    "community_self_sufficiency_end_state_adjusted",
    "community_self_sufficiency_end_state_adjusted_no_market",
    "battery_energy_start_kwh",
    "battery_energy_end_kwh",
    "battery_energy_end_no_market_kwh",
    "bill_total_eur",
    "bill_total_no_market_eur",
    "participants_worse_off",
    "make_whole_eur",
    "saving_breakdown",
    "network_fees",
    "network_rejections",
    "network_rejected_kwh",
    "voltage_violations_market",
    "voltage_violations_no_market",
    "overloads_market",
    "overloads_no_market",
    "violations_added_by_market",
    "worst_added_voltage_change_pu",
    "worst_added_loading_change_pct",
    "min_voltage_pu",
    "max_loading_pct",
)


def community_days() -> list[dict]:
    """One market day per scenario on the full twin state."""
    import datetime as dt

    from gridsync.market.run import run_market
    from gridsync.sim.builder import load_scenario

    rows = []
    for name, start in (
        (None, None),
        ("winter-electrified", None),
        ("winter-electrified", dt.date(2016, 3, 21)),
        ("summer-high-pv", dt.date(2016, 6, 7)),
    ):
        extra = {"start": start} if start else {}
        scenario = load_scenario(name, days=1, **extra)
        s = run_market(scenario).summary
        rows.append(
            {"scenario": scenario.config.name, "day": str(scenario.window[0].date())}
            | {k: s[k] for k in KPI_KEYS}
        )
    return rows


def main(full: bool = False) -> dict:
    auction = auction_rows()
    print(f"{'orders':>8} {'vectorised ms':>14} {'reference ms':>13} {'speedup':>8}")
    for r in auction:
        print(
            f"{r['orders']:>8} {r['vectorised_ms']:>14.2f} {r['reference_ms']:>13.1f} {r['speedup']:>8.1f}"
        )
    ledger = ledger_rows(1_000_000 if full else 200_000, 10_000)
    print()
    for k, v in ledger.items():
        print(f"{k:>36}: {v:,.1f}")
    day = market_day()
    print()
    for k, v in day.items():
        print(f"{k:>36}: {v:,.2f}")
    days = community_days()
    print()
    for r in days:
        print(
            f"{r['scenario']:<28} {r['day']} traded {r['traded_kwh']:7.1f} kWh  "
            f"self-cons {r['community_self_consumption']:.3f}/{r['community_self_consumption_no_market']:.3f}  "
            f"self-suff {r['community_self_sufficiency_end_state_adjusted']:.3f}/"
            f"{r['community_self_sufficiency_end_state_adjusted_no_market']:.3f}  "
            f"rejected {r['network_rejections']}  violations {r['voltage_violations_market']}/"
            f"{r['voltage_violations_no_market']}  added {r['violations_added_by_market']}"
        )
    out = {"auction": auction, "ledger": ledger, "market_day": day, "community_days": days}
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(out, indent=2))
    print(f"\nwrote {OUT}")
    return out


if __name__ == "__main__":
    main(full="--full" in sys.argv)
