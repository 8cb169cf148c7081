"""``gridsync market``: run the peer-to-peer market and bid the fleet as a virtual power plant."""

from __future__ import annotations

import json
import math
from pathlib import Path

import click

from gridsync.cli.options import (
    days_option,
    json_option,
    load_scenario_or_exit,
    scenario_option,
    start_option,
)
from gridsync.ledger.cli import DEFAULT_KEY_DIR


@click.group()
def market() -> None:
    """Energy market on the digital twin: P2P trading, settlement, credits, carbon, VPP bids.

    \b
    Examples:
      gridsync market run --days 1 --json market.json
      gridsync market run --rule pay_as_bid --ledger out/ledger.jsonl --statements-dir out/st
      gridsync ledger verify out/ledger.jsonl --public-key ~/.config/gridsync/keys/ledger_ed25519.pub.pem
      gridsync market vpp --days 2
    """


def scenario_options(f):
    for opt in (
        json_option("Write the summary to this JSON file."),
        start_option(),
        days_option(default=1, help="Days to run."),
        scenario_option("Scenario file (.toml/.yaml). Default: the bundled SimBench LV feeder."),
    ):
        f = opt(f)
    return f


@market.command("run")
@scenario_options
@click.option(
    "--rule",
    type=click.Choice(["uniform", "pay_as_bid"]),
    default="uniform",
    show_default=True,
    help="Pricing: one price per interval, or everyone at their own limit price.",
)
@click.option(
    "--ledger",
    "ledger_path",
    type=click.Path(dir_okay=False),
    default="reports/market-ledger.jsonl",
    show_default=True,
    help="Ledger file to append trades, meter readings and credit movements to.",
)
@click.option(
    "--key-dir",
    default=DEFAULT_KEY_DIR,
    show_default=True,
    help="Where the operator's signing key lives (created on first use; keep it out of git).",
)
@click.option(
    "--statements-dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Write one JSON statement per participant (own trades and bill only) here.",
)
@click.option(
    "--forecast",
    type=click.Choice(["persistence", "naive", "perfect"]),
    default="persistence",
    show_default=True,
    help="What agents trade on: last interval's metered value, yesterday's day-ahead "
    "(seasonal naive), or the truth (shows the mechanism without forecast error).",
)
@click.option("--quiet", is_flag=True, help="No progress output.")
def run(
    scenario_path,
    days,
    start,
    json_path,
    rule,
    ledger_path,
    key_dir,
    statements_dir,
    forecast,
    quiet,
):
    """Run the P2P market with settlement, credits and carbon; print a summary.

    Each interval every prosumer agent offers its forecast surplus and bids for its deficit
    (priced between the retail export and import price by its preferences); batteries bid to
    charge from neighbours' PV and offer stored energy at the evening peak. A double auction
    clears each interval; flexible trades that would push a voltage out of band or overload a
    branch on the AC twin (with every asset on the bus: EVs, heat pumps and appliances stepped
    on the twin) are rejected and the interval re-cleared. Meters settle the trades
    (shortfalls and unused purchases at imbalance prices); every trade, meter reading and
    credit movement is appended to a signed, hash-chained ledger. Bills are compared with the
    same agents not trading.
    """
    from rich.console import Console
    from rich.table import Table

    from gridsync.ledger.backend import JsonlLedger
    from gridsync.ledger.keys import load_or_create_signer
    from gridsync.market.agents import MarketConfig
    from gridsync.market.run import run_market
    from gridsync.market.twin_state import asset_load_by_bus_kw, lagged

    console = Console(quiet=quiet)
    with console.status("building scenario..."):
        scenario = load_scenario_or_exit(scenario_path, days, start)
    signer = load_or_create_signer(key_dir)
    try:
        ledger = JsonlLedger(ledger_path, signer)
    except ValueError as err:
        raise click.ClickException(str(err)) from None
    secret = signer.pseudonym_secret()
    with console.status("stepping EVs, heat pumps and appliances on the twin..."):
        asset_kw = asset_load_by_bus_kw(scenario)
    forecast_kw = None
    if forecast != "persistence":
        from gridsync.market.p2p import day_ahead_forecast_kw
        from gridsync.sim.forecasts import NaiveForecaster, PerfectForecaster

        model = NaiveForecaster() if forecast == "naive" else PerfectForecaster()
        # the assets' part: the truth, or yesterday's telemetry (none before the window)
        assets = asset_kw if forecast == "perfect" else lagged(asset_kw, scenario.steps_per_day)
        forecast_kw = day_ahead_forecast_kw(scenario, model) + assets
    with console.status(f"trading {scenario.n_steps} intervals ({rule})..."):
        result = run_market(
            scenario,
            MarketConfig(rule=rule),
            ledger=ledger,
            secret=secret,
            forecast_net_kw=forecast_kw,
            asset_kw=asset_kw,
        )
    s = result.summary
    table = Table(title=f"P2P market, {scenario.config.name}, {days} day(s), {rule} pricing")
    table.add_column("metric")
    table.add_column("market", justify="right")
    table.add_column("no market", justify="right")
    rows = [
        ("traded energy (kWh)", s["traded_kwh"], None),
        ("trades / orders", f"{s['trades']} / {s['orders']}", None),
        ("avg buyer price (EUR/kWh)", s["avg_buyer_price_eur_per_kwh"], None),
        ("avg seller price (EUR/kWh)", s["avg_seller_price_eur_per_kwh"], None),
        (
            "community self-consumption",
            s["community_self_consumption"],
            s["community_self_consumption_no_market"],
        ),
        (
            "community self-sufficiency",
            s["community_self_sufficiency"],
            s["community_self_sufficiency_no_market"],
        ),
        (
            "self-sufficiency, drained battery counted",
            s["community_self_sufficiency_end_state_adjusted"],
            s["community_self_sufficiency_end_state_adjusted_no_market"],
        ),
        ("saving: retail spread kept (EUR)", s["saving_breakdown"]["retail_spread_kept_eur"], None),
        ("saving: physical and other (EUR)", s["saving_breakdown"]["physical_and_other_eur"], None),
        ("network fees paid by buyers (EUR)", s["network_fees"]["collected_eur"], None),
        ("  of which refunded (make-whole)", s["network_fees"]["refunded_make_whole_eur"], None),
        ("sum of bills (EUR)", s["bill_total_eur"], s["bill_total_no_market_eur"]),
        (
            "better / worse off",
            f"{s['participants_better_off']} / {s['participants_worse_off']}",
            None,
        ),
        ("worst individual saving (EUR)", s["worst_saving_eur"], None),
        (
            "credits minted / held / redeemed",
            f"{s['credits_minted']:.1f} / {s['credits_held']:.1f} / {s['credits_redeemed']:.1f}",
            None,
        ),
        ("carbon avoided, participants (kg)", s["carbon_avoided_participants_kg"], None),
        ("carbon avoided, community (kg)", s["carbon_avoided_community_kg"], None),
        (
            "voltage violations (bus-steps)",
            s["voltage_violations_market"],
            s["voltage_violations_no_market"],
        ),
        ("overloads (branch-steps)", s["overloads_market"], s["overloads_no_market"]),
        ("violations added by market", s["violations_added_by_market"], None),
        ("trades rejected by network check", s["network_rejections"], None),
    ]
    for name, a, b in rows:
        table.add_row(name, _fmt(a), "" if b is None else _fmt(b))
    console.print(table)
    console.print(f"carbon method: {s['carbon_method']}")
    console.print(f"ledger: {ledger_path} ({len(ledger)} records, head {ledger.head_hash[:16]})")
    s["ledger"] = {"path": str(ledger_path), "records": len(ledger), "head_hash": ledger.head_hash}
    if statements_dir:
        _write_statements(result, signer, Path(statements_dir), Path(key_dir).expanduser())
        console.print(
            f"statements: {len(result.pseudonyms)} encrypted files in {statements_dir}; "
            f"participant keys in {Path(key_dir).expanduser() / 'participant_keys.json'}"
        )
    if json_path:
        Path(json_path).parent.mkdir(parents=True, exist_ok=True)
        Path(json_path).write_text(json.dumps(s, indent=2, default=float))


