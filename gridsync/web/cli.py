"""``gridsync console-user``: make a console account entry (the password is never stored)."""

from __future__ import annotations

import asyncio
import contextlib

import click

from gridsync.web.auth import ROLES, hash_password


@click.command("console-user")
@click.argument("name")
@click.option(
    "--role",
    type=click.Choice(ROLES),
    default="viewer",
    show_default=True,
    help="viewer reads; operator also approves and overrides; admin also edits the policy "
    "and reads the audit log.",
)
@click.password_option(help="Prompted for (twice) when not given.")
def console_user(name: str, role: str, password: str) -> None:
    """Print a [[user]] entry for the operator console's users file.

    Append the output to the TOML file named by GRIDSYNC_CONSOLE_USERS_FILE; `gridsync serve`
    reads it at start-up. Only the scrypt hash is printed, never the password.

    Example: gridsync console-user alice --role operator >> console-users.toml
    """
    if len(password) < 8:
        raise click.BadParameter(
            f"at least 8 characters required, got {len(password)}", param_hint="password"
        )
    click.echo(f'[[user]]\nname = "{name}"\nrole = "{role}"\nscrypt = "{hash_password(password)}"')


@click.command("serve")
@click.option(
    "--demo",
    is_flag=True,
    help="Demo accounts and API tokens, a sunny morning on the bundled feeder.",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535))
@click.option(
    "--scenario",
    "scenario_path",
    type=click.Path(exists=True, dir_okay=False),
    help="Scenario TOML/YAML (default: the bundled one).",
)
@click.option("--days", type=click.IntRange(1, 366), help="Simulated days (demo: 3).")
@click.option(
    "--controller",
    default="tou",
    show_default=True,
    help="Dispatcher proposing the setpoints (see `gridsync simulate --help`); 'mpc' solves "
    "a 24 h LP every step, so give it a longer --step-seconds.",
)
@click.option(
    "--step-seconds",
    type=click.FloatRange(min=0.05),
    default=None,
    help="Wall-clock seconds per 15-minute twin step [default: 2, or GRIDSYNC_CONSOLE_STEP_S].",
)
@click.option(
    "--approval-timeout",
    type=click.FloatRange(min=0.5),
    default=None,
    help="Seconds an operator has before the fail-safe applies [default: 30, or "
    "GRIDSYNC_CONSOLE_TIMEOUT_S].",
)
@click.option(
    "--bus",
    "bus_url",
    default="inprocess",
    show_default=True,
    help="Runtime message bus: 'inprocess' or nats://host:4222 (JetStream).",
)
@click.option(
    "--store",
    "store_url",
    default=None,
    help="History store: sqlite:///file.db or postgresql://...; default: serve.db in the "
    "per-user data directory ($GRIDSYNC_DATA_DIR, $XDG_DATA_HOME/gridsync or "
    "~/.local/share/gridsync), kept across restarts.",
)
@click.option(
    "--mqtt",
    "mqtt_url",
    default="127.0.0.1:1883",
    show_default=True,
    help="MQTT broker host:port: the twin's meters publish there and the bridge ingests them "
    "(falls back to the in-process bus when no broker answers); 'none' to skip MQTT.",
)
@click.option(
    "--forecaster", default="naive", show_default=True, help="Forecast agent: naive or perfect."
)
@click.option(
    "--devices",
    default="",
    help="Run the twin's devices as simulated field devices on loopback and talk to them over "
    "real protocols: 'ocpp' (EV chargers, OCPP 2.0.1), 'modbus' (PV and battery inverters, "
    "SunSpec over Modbus TCP) or 'ocpp,modbus'. Default: the embedded path.",
)
@click.option(
    "--anomaly-monitor/--no-anomaly-monitor",
    default=False,
    show_default=True,
    help="Watch the twin's device readings (SCADA, PMUs, meters one interval late) with the "
    "anomaly monitor, fitted in the background on the 10 days before the first step (tens of "
    "seconds); alarms become console alerts naming the suspect measurements.",
)
@click.option(
    "--resilience/--no-resilience",
    default=False,
    show_default=True,
    help="Also run the CIGRE MV FLISR study feeder (sectionalisers, normally open ties) with the "
    "twin: operators can inject a drill fault, approve the restoration plan and watch it "
    "applied; the console shows the feeder's daily outage-risk map.",
)
def serve(
    demo: bool,
    host: str,
    port: int,
    scenario_path: str | None,
    days: int | None,
    controller: str,
    step_seconds: float | None,
    approval_timeout: float | None,
    bus_url: str,
    store_url: str | None,
    mqtt_url: str,
    forecaster: str,
    devices: str,
    anomaly_monitor: bool,
    resilience: bool,
) -> None:
    """Serve GridSync live: REST API (/docs), operator console (/console/) and the runtime.

    One digital twin runs, stepped by the console: the controller proposes setpoints, large
    actions wait for an operator's approval (with a justification), overrides apply, the
    safety shield checks everything, and the dashboard updates over Server-Sent Events.
    Every step is also published on the runtime bus: meter telemetry (over MQTT and back in
    through the validating bridge when a broker answers), the plan, the applied setpoints,
    alerts and approvals. So /api/v1/state, the history endpoints and the store show the
    same twin, and an approval can be decided in the browser or with
    POST /api/v1/approvals {"plan_id": <request id>, "decision": "approve"|"reject"}.
    The forecast agent runs under the runtime supervisor. (`gridsync runtime` is the
    headless variant: its own twin with dispatch and safety agents, no console.)

    \b
    Accounts: GRIDSYNC_CONSOLE_USERS_FILE (see `gridsync console-user`); API tokens:
    GRIDSYNC_API_TOKENS(_FILE). With --demo, demo accounts and demo operator/viewer tokens
    are created and printed; nothing else is changed.

    Example: gridsync serve --demo   then open the printed URL.
    With --devices ocpp,modbus the twin's chargers and inverters become simulated devices and
    every step goes twin -> devices -> OCPP/Modbus -> GridSync -> setpoints -> OCPP/Modbus ->
    devices -> twin (see gridsync.devices.loop).
    """
    protocols: tuple[str, ...] = ()
    if devices:
        from gridsync.devices.loop import parse_protocols

        try:
            protocols = parse_protocols(devices)
        except ValueError as err:
            raise click.BadParameter(str(err), param_hint="--devices") from err
    asyncio.run(
        _serve(
            demo,
            host,
            port,
            dict(
                demo=demo,
                scenario_path=scenario_path,
                days=days,
                controller=controller,
                step_interval_s=step_seconds,
                approval_timeout_s=approval_timeout,
                bus_url=bus_url,
                store_url=store_url,
                mqtt_url=None if mqtt_url.lower() == "none" else mqtt_url,
                forecaster=forecaster,
                devices=protocols,
                anomaly_monitor=anomaly_monitor,
                resilience=resilience,
            ),
        )
    )


