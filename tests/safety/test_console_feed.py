"""The anomaly monitor inside the operator console: clean twin readings raise no alarm, and
a false reading injected into the live feed is alerted, naming that measurement."""

from __future__ import annotations

import numpy as np
import pytest

from gridsync.grid.estimation import VM


@pytest.fixture(scope="module")
def console():
    from gridsync.hitl.session import ConsoleSession
    from gridsync.safety.console_feed import TwinTelemetryFeed, fit_on_history
    from gridsync.sim.builder import load_scenario
    from gridsync.sim.registry import make_controller

    sc = load_scenario(days=1, history_days=14)
    session = ConsoleSession(sc, make_controller("uncontrolled"), shield=None)
    for _ in range(4):  # the twin runs on while the monitor is fitted (as `serve` does it)
        session.step()
    feed = TwinTelemetryFeed(sc, sc.start_step, fit_on_history(None, sc, sc.start_step))
    session.attach_anomaly_feed(feed)  # replays the four steps it missed
    return session


def anomaly_alerts(session):
    return [a for a in session.alerts if a["source"] == "anomaly" and "evidence" in a]


def test_clean_readings_then_a_false_meter_voltage_is_named(console):
    feed = console.anomaly_feed
    assert "anomaly monitor on" in console.alerts[0]["message"]
    assert np.isfinite(feed.noisy[console.scenario.start_step + 3]).any()  # replayed
    for _ in range(12):
        console.step()
    # a per-step budget of 2e-4 makes any alarm on 12 clean steps a < 0.3 % event
    assert anomaly_alerts(console) == []

    plan = feed.plan
    row = int(np.flatnonzero((plan.kind == VM) & (plan.source == "meter"))[5])
    assert plan.latency[row] == 1  # smart meters report one interval late
    target = console.twin.step + 2
    feed.inject(row, 0.04, target)  # +4 % on one meter's |V| for one instant
    for _ in range(5):
        console.step()
    alerts = anomaly_alerts(console)
    assert len(alerts) == 1
    a = alerts[0]
    assert a["step"] == target and a["raised_step"] == target + 1
    assert a["suspects"][0]["measurement"] == feed.labels[row]
    assert feed.labels[row] in a["message"]
    assert {"detector", "score", "threshold"} <= set(a["evidence"][0])


def test_feed_refuses_short_history_and_bad_rows(console):
    from gridsync.safety.console_feed import TwinTelemetryFeed, fit_on_history

    sc, feed = console.scenario, console.anomaly_feed
    with pytest.raises(ValueError, match="raise time.history_days"):
        fit_on_history(None, sc, 5 * sc.steps_per_day)
    with pytest.raises(ValueError, match="pseudo-measurements need 2 days"):
        TwinTelemetryFeed(sc, sc.steps_per_day, feed.calibration)
    with pytest.raises(ValueError, match="outside the plan"):
        console.anomaly_feed.inject([len(console.anomaly_feed.plan)], 1.0, 0)
