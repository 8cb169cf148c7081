"""The service's agents: twin (telemetry source), forecast, dispatch and safety.

Each talks only through the bus. Message shapes (all JSON):

* twin -> ``telemetry`` ``{"kind": "twin", "step", "battery_energy_kwh", ...}`` (asset
  states) and meter readings through the ingestion path (MQTT or the in-process ingestor);
* forecast -> ``forecasts`` ``{"step", "horizon", "dt_h", "feeder_net_kw": [...], ...}``;
* dispatch -> ``plans`` ``{"plan_id", "source", "created_s", "valid_to_s", "step",
  "setpoints": {"battery_kw": [...], ...}}``;
* safety -> ``setpoints`` ``{"plan_id", "step", "fallback", "plan_age_s", "setpoints"}``
  and ``alerts``. Safety releases only plans that pass its filter; when no fresh valid plan
  exists it keeps re-releasing the last safe one (``fallback: true``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np
import pandas as pd

from gridsync.bus import Bus, Message
from gridsync.runtime.registry import make_dispatcher, make_forecaster, make_safety_filter
from gridsync.runtime.supervisor import Agent
from gridsync.runtime.twin import Twin, observation, setpoints_from_dict, setpoints_to_dict
from gridsync.sim.controller import Setpoints
from gridsync.sim.scenario import Scenario

log = logging.getLogger(__name__)
Emit = Callable[[bytes], Awaitable[Any]]


class TwinAgent(Agent):
    """Advances the twin one scenario step per tick with the latest released setpoints and
    publishes meter readings through ``emit`` (raw telemetry bytes into the ingestion path).

    With ``wait_for_setpoints_s > 0`` the twin waits up to that long for setpoints made for
    its current step (lock-step, as in the batch simulator) before holding the last ones.
    """

    name = "twin"

    def __init__(
        self,
        scenario: Scenario,
        emit: Emit,
        period_s: float = 5.0,
        source: str = "twin",
        wait_for_setpoints_s: float = 0.0,
    ) -> None:
        super().__init__()
        self.scenario, self.emit, self.period_s, self.source = scenario, emit, period_s, source
        self.wait_for_setpoints_s = wait_for_setpoints_s
        self.twin = Twin(scenario)
        self.setpoints = Setpoints.zeros(scenario.fleet)
        self.setpoints_step: int | None = None
        self.held_steps = 0
        self._fresh = asyncio.Event()
        self.seq = int(time.time() * 1000)  # monotonic across restarts, so never a duplicate

    async def setup(self, bus: Bus) -> None:
        async def on_setpoints(msg: Message) -> None:
            try:
                self.setpoints = setpoints_from_dict(
                    msg.data.get("setpoints", {}), self.scenario.fleet
                )
                self.setpoints_step = msg.data.get("step")
                self._fresh.set()
            except ValueError as err:  # safety should never release these; keep the previous
                log.warning("twin ignores setpoints: %s", err)

        await self.listen(bus, "setpoints", on_setpoints, max_deliver=1)

    async def tick(self, bus: Bus) -> None:
        await bus.publish("telemetry", self.twin.state())
        if self.wait_for_setpoints_s > 0:
            deadline = time.monotonic() + self.wait_for_setpoints_s
            while self.setpoints_step != self.twin.step_index and time.monotonic() < deadline:
                self._fresh.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(
                        self._fresh.wait(), min(0.5, deadline - time.monotonic())
                    )
                if self.setpoints_step != self.twin.step_index:  # late joiners may have missed it
                    await bus.publish("telemetry", self.twin.state())
        if self.setpoints_step != self.twin.step_index:
            self.held_steps += 1
        result = self.twin.step(self.setpoints)
        dev, qty, unit, val = self.twin.meter_readings(result)
        now = time.time()
        self.seq += 1
        readings = [
            {"device_id": d, "quantity": q, "unit": u, "value": v, "ts": now}
            for d, q, u, v in zip(dev, qty, unit, val, strict=True)
        ]
        raw = json.dumps({"source": self.source, "seq": self.seq, "readings": readings}).encode()
        await self.emit(raw)


class _FollowsTwin(Agent):
    """Base for agents that act on the newest twin state."""

    def __init__(self) -> None:
        super().__init__()
        self.twin_state: dict[str, Any] | None = None
        self._handled_step: int | None = None

    async def setup(self, bus: Bus) -> None:
        async def on_telemetry(msg: Message) -> None:
            if msg.data.get("kind") == "twin":
                self.twin_state = msg.data

        await self.listen(bus, "telemetry", on_telemetry, max_deliver=1)

    def new_step(self) -> dict[str, Any] | None:
        s = self.twin_state
        if s is None or s["step"] == self._handled_step:
            return None
        self._handled_step = s["step"]
        return s


class ForecastAgent(_FollowsTwin):
    """Publishes the exogenous forecast (feeder net inflexible load, PV, temperature).

    With ``drift_watch`` (default) a :class:`~gridsync.learning.live.ForecastWatch` checks
    the feeder inflexible-load forecast ``watch_lead_h`` ahead against each step's actual
    load: a drift is logged and published on ``alerts`` (kind ``forecast_drift``, saying by
    how much and since when), ``watch_shadow_h`` later a retrained candidate (the forecaster on
    the history rescaled to the level measured since the change) forecasts in shadow for as
    long and is promoted or rejected by its shadow MAPE (kind ``forecast_model``, events
    ``retrain``/``promoted``/``rejected``, audited in the model registry when ``registry``
    is given); the published forecast comes from whichever model is live."""

    name = "forecast"

    def __init__(
        self,
        scenario: Scenario,
        forecaster: str = "naive",
        horizon: int = 96,
        period_s: float = 5.0,
        drift_watch: bool = True,
        watch_lead_h: float = 6.0,
        watch_shadow_h: float = 6.0,
        registry=None,
    ) -> None:
        super().__init__()
        self.scenario, self.horizon, self.period_s = scenario, horizon, period_s
        self.forecaster_name = forecaster
        self.forecaster = make_forecaster(forecaster)
        self.watch = None
        if drift_watch:
            from gridsync.learning.live import ForecastWatch, RelevelledHistory

            day = scenario.steps_per_day
            self.watch = ForecastWatch(
                f"load_forecast:{forecaster}",
                self.forecaster,
                lead=max(1, min(horizon, int(round(watch_lead_h / scenario.dt_h)))),
                warmup=day,
                shadow_steps=max(1, int(round(watch_shadow_h / scenario.dt_h))),
                retrain_after=max(1, int(round(watch_shadow_h / scenario.dt_h))),
                retrain=lambda live, change, ratio, _history: RelevelledHistory.retrain(
                    live, change, ratio, len(scenario.index)
                ),
                # feeder load swings +-12 % from day to day: flag shifts above about one
                # sigma of the day-ahead error (a new EV depot, heat pumps, a meter swap)
                monitor_kwargs={"delta": 1.0, "threshold": 40.0},
                registry=registry,
            )

    def _load_history(self, step: int) -> pd.Series:
        lo = max(0, step - 7 * self.scenario.steps_per_day)
        load = self.scenario.base_load_kw[lo:step].sum(axis=1)
        return pd.Series(load, index=self.scenario.index[lo:step])

    async def _check(self, bus: Bus, step: int) -> None:
        """Score the forecasts that targeted the previous step (its load is now known)."""
        w = self.watch
        if w.live_version is None and w.registry is not None and step > 0:
            await asyncio.to_thread(w.bootstrap, self._load_history(step))
        if step < 1:
            return
        actual = float(self.scenario.base_load_kw[step - 1].sum())
        events = await asyncio.to_thread(w.observe, step - 1, actual, self._load_history(step))
        for ev in events:
            log.warning("forecast agent: %s", ev["message"])
            kind = "forecast_drift" if ev["kind"] == "drift" else "forecast_model"
            await bus.publish(
                "alerts",
                {
                    "kind": kind,
                    "severity": "warning" if kind == "forecast_drift" else "info",
                    "source": self.name,
                    "ts_s": time.time(),
                    **{k: v for k, v in ev.items() if k != "kind"},
                    "event": ev["kind"],
                },
            )

    def _totals(self, fc) -> tuple[np.ndarray, np.ndarray]:
        sc = self.scenario
        pv_kw = (fc.pv_per_kwp[:, sc.pv_orientation] * sc.fleet.pv.peak_kw).sum(axis=1)
        return fc.base_load_kw.sum(axis=1), pv_kw

    async def tick(self, bus: Bus) -> None:
        s = self.new_step()
        if s is None:
            return
        sc, step = self.scenario, int(s["step"])
        live = self.forecaster
        if self.watch is not None:
            await self._check(bus, step)
            live = self.watch.live
        fc = live.forecast(sc, step, self.horizon)
        load_kw, pv_kw = self._totals(fc)
        if self.watch is not None:
            cand = self.watch.candidate
            cand_kw = (
                None if cand is None else self._totals(cand.forecast(sc, step, self.horizon))[0]
            )
            self.watch.issued(step, load_kw, cand_kw)
        await bus.publish(
            "forecasts",
            {
                "step": step,
                "start_time": sc.index[step].isoformat(),
                "dt_h": sc.dt_h,
                "horizon": fc.horizon,
                "forecaster": self.forecaster_name,
                "model_version": None if self.watch is None else self.watch.live_version,
                "base_load_kw": load_kw.tolist(),  # lists: the in-process bus does not serialise
                "pv_kw": pv_kw.tolist(),
                "feeder_net_kw": (load_kw - pv_kw).tolist(),
                "outdoor_temp_c": np.asarray(fc.outdoor_temp_c, float).tolist(),
                "created_s": time.time(),
            },
        )


class DispatchAgent(_FollowsTwin):
    """Runs a registered controller on each new twin step and publishes the plan."""

    name = "dispatch"

    def __init__(
        self,
        scenario: Scenario,
        controller: str = "tou",
        period_s: float = 5.0,
        hold_s: float = 60.0,
    ) -> None:
        super().__init__()
        self.scenario, self.period_s, self.hold_s = scenario, period_s, hold_s
        self.controller_name = controller
        self.controller = None

    async def setup(self, bus: Bus) -> None:
        await super().setup(bus)
        self.controller = make_dispatcher(self.controller_name)
        self.controller.reset(self.scenario)

    async def tick(self, bus: Bus) -> None:
        s = self.new_step()
        if s is None:
            return
        sp = self.controller.act(observation(self.scenario, s))
        now = time.time()
        plan_id = f"{self.controller_name}-{s['step']}-{uuid.uuid4().hex[:6]}"
        await bus.publish(
            "plans",
            {
                "plan_id": plan_id,
                "source": f"dispatch:{self.controller_name}",
                "created_s": now,
                "valid_from_s": now,
                "valid_to_s": now + self.hold_s,
                "step": s["step"],
                "setpoints": setpoints_to_dict(sp),
            },
            msg_id=f"plan:{plan_id}",
        )


class SafetyAgent(Agent):
    """Checks plans with a registered safety filter and releases setpoints every tick."""

    name = "safety"

    def __init__(
        self,
        scenario: Scenario,
        safety_filter: str = "limits",
        period_s: float = 5.0,
        max_plan_age_s: float = 30.0,
    ) -> None:
        super().__init__()
        self.scenario, self.period_s, self.max_plan_age_s = scenario, period_s, max_plan_age_s
        self.filter = make_safety_filter(safety_filter)
        self.pending: dict[str, Any] | None = None
        self.last_safe: dict[str, Any] | None = None
        self.twin_state: dict[str, Any] | None = None
        self._stale_alerted = False
        self._alerted_step: int | None = None

    async def setup(self, bus: Bus) -> None:
        async def on_plan(msg: Message) -> None:
            self.pending = msg.data

        async def on_telemetry(msg: Message) -> None:
            if msg.data.get("kind") == "twin":
                self.twin_state = msg.data

        await self.listen(bus, "plans", on_plan, max_deliver=1)
        await self.listen(bus, "telemetry", on_telemetry, max_deliver=1)
        # after a restart, recover the last safe plan from the setpoints topic itself
        if self.last_safe is None:
            last = await bus.last_seq("setpoints")
            if last:
                old = await bus.replay("setpoints", start_seq=last, limit=1)
                if old:
                    self.last_safe = old[0].data.get("plan")

    async def _alert(self, bus: Bus, kind: str, severity: str, message: str, **extra) -> None:
        await bus.publish(
            "alerts",
            {
                "kind": kind,
                "severity": severity,
                "source": self.name,
                "message": message,
                "ts_s": time.time(),
                **extra,
            },
        )

    async def tick(self, bus: Bus) -> None:
        now = time.time()
        plan, self.pending = self.pending, None
        if plan is not None:
            try:
                raw = setpoints_from_dict(plan.get("setpoints", {}), self.scenario.fleet)
                safe, notes = self.filter(self.scenario, raw, self.twin_state)
                self.last_safe = {
                    **plan,
                    "setpoints": setpoints_to_dict(safe),
                    "safety_notes": notes,
                }
                self._stale_alerted = False
            except ValueError as err:
                await self._alert(
                    bus, "plan_rejected", "warning", f"plan {plan.get('plan_id')} rejected: {err}"
                )
        if self.last_safe is None:
            return
        age = now - float(self.last_safe.get("created_s", now))
        fallback = age > self.max_plan_age_s
        if fallback and not self._stale_alerted:
            self._stale_alerted = True
            await self._alert(
                bus,
                "stale_plan",
                "warning",
                f"no fresh valid plan for {age:.0f} s; holding last safe plan {self.last_safe.get('plan_id')}",
            )
        await bus.publish(
            "setpoints",
            {
                "plan_id": self.last_safe.get("plan_id"),
                "step": self.last_safe.get("step"),
                "released_s": now,
                "plan_age_s": age,
                "fallback": fallback,
                "setpoints": self.last_safe["setpoints"],
                "plan": self.last_safe,
            },
        )
        await self._check_voltage(bus)

    async def _check_voltage(self, bus: Bus) -> None:
        s = self.twin_state
        if not s or s.get("vm_pu") is None or s["step"] == self._alerted_step:
            return
        lim = self.scenario.config.limits
        vm = np.asarray(s["vm_pu"], float)
        lo, hi = lim.voltage_min_pu, lim.voltage_max_pu
        bad = np.flatnonzero((vm < lo) | (vm > hi))
        if len(bad):
            self._alerted_step = s["step"]
            worst = int(bad[np.argmax(np.abs(vm[bad] - 1.0))])
            await self._alert(
                bus,
                "voltage",
                "warning",
                f"{len(bad)} bus(es) outside [{lo}, {hi}] pu at step {s['step']}; worst bus {worst} at {vm[worst]:.3f} pu",
                buses=bad.tolist(),
            )
