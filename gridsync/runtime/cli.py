"""``gridsync runtime``: the REST API plus the full agent loop (MQTT bridge, bus, store) in one
process, headless. (``gridsync serve`` is the single live service: the same runtime around the
operator console's twin, see :mod:`gridsync.runtime.service`.)"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import signal
import tempfile
import time
import uuid

import click

from gridsync.api.auth import TokenRegistry, hash_token


def mqtt_credentials() -> tuple[str | None, str | None]:
    """The bridge's broker user and password from GRIDSYNC_MQTT_USERNAME and
    GRIDSYNC_MQTT_PASSWORD (or GRIDSYNC_MQTT_PASSWORD_FILE); never from the command line."""
    user = os.environ.get("GRIDSYNC_MQTT_USERNAME") or None
    password = os.environ.get("GRIDSYNC_MQTT_PASSWORD")
    path = os.environ.get("GRIDSYNC_MQTT_PASSWORD_FILE")
    if password is None and path:
        with open(path, encoding="utf-8") as f:
            password = f.read().strip()
    return user, password


def bridge_client_id(source: str, session_key: str) -> str:
    """A stable MQTT client id for the bridge of one deployment (same twin source and same
    store -> same id after a restart, so the broker resumes the session and redelivers what
    was not acknowledged; two deployments on one broker get different ids).
    A store that dies with the process (``:memory:``) has nothing to resume: a unique id.
    GRIDSYNC_MQTT_CLIENT_ID overrides it."""
    if not session_key or ":memory:" in session_key:
        session_key = uuid.uuid4().hex
    digest = hashlib.sha256(f"{source}|{session_key}".encode()).hexdigest()[:12]
    return os.environ.get("GRIDSYNC_MQTT_CLIENT_ID") or f"gridsync-bridge-{digest}"


def _emitter(runtime, mqtt_url: str | None, source: str, session_key: str = "", client_id=None):
    """Where the demo twin's meters send telemetry: MQTT when a broker answers, otherwise the
    in-process ingestor. Returns (emit, bridge_or_None, publisher_or_None, description).
    The bridge's progress joins ``runtime.ingestion_stages`` (``/health`` watches it)."""
    if mqtt_url:
        from gridsync.data.ingest_mqtt import MqttBridge, MqttTelemetryPublisher, MqttUnavailable

        host, _, port = mqtt_url.partition(":")
        user, password = mqtt_credentials()
        twin_password = os.environ.get("GRIDSYNC_MQTT_TWIN_PASSWORD")
        pub = MqttTelemetryPublisher(
            source,
            host,
            int(port or 1883),
            username=source if twin_password else None,
            password=twin_password,
        )
        bridge = MqttBridge(
            runtime.ingestor,
            host,
            int(port or 1883),
            client_id=client_id or bridge_client_id(source, session_key),
            username=user,
            password=password,
        )
        try:
            pub.connect(timeout_s=2)
        except MqttUnavailable as err:
            click.echo(f"  MQTT: {err}; falling back to the in-process bus")
        else:
            runtime.ingestion_stages.append(bridge.progress)

            async def emit(raw: bytes) -> None:
                pub.publish_raw(raw)

            return emit, bridge, pub, f"MQTT {host}:{port or 1883} -> bridge -> bus"
    return runtime.ingestor.submit, None, None, "in-process ingestion (no broker)"


def _agents(scenario, emit, controller: str, forecaster: str, period_s: float):
    from gridsync.runtime.agents import DispatchAgent, ForecastAgent, SafetyAgent, TwinAgent

    return [
        TwinAgent(scenario, emit, period_s=period_s, wait_for_setpoints_s=min(1.0, period_s / 2)),
        ForecastAgent(scenario, forecaster, period_s=period_s),
        DispatchAgent(scenario, controller, period_s=period_s / 5, hold_s=6 * period_s),
        SafetyAgent(scenario, period_s=period_s / 5, max_plan_age_s=6 * period_s),
    ]