def _write_statements(result, signer, out: Path, key_dir: Path) -> None:
    """One encrypted statement per participant; the keys go next to the operator key (0600)."""
    import os

    from gridsync.market.run import seal_statement, statement_key

    secret = signer.pseudonym_secret()
    out.mkdir(parents=True, exist_ok=True)
    keys = {}
    for p, name in enumerate(result.pseudonyms):
        key = statement_key(secret, name)
        keys[name] = key.decode()
        (out / f"{name}.json.enc").write_bytes(seal_statement(result.statement(p), key))
    path = key_dir / "participant_keys.json"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(keys, fh, indent=1)


@market.command("statement")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--key", "key", required=True, help="The participant's statement key.")
def statement_cmd(file: str, key: str) -> None:
    """Decrypt and print one participant's statement (their own trades and bill only)."""
    from gridsync.market.run import open_statement

    try:
        st = open_statement(Path(file).read_bytes(), key.encode())
    except ValueError as err:
        raise click.ClickException(str(err)) from None
    click.echo(json.dumps(st, indent=1))


def _fmt(v) -> str:
    if isinstance(v, float):
        return "n/a" if math.isnan(v) else f"{v:,.3f}"
    return str(v)


market.add_command(run, name="simulate")


@market.command("vpp")
@scenario_options
@click.option(
    "--margin", type=click.FloatRange(0), default=0.2, show_default=True, help="Markup on cost."
)
@click.option("--seed", type=int, default=11, show_default=True, help="Seed of the price series.")
def vpp(scenario_path, days, start, json_path, margin, seed):
    """Bid the fleet's flexibility into a balancing market, interval by interval.

    Up/down capacity comes from the batteries' state of charge, the EV sessions' slack and
    the heat pumps' comfort band. Prices are a seeded synthetic balancing series (none ships
    with the scenario). Prints bids, acceptance rate, cash revenue and net value.
    """
    from gridsync.market.vpp import VppConfig, run_vpp

    scenario = load_scenario_or_exit(scenario_path, days, start)
    result = run_vpp(scenario, cfg=VppConfig(margin=margin, seed=seed))
    summary = result.summary(scenario.dt_h)
    for key, value in summary.items():
        click.echo(f"{key:>24}: {_fmt(value) if not isinstance(value, dict) else value}")
    if json_path:
        Path(json_path).parent.mkdir(parents=True, exist_ok=True)
        Path(json_path).write_text(json.dumps(summary, indent=2))
