"""Couple the operator console's twin to the runtime: one twin, seen by API, store and agents.

``gridsync serve`` runs a single digital twin: the console's :class:`ConsoleSession` steps it
(controller -> approvals -> overrides -> shield -> twin), because approvals and overrides live
there. :class:`ConsoleLink` publishes what each step produced on the runtime's bus, in the
message shapes the runtime agents use (see :mod:`gridsync.runtime.agents`):

* ``telemetry`` ``{"kind": "twin", "step", "scenario_time", asset states, "vm_pu", ...}``
  (the state at the start of the twin's next step, like ``TwinAgent``), so
  ``/api/v1/state`` and the forecast agent follow the console twin;
* smart-meter readings (p kW, q kvar, v p.u. per bus, feeder head) through ``emit`` (MQTT ->
  bridge -> bus, or the in-process ingestor), so the store and the 5-s snapshot fill up;
* ``plans`` (the controller's proposal, stored) and ``setpoints`` (what the twin applied after
  approvals, overrides and the shield).

Approval decisions posted to ``/api/v1/approvals`` whose ``plan_id`` names a pending console
request are applied to the session, so the REST API and the browser act on the same queue.
The session's own approval events and alerts are mirrored on the bus by
:func:`gridsync.web.console.mount_console`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np

from gridsync.aio import cancel_and_wait
from gridsync.bus import Message, Subscription
from gridsync.hitl.approvals import ApprovalError, ApprovalNotFound
from gridsync.hitl.session import ConsoleSession
from gridsync.runtime.runtime import Runtime
from gridsync.runtime.twin import meter_readings, setpoints_to_dict

log = logging.getLogger(__name__)
Emit = Callable[[bytes], Awaitable[Any]]


def _finite_or_none(values: np.ndarray) -> list[float | None]:
    return [float(v) if np.isfinite(v) else None for v in np.asarray(values, float)]


class ConsoleLink:
    """Publishes the console twin's steps on ``runtime.bus``; see the module docstring.

    ``attach()`` must be called on the event loop that runs the runtime; the session's step
    listener runs in the session's worker thread and hands messages to that loop in order.
    """

    def __init__(
        self,
        runtime: Runtime,
        session: ConsoleSession,
        emit: Emit,
        *,
        source: str = "console-twin",
        controller_name: str = "controller",
    ) -> None:
        self.runtime, self.session, self.emit = runtime, session, emit
        self.source, self.controller_name = source, controller_name
        self.loop: asyncio.AbstractEventLoop | None = None
        self.seq = int(time.time() * 1000)  # increasing across restarts: never a duplicate
        self.published_steps = 0
        self.failures = 0
        self._queue: asyncio.Queue[tuple[dict[str, Any], bytes]] | None = None
        self._pump: asyncio.Task | None = None
        self._sub: Subscription | None = None

    async def attach(self) -> None:
        self.loop = asyncio.get_running_loop()
        self._queue = asyncio.Queue()
        self._pump = asyncio.create_task(self._run(), name="console-link")
        self._sub = await self.runtime.bus.subscribe("approvals", self._on_decision, max_deliver=1)
        self.runtime.decision_handlers.append(self.decide)
        self.session.add_listener(self._on_event)

    async def detach(self) -> None:
        self.session.remove_listener(self._on_event)
        if self.decide in self.runtime.decision_handlers:
            self.runtime.decision_handlers.remove(self.decide)
        if self._sub is not None:
            await self._sub.unsubscribe()
        if self._pump is not None:
            await cancel_and_wait(self._pump)

    # session thread -> loop --------------------------------------------------------------
    def _on_event(self, event: str, payload: dict[str, Any]) -> None:
        if event != "state" or self.loop is None or self.session.twin.last is None:
            return
        msgs = self.messages()
        self.loop.call_soon_threadsafe(self._queue.put_nowait, msgs)

    def messages(self) -> tuple[dict[str, Any], bytes]:
        """The bus messages of the session's last step (built in the stepping thread, so the
        arrays are copied before the next step changes them) and the raw meter telemetry."""
        s, sc = self.session, self.session.scenario
        rec, twin, now = s.twin.last, s.twin, time.time()
        nxt = min(twin.step, len(sc.index) - 1)
        state = {
            "kind": "twin",
            "source": self.source,
            "step": twin.step,
            "scenario_time": sc.index[nxt].isoformat(),
            "battery_energy_kwh": np.asarray(twin.energy_kwh, float).tolist(),
            "ev_delivered_kwh": np.asarray(twin.delivered_kwh, float).tolist(),
            "deferrable_done_kwh": np.asarray(twin.done_kwh, float).tolist(),
            "thermal_temp_c": np.asarray(twin.temp_c, float).tolist(),
            "vm_pu": None if rec.pf_failed else _finite_or_none(rec.vm_pu),
            "branch_loading_pct": None
            if rec.pf_failed
            else _finite_or_none(rec.branch_loading_pct),
            "feeder_kw": rec.feeder_kw,
            "losses_kw": None if rec.pf_failed else rec.losses_kw,
            "pending_approvals": len(s.approvals.pending()),
        }
        plan_id = f"console-{self.controller_name}-{rec.step}-{int(now * 1000) % 1_000_000:06d}"
        plan = {
            "plan_id": plan_id,
            "source": f"console:{self.controller_name}",
            "created_s": now,
            "valid_from_s": now,
            "step": rec.step,
            "setpoints": setpoints_to_dict(s.last_proposed),
        }
        shield = s.last_shield
        released = {
            "plan_id": plan_id,
            "step": rec.step,
            "released_s": now,
            "plan_age_s": 0.0,
            "fallback": False,
            "shield": None if shield is None else shield.status,
            "overrides": len(s.overrides.list()),
            "setpoints": setpoints_to_dict(s.last_applied),
        }
        dev, qty, unit, val = meter_readings(
            rec.p_bus_kw, rec.q_bus_kvar, None if rec.pf_failed else rec.vm_pu, rec.feeder_kw
        )
        self.seq += 1
        readings = [
            {"device_id": d, "quantity": q, "unit": u, "value": v, "ts": now}
            for d, q, u, v in zip(dev, qty, unit, val, strict=True)
        ]
        raw = json.dumps({"source": self.source, "seq": self.seq, "readings": readings}).encode()
        return {"telemetry": state, "plans": plan, "setpoints": released}, raw

    async def _run(self) -> None:
        bus = self.runtime.bus
        while True:
            msgs, raw = await self._queue.get()
            try:
                await self.emit(raw)
                await bus.publish("plans", msgs["plans"], msg_id=f"plan:{msgs['plans']['plan_id']}")
                await bus.publish("setpoints", msgs["setpoints"])
                await bus.publish("telemetry", msgs["telemetry"])
                self.published_steps += 1
            except Exception:  # a bus/broker hiccup must not stop the console twin
                self.failures += 1
                log.exception("could not publish console twin step on the runtime bus")

    # API decisions -> session ------------------------------------------------------------
    async def decide(
        self, request_id: str, decision: str, comment: str, actor: str, role: str
    ) -> dict[str, Any] | None:
        """``Runtime.decide`` handler: decide a console request now (the request and its
        audit row change together); None when ``request_id`` is not a console request."""
        approvals = self.session.approvals
        try:
            approvals.get(request_id)
        except ApprovalNotFound:
            return None
        act = approvals.approve if decision == "approve" else approvals.reject
        req = await asyncio.to_thread(act, request_id, actor, role or "operator", comment)
        return {"id": req.id, "status": req.status}

    async def _on_decision(self, msg: Message) -> None:
        """Decisions published on the bus by another process (not yet applied)."""
        d = msg.data
        if "decision" not in d or d.get("applied"):
            return
        req_id = str(d.get("plan_id", ""))
        try:
            await self.decide(
                req_id, d["decision"], str(d.get("comment", "")), str(d.get("by", "api")), ""
            )
        except ApprovalError as err:
            log.warning("bus decision on %s not applied: %s", req_id, err)