@click.command("runtime")
@click.option(
    "--demo",
    is_flag=True,
    help="Run the digital twin as a live feeder: its smart meters publish telemetry every step.",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address the API listens on.")
@click.option("--port", default=8000, show_default=True, type=int, help="API port.")
@click.option(
    "--bus",
    "bus_url",
    default="inprocess",
    show_default=True,
    help="'inprocess' or nats://host:4222 (JetStream).",
)
@click.option(
    "--store",
    "store_url",
    default=None,
    help="sqlite:///file.db or postgresql://...; default: runtime.db in the per-user data "
    "directory ($GRIDSYNC_DATA_DIR, $XDG_DATA_HOME/gridsync or ~/.local/share/gridsync).",
)
@click.option(
    "--mqtt",
    "mqtt_url",
    default="127.0.0.1:1883",
    show_default=True,
    help="MQTT broker host:port for device telemetry; 'none' to disable.",
)
@click.option(
    "--scenario",
    "scenario_name",
    default="default",
    show_default=True,
    help="Scenario the twin runs (see /api/v1/scenarios).",
)
@click.option(
    "--days",
    default=1,
    show_default=True,
    type=int,
    help="Days of the scenario window the twin loops over.",
)
@click.option(
    "--controller",
    default="tou",
    show_default=True,
    help="Dispatcher (any `gridsync simulate --controller` name).",
)
@click.option("--forecaster", default="naive", show_default=True, help="naive or perfect.")
@click.option(
    "--step-s",
    default=5.0,
    show_default=True,
    type=float,
    help="Seconds per twin step (one 15-min scenario step) and state-buffer step.",
)
@click.option(
    "--duration",
    default=None,
    type=float,
    help="Stop after this many seconds (default: run until Ctrl-C).",
)
@click.option(
    "--hash-token",
    "token_to_hash",
    default=None,
    help="Print the sha256 line for a tokens file and exit.",
)
def serve(token_to_hash, **options) -> None:
    """Headless GridSync service: REST API (OpenAPI docs at /docs) and agents, no console.

    Runs its own twin driven by the dispatch and safety agents (no approvals). For the full
    service with the operator console and one console-stepped twin use `gridsync serve`.

    \b
    Quick look:   gridsync runtime --demo
    It prints the URL and a one-time operator token; then e.g.
      curl -H "Authorization: Bearer <token>" http://127.0.0.1:8000/api/v1/state

    Tokens come from GRIDSYNC_API_TOKENS ("role:token,...") or GRIDSYNC_API_TOKENS_FILE
    (TOML [[token]] entries with name, role, sha256; make the sha256 with --hash-token).
    Roles: operator (read + plans, approvals, scenarios), viewer (read), device (telemetry).
    """
    if token_to_hash:
        click.echo(
            f'[[token]]\nname = "CHANGE-ME"\nrole = "viewer"\nsha256 = "{hash_token(token_to_hash)}"'
        )
        return
    asyncio.run(_serve(**options))


async def _serve(
    demo,
    host,
    port,
    bus_url,
    store_url,
    mqtt_url,
    scenario_name,
    days,
    controller,
    forecaster,
    step_s,
    duration,
) -> None:
    import uvicorn

    from gridsync.api.app import create_app
    from gridsync.bus import make_bus
    from gridsync.runtime.runtime import Runtime
    from gridsync.runtime.scenarios import ScenarioCatalog
    from gridsync.runtime.twin import setpoint_sizes
    from gridsync.sim.builder import load_scenario
    from gridsync.store import default_store_url, make_store

    tokens = TokenRegistry.from_env()
    store_url = store_url or default_store_url("runtime")
    catalog = ScenarioCatalog(
        upload_dir=os.path.join(tempfile.gettempdir(), "gridsync-scenarios"), current=scenario_name
    )
    mqtt = None if mqtt_url.lower() == "none" else mqtt_url
    parts: dict = {}

    async def build(rt: Runtime, name: str, n_days: int | None) -> None:
        t0 = time.perf_counter()
        click.echo(f"  building scenario {name!r} ({n_days or days} day(s)) ...")
        sc = await asyncio.to_thread(
            load_scenario, catalog.path(name), days=n_days or days, history_days=7
        )
        await rt.supervisor.stop()
        rt.fleet_sizes = setpoint_sizes(sc.fleet)
        for a in _agents(sc, parts["emit"], controller, forecaster, step_s):
            rt.supervisor.start(a)
        rt.state.scenario = {
            "name": name,
            "title": sc.config.name,
            "days": n_days or days,
            "buses": sc.feeder.n_bus,
            "assets": sc.fleet.size,
        }
        click.echo(
            f"  scenario ready in {time.perf_counter() - t0:.1f} s: {sc.feeder.n_bus} buses, {sc.fleet.size} assets"
        )

    rt = Runtime(
        make_bus(bus_url),
        make_store(store_url),
        step_s=step_s,
        catalog=catalog,
        on_scenario_change=build if demo else None,
    )
    click.echo(f"GridSync runtime: bus={rt.bus.kind} store={store_url}")
    await rt.start()
    emit, bridge, pub, how = _emitter(rt, mqtt, "twin", session_key=store_url)
    parts["emit"] = emit
    if bridge is not None:
        await bridge.start()
        click.echo(f"  MQTT bridge listening on {bridge.topic}")
    if demo:
        click.echo(f"  demo twin telemetry: {how}")
        await build(rt, scenario_name, days)
        op = tokens.issue("demo-operator", "operator")
        viewer = tokens.issue("demo-viewer", "viewer")
        click.echo(
            f"\n  API:   http://{host}:{port}/docs\n  operator token: {op}\n  viewer token:   {viewer}\n"
        )
    elif len(tokens) == 0:
        click.echo(
            "  warning: no API tokens configured (set GRIDSYNC_API_TOKENS); every call will get 401"
        )
    app = create_app(rt, tokens=tokens, manage_runtime=False)
    server = _server(uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="on"))
    click.echo(f"serving on http://{host}:{port} (Ctrl-C to stop)", err=False)
    task = asyncio.create_task(server.serve())
    try:
        if duration is not None:
            await asyncio.wait({task}, timeout=duration)
            server.should_exit = True
        await task
    finally:
        if bridge is not None:
            await bridge.stop()
        if pub is not None:
            pub.close()
        with contextlib.suppress(Exception):
            await rt.stop()
        rt.store.close()
        click.echo("stopped")


