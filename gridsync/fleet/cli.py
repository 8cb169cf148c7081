"""``gridsync fleet``: run many feeders on Ray (or in-process), list and inspect them."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from gridsync.cli.options import days_option, json_option, scenario_option, start_option


@click.group()
def fleet() -> None:
    """Many feeders at once: twins, forecast, MPC dispatch and safety agents on Ray actors.

    \b
    Every feeder is a varied copy of the scenario (same network, load profiles, weather and
    tariff; its own customers' assets and plant drawn from its seed). One forecast model is
    trained once and broadcast to the workers; each step every feeder observes, re-plans
    hourly (MPC in HiGHS, behind the safety shield) and runs its AC power flow; the
    coordinator turns the feeders' flexibility into one VPP bid and, with
    --substation-limit-kw, shares that import limit among the feeders every hour.
    Plans, telemetry and each feeder's state go to the store (SQLite file or PostgreSQL,
    partitioned per day and feeder); messages to the subject tree
    <prefix>.<feeder>.telemetry|plan|limit and <prefix>.substation.bid (in memory, or one
    NATS JetStream stream). A worker that dies is restarted by Ray and its feeders resume
    from their last stored step.

    \b
    Examples:
      gridsync fleet run --feeders 10                     # 10 feeders, 2 local Ray workers
      gridsync fleet run --feeders 4 --in-process --steps 8 --forecast naive
      gridsync fleet run --feeders 50 --store fleet.sqlite --bus nats://127.0.0.1:4222
      gridsync fleet run --address ray://head:10001 --workers 16 --feeders 500 \\
          --store postgresql://gridsync@db/gridsync
      gridsync fleet feeders --store fleet.sqlite         # list feeders and their state
      gridsync fleet serve --store fleet.sqlite           # the same as a REST API
    """


@fleet.command()
@click.option("--feeders", "n_feeders", type=click.IntRange(1, 100_000), default=10,
              show_default=True, help="Number of feeders (varied copies of the scenario).")  # fmt: skip
@click.option("--workers", type=click.IntRange(1, 4096), default=2, show_default=True,
              help="Ray worker actors (one CPU each); feeder i runs on worker i mod W.")  # fmt: skip
@click.option("--in-process", is_flag=True,
              help="No Ray: step every feeder in this process (the overhead reference).")  # fmt: skip
@click.option("--address", default=None,
              help="Ray cluster address (ray://host:10001 or 'auto'); default: a local Ray.")  # fmt: skip
@scenario_option()
@days_option(default=1, help="Days to run (15-minute steps in the bundled scenario).")
@start_option()
@click.option("--asset-scale", type=click.FloatRange(0, 10, min_open=True), default=1.0,
              show_default=True,
              help="Multiply every asset count of the scenario (0.25: ~100 assets per feeder).")  # fmt: skip
@click.option("--steps", type=click.IntRange(1), default=None,
              help="Stop after this many steps (default: the whole window).")  # fmt: skip
@click.option("--store", "store_url", default=None,
              help="SQLite file or postgresql://... (default: a temporary SQLite file; "
              "in memory with --in-process).")  # fmt: skip
@click.option("--bus", "bus_url", default=None,
              help="nats://host:4222 for NATS JetStream (default: in memory).")  # fmt: skip
@click.option("--bus-prefix", default="gridsync", show_default=True,
              help="First subject token (and stream name prefix).")  # fmt: skip
@click.option("--substation-limit-kw", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Import limit of the substation (kW), shared among the feeders hourly.")  # fmt: skip
@click.option("--forecast", type=click.Choice(["learned", "naive"]), default="learned",
              show_default=True,
              help="Shared forecast model: LightGBM load + learned PV (trained once), or "
              "seasonal-naive.")  # fmt: skip
@click.option("--max-in-flight", type=click.IntRange(1, 64), default=2, show_default=True,
              help="Back-pressure: outstanding feeder steps per worker.")  # fmt: skip
@click.option("--resolve-every", type=click.IntRange(1, 96), default=4, show_default=True,
              help="Re-plan every k steps (4 = hourly at 15 min).")  # fmt: skip
@json_option("Write the run's measurements to this JSON file.")
def run(n_feeders, workers, in_process, address, scenario_path, days, start, asset_scale, steps,
        store_url,
        bus_url, bus_prefix, substation_limit_kw, forecast, max_in_flight, resolve_every,
        json_path) -> None:  # fmt: skip
    """Run the fleet and print throughput and loop times.

    \b
    Output: feeder-steps/s over the run (after set-up), the loop time per feeder step in its
    worker (p50/p99/max: a re-plan step costs an MPC solve, the others a correction and a
    power flow), CPU seconds per feeder step, how the plans ended (optimal / fallback), and
    the last VPP bid (kW up/down per class: battery, EV, heat pump).
    """
    from gridsync.fleet.replicas import ScenarioSource
    from gridsync.fleet.runner import FleetRunConfig, run_fleet

    try:
        cfg = FleetRunConfig(
            n_feeders=n_feeders,
            workers=workers,
            backend="inprocess" if in_process else "ray",
            address=address,
            source=ScenarioSource(
                scenario_path,
                days,
                None if start is None else start.date().isoformat(),
                asset_scale=asset_scale,
            ),
            store_url=store_url,
            bus_url=bus_url,
            bus_prefix=bus_prefix,
            substation_limit_kw=substation_limit_kw,
            forecast=forecast,
            max_in_flight=max_in_flight,
            resolve_every=resolve_every,
            steps=steps,
        )
    except ValueError as err:
        raise click.UsageError(str(err)) from None

    def progress(k, _shards):
        click.echo(f"\rstep {k + 1}/{total}", nl=False, err=True)

    from gridsync.fleet.replicas import ReplicaFactory

    total = steps or ReplicaFactory.for_source(cfg.source).base.n_steps
    result = run_fleet(cfg, on_step=progress)
    click.echo("", err=True)
    s = result.summary()
    if result.first_step:
        click.echo(f"resumed the fleet stored in {result.store_url} at step {result.first_step}")
    click.echo(
        f"{s['n_feeders']} feeders x {s['steps']} steps on {s['workers']} "
        f"{'Ray worker(s)' if cfg.backend == 'ray' else 'process (no Ray)'}: "
        f"{s['feeder_steps_per_s']:.2f} feeder-steps/s over {s['run_s']:.1f} s "
        f"(set-up {s['setup_s']:.1f} s incl. training {s['train_s']:.1f} s)"
    )
    click.echo(
        f"loop per feeder step: p50 {s['loop_p50_s']:.3f} s, p99 {s['loop_p99_s']:.3f} s, "
        f"max {s['loop_max_s']:.3f} s; CPU {s['cpu_per_feeder_step_s']:.3f} s/feeder-step; "
        f"~{s['rss_per_feeder_mb']:.1f} MB/feeder"
    )
    click.echo(f"plans: {s['plan_status']}; messages published: {s['published']}")
    if result.bids:
        b = result.bids[-1]
        click.echo(f"last VPP bid ({b['time']}): up kW {b['up_kw']}, down kW {b['down_kw']}")
    click.echo(f"store: {result.store_url or 'in memory'}")
    if json_path:
        Path(json_path).parent.mkdir(parents=True, exist_ok=True)
        Path(json_path).write_text(json.dumps(s, indent=2), encoding="utf-8")
    sys.stdout.flush()


@fleet.command()
@click.option("--store", "store_url", required=True, help="SQLite file or postgresql://...")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def feeders(store_url: str, as_json: bool) -> None:
    """List the feeders in a fleet store and their latest state."""
    from gridsync.fleet.store import make_fleet_store

    store = make_fleet_store(store_url)
    store.migrate()
    frame = store.feeders()
    if as_json:
        click.echo(frame.to_json(orient="records", indent=1))
    else:
        click.echo(frame.to_string(index=False) if len(frame) else "no feeders stored")


@fleet.command()
@click.option("--store", "store_url", required=True, help="SQLite file or postgresql://...")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=8090, show_default=True)
def serve(store_url: str, host: str, port: int) -> None:
    """Serve the fleet store read-only: GET /api/v1/fleet/feeders[/ID] (viewer tokens from
    GRIDSYNC_API_TOKENS, as the main API)."""
    import uvicorn

    from gridsync.api.fleet import create_fleet_app
    from gridsync.fleet.store import make_fleet_store

    store = make_fleet_store(store_url)
    store.migrate()
    uvicorn.run(create_fleet_app(store), host=host, port=port)
