"""The single live service behind ``gridsync serve``: API + console twin + runtime services.

:func:`start_service` builds and starts, in this order: the runtime (bus, store sink, 5-s state
buffer), the MQTT bridge when a broker answers, the REST API app, the operator console with
its live twin (:func:`gridsync.web.server.attach_console`), the :class:`ConsoleLink` that
publishes every twin step on the bus, and the forecast agent under the runtime supervisor.
The twin, dispatch and safety agents of ``gridsync runtime`` are deliberately not started:
the console session already dispatches, asks for approvals and shields, and one twin only.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from dataclasses import dataclass
from typing import Any

from gridsync.api.auth import TokenRegistry
from gridsync.runtime.console_link import ConsoleLink
from gridsync.runtime.runtime import Runtime

log = logging.getLogger(__name__)


@dataclass
class Service:
    """Everything :func:`start_service` started; ``await stop_service(svc)`` undoes it."""

    runtime: Runtime
    app: Any
    console: Any
    link: ConsoleLink
    store_url: str
    telemetry_path: str
    bridge: Any = None
    publisher: Any = None
    devices: Any = None  # gridsync.devices.loop.DeviceBridge with --devices


async def start_service(
    *,
    tokens: TokenRegistry,
    demo: bool = False,
    scenario_path: str | None = None,
    days: int | None = None,
    controller: str = "tou",
    step_interval_s: float | None = None,
    approval_timeout_s: float | None = None,
    bus_url: str = "inprocess",
    store_url: str | None = None,
    mqtt_url: str | None = "127.0.0.1:1883",
    forecaster: str = "naive",
    anomaly_monitor: bool = False,
    resilience: bool = False,
    buffer_step_s: float = 5.0,
    bus_options: dict[str, Any] | None = None,
    store_options: dict[str, Any] | None = None,
    devices: tuple[str, ...] = (),
) -> Service:
    """Start the runtime around a console session (see the module docstring).

    Raises ``ValueError`` with a readable message for bad console settings (no users,
    unknown controller); MQTT being unreachable is not an error: telemetry then goes through
    the in-process ingestor and ``notes`` says so. Without ``store_url`` history goes to
    ``serve.db`` in the per-user data directory (:func:`gridsync.store.data_dir`), so it
    survives restarts. ``bus_options``/``store_options`` go to ``make_bus``/``make_store``
    (e.g. a NATS ``prefix`` or a PostgreSQL ``schema``). ``devices`` (``("ocpp", "modbus")``
    or a part) puts the console twin's chargers and inverters behind simulated devices and
    real protocols on loopback (:mod:`gridsync.devices.loop`); their readings enter the
    runtime's ingestion path, their alerts its bus, every command its store's audit log.
    ``anomaly_monitor`` watches the twin's device readings, ``resilience`` adds the FLISR
    drill feeder and the risk map (see ``attach_console``).
    """
    from gridsync.api.app import create_app
    from gridsync.bus import make_bus
    from gridsync.runtime.agents import ForecastAgent
    from gridsync.runtime.cli import _emitter
    from gridsync.runtime.twin import setpoint_sizes
    from gridsync.store import default_store_url, make_store
    from gridsync.web.server import attach_console

    store_url = store_url or default_store_url("serve")
    rt = Runtime(
        make_bus(bus_url, **(bus_options or {})),
        make_store(store_url, **(store_options or {})),
        step_s=buffer_step_s,
        on_scenario_change=_scenario_needs_restart,
    )
    await rt.start()
    try:
        emit, bridge, pub, how = _emitter(rt, mqtt_url, "console-twin", session_key=store_url)
        if bridge is not None:
            await bridge.start()
        app = create_app(rt, tokens=tokens, manage_runtime=False)
        con = await asyncio.to_thread(
            attach_console,
            app,
            demo=demo,
            scenario_path=scenario_path,
            days=days,
            controller=controller,
            step_interval_s=step_interval_s,
            timeout_s=approval_timeout_s,
            anomaly_monitor=anomaly_monitor,
            resilience=resilience,
        )
    except BaseException:
        await rt.stop()
        rt.store.close()
        raise
    sc = con.session.scenario
    rt.fleet_sizes = setpoint_sizes(sc.fleet)
    name = os.environ.get("GRIDSYNC_CONSOLE_CONTROLLER", controller)  # as attach_console reads it
    devices_bridge = None
    if devices:
        try:
            devices_bridge = await _start_devices(rt, con.session, devices)
        except BaseException:
            await rt.stop()
            rt.store.close()
            raise
    link = ConsoleLink(rt, con.session, emit, controller_name=name)
    await link.attach()
    rt.supervisor.start(ForecastAgent(sc, forecaster, period_s=max(con.step_interval_s / 2, 0.1)))
    rt.state.scenario = {
        "name": os.path.basename(scenario_path) if scenario_path else "default",
        "title": sc.config.name,
        "days": int(sc.n_steps * sc.dt_h / 24),
        "buses": sc.feeder.n_bus,
        "assets": sc.fleet.size,
        "twin": "console",
    }
    return Service(rt, app, con, link, store_url, how, bridge, pub, devices_bridge)


async def _start_devices(rt: Runtime, session, protocols: tuple[str, ...]):
    """Simulated devices for the console twin's fleet, GridSync's protocol side, and the twin
    wrapped so each step goes through them (steps run in a worker thread; the sockets live on
    this event loop)."""
    from gridsync.devices.loop import DeviceBridge, ProtocolTwin

    async def alert(body: dict[str, Any]) -> None:
        await rt.bus.publish("alerts", body)

    bridge = DeviceBridge(
        session.scenario, protocols, ingest=rt.ingestor.submit, alert=alert, store=rt.store
    )
    try:
        await bridge.start()
    except BaseException:
        await bridge.stop()
        raise
    session.twin = ProtocolTwin(session.twin, bridge, asyncio.get_running_loop())
    return bridge


async def _scenario_needs_restart(rt: Runtime, name: str, days: int | None) -> None:
    """``POST /api/v1/scenarios/select`` under ``gridsync serve``: the console twin is built once
    at start-up, so say (as an alert) that the selection applies on the next start."""
    await rt.bus.publish(
        "alerts",
        {
            "kind": "scenario",
            "severity": "warning",
            "source": "serve",
            "message": f"scenario {name!r} selected; the console twin keeps running its current "
            f"scenario: restart `gridsync serve --scenario <file>` to switch",
            "ts_s": time.time(),
        },
    )


async def stop_service(svc: Service, part_timeout_s: float = 15.0) -> list[str]:
    """Stop the link, the bridge and the runtime, and close the store (safe to call from a
    ``finally``).

    Each part gets ``part_timeout_s``; a part that fails or hangs is logged and skipped so
    the rest still stop. Returns the names of the parts that did not stop cleanly.
    """
    parts: list[tuple[str, Any]] = [("console link", svc.link.detach)]
    fit = getattr(svc.console, "anomaly_fit", None)
    if fit is not None:  # a fit still running would outlive the event loop
        parts.insert(0, ("anomaly monitor fit", _cancel_fit(fit, part_timeout_s)))
    if svc.devices is not None:
        parts.append(("devices", svc.devices.stop))
    if svc.bridge is not None:
        parts.append(("MQTT bridge", svc.bridge.stop))
    if svc.publisher is not None:
        parts.append(("MQTT demo publisher", _as_coroutine(svc.publisher.close)))
    parts.append(("runtime", svc.runtime.stop))
    failed = []
    for name, stop in parts:
        try:
            await asyncio.wait_for(stop(), part_timeout_s)
        except Exception as err:  # shutdown goes on whatever one part raised
            kind = "timed out" if isinstance(err, TimeoutError) else repr(err)
            log.warning("stopping the %s failed (%s); stopping the rest", name, kind)
            failed.append(name)
    svc.runtime.store.close()
    return failed


def _cancel_fit(fit, timeout_s: float):
    async def run():
        if not await asyncio.to_thread(fit.cancel, timeout_s):
            raise TimeoutError

    return run


def _as_coroutine(fn):
    async def run():
        fn()

    return run
