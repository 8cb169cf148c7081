"""Put the operator console on an API app: scenario, live session, users, policy.

``attach_console(app, ...)`` is what ``gridsync serve`` calls; it uses the app's runtime store
(``app.state.runtime.store``) as the audit log when there is one. In demo mode the twin starts
on a sunny morning of the bundled feeder (2016-06-10, 10:00), when rooftop PV pushes voltages
over 1.05 p.u., so an over-voltage curtailment request appears within the first steps; the
three demo accounts (:data:`gridsync.web.auth.DEMO_USERS`) share :data:`DEMO_PASSWORD`.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import threading
from pathlib import Path

import numpy as np
from fastapi import FastAPI

from gridsync.hitl.policy import ApprovalPolicy
from gridsync.hitl.session import ConsoleSession
from gridsync.web.auth import DEMO_PASSWORD, DEMO_USERS, SessionSigner, UserStore
from gridsync.web.console import PREFIX, Console, mount_console

log = logging.getLogger(__name__)

DEMO_START = dt.date(2016, 6, 10)
DEMO_START_HOUR = 10.0
DEMO_IMPORT_LIMIT_KW = 400.0


def first_step_at(scenario, hour: float) -> int:
    """First simulated step at or after ``hour`` o'clock on the window's first day."""
    w = scenario.window
    hours = np.asarray(w.hour + w.minute / 60)
    later = np.flatnonzero(hours >= hour)
    return scenario.start_step + (int(later[0]) if len(later) else 0)


class AnomalyFit:
    """The console's anomaly monitor, fitted in a background thread (tens of seconds: it
    re-runs the days before the twin) and attached to ``session`` when ready; the twin does
    not wait for it. ``cancel`` stops the fit between its steps, so a shutdown never leaves
    a fit running while the interpreter exits."""

    def __init__(self, session, scenario_path, start: int | None) -> None:
        self.session, self.scenario_path, self.start_step = session, scenario_path, start
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._fit, name="anomaly-fit", daemon=True)

    def start(self) -> AnomalyFit:
        self.thread.start()
        return self

    def _fit(self) -> None:
        from gridsync.safety.config import FitCancelled
        from gridsync.safety.console_feed import TwinTelemetryFeed, fit_on_history

        sc, stop = self.session.scenario, self.stop
        first = sc.start_step if self.start_step is None else self.start_step
        try:
            cal = fit_on_history(self.scenario_path, sc, first, stop=stop)
            feed = TwinTelemetryFeed(sc, first, cal, stop=stop)
        except FitCancelled:
            log.info("anomaly monitor fit cancelled")
            return
        except Exception as err:  # the console runs on without it, and says why
            log.exception("anomaly monitor not started")
            self.session.alert("warning", "anomaly", f"anomaly monitor off: {err}")
            return
        if not stop.is_set():
            self.session.attach_anomaly_feed(feed)

    def cancel(self, timeout_s: float = 30.0) -> bool:
        """Stop the fit and wait for its thread; True when it has ended."""
        self.stop.set()
        if self.thread.is_alive():
            self.thread.join(timeout_s)
        return not self.thread.is_alive()


def attach_console(
    app: FastAPI,
    *,
    demo: bool = False,
    scenario_path: str | Path | None = None,
    days: int | None = None,
    controller: str = "tou",
    step_interval_s: float | None = None,
    timeout_s: float | None = None,
    policy: ApprovalPolicy | None = None,
    users: UserStore | None = None,
    session_ttl_s: float = 3600.0,
    anomaly_monitor: bool = False,
    resilience: bool = False,
) -> Console:
    """Build the live console session and mount it on ``app`` under ``/console``.

    Users come from the environment (:meth:`UserStore.from_env`) plus, with ``demo``, the
    demo accounts. Without any user the console refuses to start (nobody could log in).
    ``GRIDSYNC_CONSOLE_STEP_S`` (seconds per twin step, default 2) and
    ``GRIDSYNC_CONSOLE_TIMEOUT_S`` (approval timeout) apply when the arguments are None;
    ``GRIDSYNC_CONSOLE_CONTROLLER`` replaces ``controller``. ``anomaly_monitor`` fits the
    anomaly monitor on the history before the first step in the background
    (``Console.anomaly_fit``; cancel it on shutdown) and raises its alarms on the twin's
    device readings as console alerts. ``resilience`` runs the CIGRE MV
    FLISR study feeder with the twin: fault drills and the daily outage-risk map
    (:mod:`gridsync.web.resilience`).
    """
    from gridsync.sim.builder import load_scenario
    from gridsync.sim.registry import make_controller

    env = os.environ
    if step_interval_s is None:
        step_interval_s = float(env.get("GRIDSYNC_CONSOLE_STEP_S", 2.0))
    if timeout_s is None and env.get("GRIDSYNC_CONSOLE_TIMEOUT_S"):
        timeout_s = float(env["GRIDSYNC_CONSOLE_TIMEOUT_S"])
    controller = env.get("GRIDSYNC_CONSOLE_CONTROLLER", controller)
    users = users if users is not None else UserStore.from_env()
    if demo:
        users.add_demo_users()
    if len(users) == 0:
        msg = (
            "no console users: set GRIDSYNC_CONSOLE_USERS_FILE or GRIDSYNC_CONSOLE_USERS "
            "(hash passwords with `gridsync console-user`), or run with --demo"
        )
        raise ValueError(msg)
    overrides: dict = {}
    if demo:
        overrides = {"start": DEMO_START, "days": days or 3, "history_days": 14}
    elif days:
        overrides = {"days": days}
    scenario = load_scenario(scenario_path, **overrides)
    if policy is None:
        policy = ApprovalPolicy(feeder_import_limit_kw=DEMO_IMPORT_LIMIT_KW if demo else None)
    if timeout_s is not None:
        policy.timeout_s = timeout_s
    runtime = getattr(app.state, "runtime", None)
    store = getattr(runtime, "store", None)
    start = first_step_at(scenario, DEMO_START_HOUR) if demo else None
    session = ConsoleSession(
        scenario,
        make_controller(controller),
        policy,
        audit=store,
        start_step=start,
        overrides_store=store,
    )
    con = mount_console(
        app,
        session,
        users,
        signer=SessionSigner(ttl_s=session_ttl_s),
        step_interval_s=step_interval_s,
        demo=demo,
    )
    if resilience:
        from gridsync.web.resilience import attach_drill

        attach_drill(con)
    if anomaly_monitor:
        con.anomaly_fit = AnomalyFit(session, scenario_path, start).start()
    return con


def banner(host: str, port: int, demo: bool) -> str:
    """What ``gridsync serve`` prints about the console."""
    url = f"http://{host}:{port}{PREFIX}/"
    lines = [f"Operator console: {url}"]
    if demo:
        accounts = ", ".join(f"{name} ({role})" for name, role in DEMO_USERS.items())
        lines.append(f"Demo login: {accounts}; password: {DEMO_PASSWORD}")
    return "\n".join(lines)
