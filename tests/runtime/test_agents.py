"""Agent loop: supervision (crash, backoff, restart), the live loop reproducing the batch
simulator, and the last safe plan being held while the dispatcher is down."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from gridsync.bus import InProcessBus
from gridsync.dispatch.rules import UncontrolledController
from gridsync.runtime.agents import DispatchAgent, ForecastAgent, SafetyAgent, TwinAgent
from gridsync.runtime.registry import limits_filter, make_safety_filter
from gridsync.runtime.runtime import Runtime
from gridsync.runtime.state import RuntimeState
from gridsync.runtime.supervisor import Agent, Backoff, Supervisor
from gridsync.sim.controller import Setpoints
from gridsync.sim.simulator import simulate
from tests.conftest import until


class Counter(Agent):
    name = "counter"
    period_s = 0.01

    def __init__(self):
        super().__init__()
        self.n = 0

    async def tick(self, bus):
        self.n += 1


class Crashy(Agent):
    name = "crashy"
    period_s = 0.01

    def __init__(self, crash_on: set[int]):
        super().__init__()
        self.calls = 0
        self.crash_on = crash_on
        self.setups = 0

    async def setup(self, bus):
        self.setups += 1

    async def tick(self, bus):
        self.calls += 1
        if self.calls in self.crash_on:
            raise RuntimeError(f"boom at call {self.calls}")


def _until(cond, timeout=10.0):
    return until(cond, timeout, poll_s=0.01)


def test_supervisor_restarts_crashed_agent_with_backoff_and_others_keep_running():
    async def main():
        bus = InProcessBus()
        state = RuntimeState()
        sup = Supervisor(bus, state, Backoff(min_s=0.05, max_s=0.2, healthy_s=60))
        crashy, counter = Crashy({3, 4, 5}), Counter()
        sup.start(crashy)
        sup.start(counter)
        assert await _until(lambda: crashy.calls >= 10)
        n_before = counter.n
        await asyncio.sleep(0.05)
        alerts = await bus.replay("alerts")
        await sup.stop()
        return crashy, counter, n_before, state, alerts

    crashy, counter, n_before, state, alerts = asyncio.run(main())
    st = state.agents["crashy"]
    assert st.restarts == 3 and crashy.setups == 4
    assert "boom at call 5" in st.last_error and st.state == "stopped"
    assert counter.n > n_before > 0 and state.agents["counter"].restarts == 0
    assert [a.data["kind"] for a in alerts] == ["agent_crashed"] * 3
    # backoff doubles: 0.05, 0.1, 0.2 s
    assert "0.1 s" in alerts[1].data["message"] and "0.2 s" in alerts[2].data["message"]


def test_limits_filter_clips_to_ratings_and_rejects_nothing_valid(scenario_1day):
    f = scenario_1day.fleet
    sp = Setpoints.zeros(f)
    sp.battery_kw = f.battery.power_kw * 3
    out, notes = limits_filter(scenario_1day, sp, None)
    np.testing.assert_allclose(out.battery_kw, f.battery.power_kw)
    assert notes == [f"battery_kw: {len(f.battery)} request(s) clipped to rating"]
    with pytest.raises(ValueError, match="unknown safety filter 'nope'"):
        make_safety_filter("nope")


def _live_runtime(
    scenario,
    *,
    twin_period=0.05,
    dispatch_cls=DispatchAgent,
    max_plan_age_s=30.0,
    backoff=None,
    wait_s=2.0,
):
    rt = Runtime(step_s=0.1, backoff=backoff or Backoff(min_s=0.05, max_s=0.5))
    twin = TwinAgent(
        scenario, rt.ingestor.submit, period_s=twin_period, wait_for_setpoints_s=wait_s
    )
    agents = [
        twin,
        ForecastAgent(scenario, "naive", horizon=8, period_s=twin_period),
        dispatch_cls(scenario, "uncontrolled", period_s=twin_period / 2),
        SafetyAgent(scenario, period_s=twin_period / 2, max_plan_age_s=max_plan_age_s),
    ]
    rt._initial_agents = agents
    return rt, twin


def test_live_loop_reproduces_the_batch_simulator(scenario_1day):
    n = 12
    sc = scenario_1day
    batch = simulate(sc, UncontrolledController())

    async def main():
        rt, twin = _live_runtime(sc)
        feeder = {}
        orig_step = twin.twin.step

        def recording_step(sp):
            res = orig_step(sp)
            feeder[res.step] = res.feeder_kw
            return res

        twin.twin.step = recording_step
        async with rt:
            assert await _until(lambda: len(feeder) >= n, timeout=30)
            assert await _until(
                lambda: rt.state.forecast is not None and rt.state.snapshot is not None
            )
            snap = rt.state.snapshot
        return feeder, twin, snap, rt

    feeder, twin, snap, rt = asyncio.run(main())
    got = np.array([feeder[sc.start_step + i] for i in range(n)])
    np.testing.assert_allclose(got, batch.feeder_kw[:n], rtol=1e-6, atol=1e-3)
    assert twin.held_steps == 0
    # meter readings went through ingestion into the snapshot and the store
    assert "feeder-head/p" in snap["series"] and snap["n_series"] == 3 * sc.feeder.n_bus + 1
    assert rt.store.count_readings() >= 3 * (3 * sc.feeder.n_bus + 1)
    assert rt.state.forecast["horizon"] == 8


class FlakyDispatch(DispatchAgent):
    """Crashes once, on its 4th plan, as a bug in a controller would."""

    crashed = 0

    async def tick(self, bus):
        s = self.twin_state
        if (
            s is not None
            and s["step"] == self.scenario.start_step + 3
            and FlakyDispatch.crashed == 0
        ):
            FlakyDispatch.crashed += 1
            raise ZeroDivisionError("controller bug")
        await super().tick(bus)


def test_dispatch_crash_holds_last_safe_plan_then_recovers(scenario_1day):
    sc = scenario_1day

    async def main():
        rt, twin = _live_runtime(
            sc,
            dispatch_cls=FlakyDispatch,
            max_plan_age_s=0.3,
            backoff=Backoff(min_s=1.0, max_s=1.0),
            wait_s=0.1,
        )
        released = []

        async def watch(msg):
            released.append(msg.data)

        async with rt:
            await rt.bus.subscribe("setpoints", watch)
            assert await _until(lambda: rt.state.agents["dispatch"].restarts == 1, timeout=20)
            crash_step = sc.start_step + 3
            assert await _until(
                lambda: any(not r["fallback"] and r["step"] > crash_step for r in released),
                timeout=30,
            )
            alerts = [a["kind"] for a in rt.state.alerts]
        return released, alerts, twin

    released, alerts, twin = asyncio.run(main())
    assert "agent_crashed" in alerts and "stale_plan" in alerts
    fallback = [r for r in released if r["fallback"]]
    assert fallback, "safety must keep releasing the last safe plan while dispatch is down"
    assert {r["plan_id"] for r in fallback} <= {r["plan_id"] for r in released if not r["fallback"]}
    assert twin.held_steps >= 1  # the twin kept stepping on the held plan