async def _serve(demo: bool, host: str, port: int, options: dict) -> None:
    import signal

    import uvicorn

    from gridsync.api.auth import TokenRegistry
    from gridsync.runtime.service import start_service, stop_service
    from gridsync.web.server import banner

    # SIGTERM must stop as cleanly as Ctrl+C: uvicorn's own handlers re-raise the signal
    # after its shutdown, which killed the process (exit 143) before stop_service ran.
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    server: uvicorn.Server | None = None

    def on_signal() -> None:
        if server is not None:
            server.force_exit = stopping.is_set()  # a second signal skips waiting for clients
            server.should_exit = True
        stopping.set()

    handled = (signal.SIGINT, signal.SIGTERM)
    for sig in handled:
        loop.add_signal_handler(sig, on_signal)
    tokens = TokenRegistry.from_env()
    click.echo("Building the scenario and the twin (takes a few seconds)...")
    try:
        try:
            svc = await start_service(tokens=tokens, **options)
        except ValueError as err:
            raise click.ClickException(str(err)) from err
        try:
            con, rt = svc.console, svc.runtime
            click.echo(
                f"Twin: one 15-minute step every {con.step_interval_s:g} s; approval timeout "
                f"{con.session.policy.timeout_s:g} s."
            )
            click.echo(
                f"Runtime: bus={rt.bus.kind} store={svc.store_url}; twin telemetry: "
                f"{svc.telemetry_path}; agents: {', '.join(rt.state.agents) or 'none'}"
            )
            if svc.devices is not None:
                click.echo(f"Devices: {svc.devices.describe()}")
            click.echo(banner(host, port, demo))
            click.echo(f"REST API: http://{host}:{port}/docs")
            if demo:
                click.echo(
                    f"Demo API token (operator): {tokens.issue('demo-operator', 'operator')}"
                )
                click.echo(f"Demo API token (viewer): {tokens.issue('demo-viewer', 'viewer')}")
                click.echo(
                    "The twin starts when the first browser connects. Ctrl+C stops the server."
                )
            elif len(tokens) == 0:
                click.echo(
                    "Warning: no API tokens configured (GRIDSYNC_API_TOKENS); the API gives 401."
                )
            server = uvicorn.Server(
                uvicorn.Config(svc.app, host=host, port=port, log_level="warning")
            )
            server.capture_signals = contextlib.nullcontext  # keep the handlers above
            if not stopping.is_set():
                click.echo(f"Serving on http://{host}:{port}")
                await server.serve()
        finally:
            failed = await stop_service(svc)
            click.echo(
                f"stopped ({', '.join(failed)} did not stop cleanly)" if failed else "stopped"
            )
    finally:
        for sig in handled:
            loop.remove_signal_handler(sig)
