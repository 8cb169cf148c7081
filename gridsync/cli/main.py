"""The ``gridsync`` command line. Sub-commands load lazily so ``--help`` stays fast."""

from __future__ import annotations

import logging
from importlib import import_module

import click

# name -> (module:attribute, one-line help). Agents add their commands here.
COMMANDS: dict[str, tuple[str, str]] = {
    "dr": (
        "gridsync.dr.cli:dr",
        "Demand response: plan events, simulate customers' response, verify delivery.",
    ),
    "console-user": (
        "gridsync.web.cli:console_user",
        "Hash a password into a user entry for the operator console.",
    ),
    "serve": (
        "gridsync.web.cli:serve",
        "Serve the REST API and the live operator console (--demo to try it).",
    ),
    "runtime": (
        "gridsync.runtime.cli:serve",
        "Run the live service: MQTT ingestion, bus, store, agents and REST API (--demo).",
    ),
    "bridge": (
        "gridsync.runtime.cli:bridge",
        "MQTT ingestion bridge in its own process: validate telemetry into NATS JetStream.",
    ),
    "simulate": (
        "gridsync.cli.simulate:simulate",
        "Run controllers on the digital twin and compare KPIs.",
    ),
    "forecast": (
        "gridsync.forecast.cli:forecast",
        "Backtest load forecasters on any CSV; issue the forecasts the dispatch uses.",
    ),
    "ledger": (
        "gridsync.ledger.cli:ledger",
        "Create keys for and verify the tamper-evident market ledger.",
    ),
    "market": (
        "gridsync.market.cli:market",
        "Peer-to-peer energy market, settlement, credits, carbon and VPP bids.",
    ),
    "resilience": (
        "gridsync.resilience.cli:resilience",
        "Reliability indices (RBTS-validated), outage risk, FLISR and microgrid islanding.",
    ),
    "citylearn": (
        "gridsync.citylearn.cli:citylearn",
        "Run GridSync's controllers on a CityLearn dataset; CityLearn's KPIs and actions CSV.",
    ),
    "learn": (
        "gridsync.learning.cli:learn",
        "Multi-agent RL on the twin: train (cloning + PPO, shield in the loop), evaluate, list.",
    ),
    "fleet": (
        "gridsync.fleet.cli:fleet",
        "Many feeders on Ray: twins, MPC and safety agents, one VPP bid, a substation limit.",
    ),
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        module, _, attr = COMMANDS[name][0].partition(":")
        return getattr(import_module(module), attr)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, COMMANDS[name][1]) for name in sorted(COMMANDS)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup)
@click.option("-v", "--verbose", count=True, help="More log output (-v info, -vv debug).")
@click.version_option(package_name="gridsync")
def cli(verbose: int) -> None:
    """GridSync: load balancing and demand response on a distribution-grid digital twin.

    Start with `gridsync simulate` (the bundled SimBench feeder, one summer week, the
    uncontrolled and time-of-use baselines; add `--controller mpc+shield` for the optimizer),
    then open the HTML report it writes. `gridsync serve --demo` runs the live service with
    the operator console.
    """
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