def _server(config):
    """A uvicorn server that stops on SIGTERM as on SIGINT and returns, instead of re-raising
    the signal after its own shutdown (which kills the process before the bridge, the bus
    and the store are closed)."""
    import uvicorn

    class Server(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self):
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, self.handle_exit, sig, None)
            try:
                yield
            finally:
                for sig in (signal.SIGTERM, signal.SIGINT):
                    loop.remove_signal_handler(sig)

    return Server(config)


@click.command("bridge")
@click.option(
    "--mqtt", "mqtt_url", default="127.0.0.1:1883", show_default=True, help="Broker host:port."
)
@click.option(
    "--bus",
    "bus_url",
    default="nats://127.0.0.1:4222",
    show_default=True,
    help="NATS JetStream URL the validated telemetry goes to.",
)
@click.option(
    "--client-id",
    default="gridsync-bridge",
    show_default=True,
    help="MQTT client id (a persistent session: keep it stable across restarts).",
)
@click.option(
    "--session-expiry-s",
    default=86_400,
    show_default=True,
    type=click.IntRange(0, 2**32 - 1),
    help="How long the broker keeps the session (and queues telemetry) while the bridge is down.",
)
@click.option(
    "--max-attempts",
    default=5,
    show_default=True,
    type=click.IntRange(1, 1000),
    help="Forwarding attempts per message before it is dead-lettered.",
)
@click.option(
    "--prefix", default="gridsync", show_default=True, help="NATS stream prefix (namespace)."
)
@click.option(
    "--topic-root",
    default="gridsync/telemetry",
    show_default=True,
    help="MQTT topic root; the bridge subscribes to <root>/#.",
)
@click.option("--duration", default=None, type=float, help="Stop after this many seconds.")
def bridge(**options) -> None:
    """MQTT ingestion bridge in its own process: broker -> validation -> NATS JetStream.

    Parsing and validation then use one core while `gridsync serve --bus <same URL> --mqtt
    none` (agents, store sink, API) uses the other. Messages are acknowledged to the broker
    only once JetStream has them, so either process can restart without losing telemetry.
    SIGTERM and SIGINT stop it cleanly: the window being forwarded is finished, the rest is
    left unacknowledged for the next run (same --client-id) to receive. Broker credentials
    come from GRIDSYNC_MQTT_USERNAME and GRIDSYNC_MQTT_PASSWORD (or _PASSWORD_FILE).
    """
    asyncio.run(_bridge(**options))


async def _bridge(
    mqtt_url, bus_url, client_id, session_expiry_s, max_attempts, prefix, topic_root, duration
) -> None:
    from gridsync.bus import make_bus
    from gridsync.data.ingest import Ingestor
    from gridsync.data.ingest_mqtt import MqttBridge

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    bus = make_bus(bus_url, prefix=prefix)
    await bus.connect()
    ingestor = Ingestor(bus)
    host, _, port = mqtt_url.partition(":")
    user, password = mqtt_credentials()
    br = MqttBridge(
        ingestor,
        host,
        int(port or 1883),
        topic_root=topic_root,
        client_id=client_id,
        username=user,
        password=password,
        session_expiry_s=session_expiry_s,
        max_attempts=max_attempts,
    )
    await br.start()
    click.echo(
        f"bridge: MQTT {host}:{port or 1883} {br.topic} -> {bus_url}"
        f" (client id {client_id}, session {'resumed' if br.sessions_resumed else 'new'})"
    )
    try:
        await asyncio.wait_for(stop.wait(), duration)
    except TimeoutError:
        pass
    finally:
        await br.stop()
        await bus.close()
        click.echo(
            f"bridge: {ingestor.accepted} messages ({ingestor.readings} readings) accepted,"
            f" {ingestor.rejected} rejected, {ingestor.rejected_rows} rows rejected"
        )
