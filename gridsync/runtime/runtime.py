"""The running service: bus + store + state buffer + supervised agents.

:class:`Runtime` is what the API (``gridsync.api.app.create_app``) and the operator console
read and act through:

* ``runtime.state`` (:class:`~gridsync.runtime.state.RuntimeState`): latest snapshot, twin
  state, forecast, plan, setpoints, alerts, approvals, agent health, counters;
* ``runtime.bus`` / ``runtime.store``: the message bus and the history store;
* ``submit_plan``, ``decide``, ``ack_alert``, ``select_scenario``: operator actions, each
  published on the bus and written to the audit log;
* ``ingestor``: validates telemetry posted over HTTP exactly like the MQTT bridge does.

Inside, bus subscriptions keep ``state`` current, a durable :class:`~gridsync.runtime.sinks.
StoreSink` writes telemetry readings, plans, alerts and dead letters to the store (a database
outage is retried, up to ``sink_max_deliver`` attempts ``sink_retry_delay_s`` apart; a message
the store refuses is dead-lettered with the reason), and a clock publishes a synchronised
snapshot every ``step_s``. :meth:`Runtime.ingestion` reports each ingestion stage (the store
sink, MQTT bridges registered in ``ingestion_stages``) and whether one has stalled.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import numpy as np

from gridsync.aio import cancel_and_wait
from gridsync.bus import Bus, InProcessBus, Message, Subscription
from gridsync.data.ingest import Ingestor, TelemetryValidator
from gridsync.data.progress import Progress
from gridsync.hitl.approvals import ApprovalConflict, ApprovalNotFound
from gridsync.runtime.buffer import GridSnapshot, StateBuffer
from gridsync.runtime.scenarios import ScenarioCatalog
from gridsync.runtime.sinks import StoreSink
from gridsync.runtime.state import RuntimeState
from gridsync.runtime.supervisor import Agent, Backoff, Supervisor
from gridsync.store import SqliteStore, Store

log = logging.getLogger(__name__)

ScenarioHook = Callable[["Runtime", str, int | None], Awaitable[None]]
#: ``(plan_id, decision, comment, actor, role) -> request dict``, or None for an id the
#: handler does not know; raises :class:`ApprovalConflict` for a request decided before.
DecisionHandler = Callable[[str, str, str, str, str], Awaitable[dict[str, Any] | None]]


class Runtime:
    """Owns and wires the service's parts; ``await start()`` / ``await stop()``."""

    def __init__(
        self,
        bus: Bus | None = None,
        store: Store | None = None,
        agents: Sequence[Agent] = (),
        *,
        step_s: float = 5.0,
        stale_after_s: float = 15.0,
        backoff: Backoff | None = None,
        catalog: ScenarioCatalog | None = None,
        on_scenario_change: ScenarioHook | None = None,
        validator: TelemetryValidator | None = None,
        sink_max_deliver: int = 600,
        sink_retry_delay_s: float = 1.0,
        stall_after_s: float = 30.0,
        drain_timeout_s: float = 10.0,
    ) -> None:
        self.bus = bus or InProcessBus()
        self.store = store or SqliteStore(":memory:")
        self.state = RuntimeState()
        self.buffer = StateBuffer(step_s=step_s, stale_after_s=stale_after_s)
        self.supervisor = Supervisor(self.bus, self.state, backoff)
        self.catalog = catalog or ScenarioCatalog()
        self.ingestor = Ingestor(self.bus, validator or TelemetryValidator())
        self.sink = StoreSink(
            self.bus,
            self.store,
            self.state,
            max_deliver=sink_max_deliver,
            retry_delay_s=sink_retry_delay_s,
            stall_after_s=stall_after_s,
        )
        # progress of every ingestion stage /health watches (bridges add theirs)
        self.ingestion_stages: list[Progress] = [self.sink.progress]
        self.drain_timeout_s = drain_timeout_s
        self.on_scenario_change = on_scenario_change
        self._initial_agents = list(agents)
        self.decision_handlers: list[DecisionHandler] = []
        #: setpoint list length per field of the running fleet (None: no scenario yet)
        self.fleet_sizes: dict[str, int] | None = None
        self._plan_ids: deque[str] = deque(maxlen=1000)
        self._decided: OrderedDict[str, str] = OrderedDict()
        self._subs: list[Subscription] = []
        self._clock: asyncio.Task | None = None
        self.running = False

    # life cycle -------------------------------------------------------------------------
    async def start(self) -> None:
        await self.bus.connect()
        await asyncio.to_thread(self.store.migrate)
        sub = self.bus.subscribe
        for topic in ("telemetry", "forecasts", "plans", "setpoints", "alerts", "approvals"):
            self._subs.append(await sub(topic, self._keep, max_deliver=1))
        self._subs.extend(await self.sink.subscribe())
        self._clock = asyncio.create_task(self._tick_clock(), name="runtime:clock")
        for agent in self._initial_agents:
            self.supervisor.start(agent)
        self.running = True

    async def stop(self) -> None:
        self.running = False
        await self.supervisor.stop()
        if self._clock is not None:
            await cancel_and_wait(self._clock)
        # in-process messages die with the process: store what was accepted before closing
        drain = self.bus.kind == "inprocess" and self._subs
        if drain and not await self.sink.drain(self.drain_timeout_s):
            log.warning("stop: store sink not drained within %g s", self.drain_timeout_s)
        for s in self._subs:
            await s.unsubscribe()
        self._subs.clear()
        await self.bus.close()

    async def __aenter__(self) -> Runtime:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # bus -> state ------------------------------------------------------------------------
    async def _keep(self, msg: Message) -> None:
        d, st = msg.data, self.state
        if msg.topic == "telemetry":
            kind = d.get("kind")
            if kind == "readings":
                keys = np.asarray(d["device_id"], object) + "/" + np.asarray(d["quantity"], object)
                vals = np.asarray(d["value"], dtype=float)
                self.buffer.ingest(keys.tolist(), np.asarray(d["ts_s"], float), vals)
                st.counters["telemetry_messages"] += 1
                st.counters["readings"] += len(keys)
            elif kind == "twin":
                st.twin = d
        elif msg.topic == "forecasts":
            st.forecast = d
        elif msg.topic == "plans":
            st.plan = d
            if d.get("plan_id"):
                self._plan_ids.append(str(d["plan_id"]))
        elif msg.topic == "setpoints":
            st.setpoints = d
        elif msg.topic == "alerts":
            st.add_alert(d)
        elif msg.topic == "approvals":
            st.approvals.append(d)

    def ingestion(self, now_s: float | None = None) -> dict[str, Any]:
        """Ingestion health: ``status`` is ``"stalled"`` when any stage has had work waiting
        for more than its ``stall_after_s`` without finishing any; ``last_stored_s`` is when
        readings were last written to the store."""
        stages = [p.to_dict(now_s) for p in self.ingestion_stages]
        stalled = [s["stage"] for s in stages if s["status"] == "stalled"]
        return {
            "status": "stalled" if stalled else "ok",
            "stalled": stalled,
            "last_stored_s": self.sink.last_stored_s,
            "stages": stages,
        }

    async def _tick_clock(self) -> None:
        step = self.buffer.step_s
        while True:
            now = time.time()
            t = self.buffer.step_time(now) + step
            await asyncio.sleep(max(t - now, 0.0))
            snap = self.buffer.snapshot(t)
            self.state.snapshot = snap.to_dict()
            # best effort within the step: a bus outage must not stall the clock
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._publish_snapshot(t, snap), 0.8 * step)

    async def _publish_snapshot(self, t: float, snap: GridSnapshot) -> None:
        await self.bus.publish(
            "telemetry",
            {
                "kind": "snapshot",
                "t_s": t,
                "keys": snap.keys,
                "value": snap.value,
                "age_s": snap.age_s,
                "stale": snap.stale,
            },
        )

    # operator actions --------------------------------------------------------------------
    async def submit_plan(self, plan: dict[str, Any], actor: str, role: str) -> str:
        plan_id = plan.get("plan_id") or f"op-{uuid.uuid4().hex[:12]}"
        body = {**plan, "plan_id": plan_id, "source": f"operator:{actor}", "created_s": time.time()}
        await asyncio.to_thread(self.store.audit, actor, role, "plan.submit", plan_id, plan)
        await self.bus.publish("plans", body, msg_id=f"plan:{plan_id}")
        self._plan_ids.append(plan_id)
        return plan_id

    async def decide(
        self, plan_id: str, decision: str, comment: str, actor: str, role: str
    ) -> dict:
        """Approve or reject ``plan_id``: a request a :attr:`decision_handlers` entry knows
        (the console's approval queue) is decided there, atomically with its audit row;
        otherwise a plan seen on the bus or in the store is decided once and audited.
        Raises :class:`ApprovalNotFound` (404) or :class:`ApprovalConflict` (409); nothing is
        published or audited then."""
        body = {
            "plan_id": plan_id,
            "decision": decision,
            "comment": comment,
            "by": actor,
            "ts_s": time.time(),
        }
        for handler in self.decision_handlers:
            request = await handler(plan_id, decision, comment, actor, role)
            if request is not None:
                body = {**body, "applied": True, "status": request.get("status")}
                await self.bus.publish("approvals", body)
                return body
        if plan_id in self._decided:
            msg = f"plan {plan_id!r} was already decided: {self._decided[plan_id]}"
            raise ApprovalConflict(msg)
        if not await self._plan_known(plan_id):
            msg = f"no plan or approval request {plan_id!r}"
            raise ApprovalNotFound(msg)
        self._decided[plan_id] = decision
        while len(self._decided) > 10_000:
            self._decided.popitem(last=False)
        try:
            await asyncio.to_thread(
                self.store.audit, actor, role, f"plan.{decision}", plan_id, {"comment": comment}
            )
        except BaseException:
            self._decided.pop(plan_id, None)
            raise
        await self.bus.publish("approvals", body)
        return body

    async def _plan_known(self, plan_id: str) -> bool:
        if plan_id in self._plan_ids:
            return True
        return await asyncio.to_thread(self.store.has_plan, plan_id)

    async def ack_alert(self, alert_id: int, actor: str, role: str) -> dict | None:
        alert = self.state.find_alert(alert_id)
        if alert is None:
            return None
        alert["acknowledged_by"] = actor
        await asyncio.to_thread(self.store.audit, actor, role, "alert.ack", str(alert_id), {})
        return alert

    async def select_scenario(self, name: str, days: int | None, actor: str, role: str) -> dict:
        self.catalog.select(name, days)
        await asyncio.to_thread(
            self.store.audit, actor, role, "scenario.select", name, {"days": days}
        )
        if self.on_scenario_change is not None:
            await self.on_scenario_change(self, name, days)
        self.state.scenario = {"name": name, "days": days, "selected_s": time.time()}
        return self.state.scenario
