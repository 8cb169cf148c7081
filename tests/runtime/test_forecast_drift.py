"""The forecast agent's drift watch: live errors checked, alert with the reason, retrained
candidate in shadow, audited promotion; silence on the recorded load."""

from __future__ import annotations

import asyncio
import dataclasses

import numpy as np
import pytest

from gridsync.bus import InProcessBus
from gridsync.learning.registry import ModelRegistry
from gridsync.runtime.agents import ForecastAgent
from gridsync.store import SqliteStore


def _drive(scenario, agent, first, last):
    """Feed the agent twin steps first..last-1 as the twin would; returns (alerts, forecasts)."""

    async def main():
        bus = InProcessBus()
        alerts, forecasts = [], []
        await bus.subscribe("alerts", lambda m: _append(alerts, m.data))
        await bus.subscribe("forecasts", lambda m: _append(forecasts, m.data))
        for step in range(first, last):
            agent.twin_state = {"kind": "twin", "step": step}
            await agent.tick(bus)
        await asyncio.sleep(0)
        return alerts, forecasts

    return asyncio.run(main())


async def _append(out, data):
    out.append(data)


def _lead_errors(forecasts, scenario, lead):
    """{target step: |error| of the forecast issued ``lead`` steps before it}."""
    load = scenario.base_load_kw.sum(axis=1)
    return {
        f["step"] + lead - 1: abs(f["base_load_kw"][lead - 1] - load[f["step"] + lead - 1])
        for f in forecasts
        if len(f["base_load_kw"]) >= lead
    }


@pytest.fixture(scope="module")
def stepped(scenario_1day):
    """The scenario's load with a +50 % step (an EV depot, heat pumps) two days before the
    window's end (the feeder's day-on-day error is ~27 % of its mean load, its daily mean
    swings by +-12 %)."""
    sc = scenario_1day
    change = len(sc.index) - 2 * sc.steps_per_day
    factor = np.where(np.arange(len(sc.index)) >= change, 1.50, 1.0)[:, None]
    return dataclasses.replace(sc, base_load_kw=sc.base_load_kw * factor), change


def test_a_level_step_is_alerted_retrained_promoted_and_audited(stepped):
    sc, change = stepped
    day = sc.steps_per_day
    store = SqliteStore(":memory:")
    store.migrate()
    # the naive forecast repeats yesterday, so it re-levels by itself a day after the step:
    # a short lead and shadow let the retrained model prove itself before that
    agent = ForecastAgent(
        sc, "naive", watch_lead_h=1.0, watch_shadow_h=3.0, registry=ModelRegistry(store)
    )
    first, last = change - 3 * day, len(sc.index) - 1
    alerts, forecasts = _drive(sc, agent, first, last)
    drift = [a for a in alerts if a["kind"] == "forecast_drift"]
    assert drift, "no drift alert"
    # found within a day of the step, the message says what moved and since when
    assert change <= drift[0]["step"] <= change + day
    assert "demand +" in drift[0]["message"] and "since step" in drift[0]["message"]
    assert all(a["step"] >= change for a in drift)  # no alarm on the three days before
    model = [a for a in alerts if a["kind"] == "forecast_model"]
    retrain = [a for a in model if a["event"] == "retrain"]
    # retrained on the level measured since the estimated change (Page-Hinkley's estimate,
    # within half a day on this noisy feeder): the stepped load over yesterday's (what the
    # naive forecast repeats) on those steps
    assert retrain
    c, t = retrain[0]["change_step"], retrain[0]["step"] + 1
    assert abs(c - change) <= day // 2
    rows = np.arange(c, t)
    load = sc.base_load_kw.sum(axis=1)
    expected = 100 * (load[rows].mean() / load[rows - day].mean() - 1)
    assert retrain[0]["shift_pct"] == pytest.approx(expected, abs=0.5)
    decided = [a for a in model if a["event"] in ("promoted", "rejected")]
    assert decided and decided[0]["event"] == "promoted"
    assert decided[0]["shadow_mape_candidate"] < decided[0]["shadow_mape_live"]
    reg = ModelRegistry(store)
    assert reg.live_version(agent.watch.name) == decided[0]["version"] == 2
    audit = [e for e in store.audit_log(limit=20) if e["action"] == "model.promote"]
    assert any(e["target"] == f"{agent.watch.name}@2" for e in audit)
    # after promotion the published forecast is on the new level: its 1-h-ahead error over
    # the rest of the day after the step is below the unwatched agent's (which waits a day)
    plain = ForecastAgent(sc, "naive", drift_watch=False)
    _, plain_fc = _drive(sc, plain, first, last)
    lead = agent.watch.lead
    promoted_at = decided[0]["step"]
    window = range(promoted_at + lead, change + day)
    ours, theirs = _lead_errors(forecasts, sc, lead), _lead_errors(plain_fc, sc, lead)
    assert len(window) > 0
    assert np.mean([ours[t] for t in window]) < 0.8 * np.mean([theirs[t] for t in window])


def test_no_alert_on_the_recorded_load(scenario_1day):
    sc = scenario_1day
    day = sc.steps_per_day
    agent = ForecastAgent(sc, "naive")
    alerts, forecasts = _drive(sc, agent, day, len(sc.index) - day)
    assert forecasts and not [a for a in alerts if a["kind"] == "forecast_drift"]
    assert agent.watch.monitor is not None  # warmed up and watching
