"""Agents and their supervisor: each agent is an asyncio task with its own cadence.

An agent talks to the rest of the system only through the bus it receives in
:meth:`Agent.setup`. If ``setup`` or ``tick`` raises, the supervisor tears the agent down,
publishes an ``agent_crashed`` alert, waits (exponential backoff, reset after a healthy
minute) and starts it again; other agents are unaffected.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass

from gridsync.aio import cancel_and_wait
from gridsync.bus.base import Bus, Subscription
from gridsync.runtime.state import AgentStatus, RuntimeState

log = logging.getLogger(__name__)


@dataclass
class Backoff:
    """Restart delays: ``min_s`` doubling up to ``max_s``; reset after ``healthy_s`` of uptime."""

    min_s: float = 0.5
    max_s: float = 30.0
    healthy_s: float = 60.0


class Agent(ABC):
    """One unit of behaviour. Subclasses set ``name`` and ``period_s`` and implement ``tick``."""

    name: str = "agent"
    period_s: float = 5.0

    def __init__(self) -> None:
        self._subs: list[Subscription] = []

    async def setup(self, bus: Bus) -> None:  # noqa: B027 - optional hook
        """Subscribe to topics (use :meth:`listen` so teardown unsubscribes)."""

    @abstractmethod
    async def tick(self, bus: Bus) -> None:
        """One cycle of work, called every ``period_s`` seconds."""

    async def listen(self, bus: Bus, topic: str, handler, **kwargs) -> None:
        self._subs.append(await bus.subscribe(topic, handler, **kwargs))

    async def teardown(self) -> None:
        subs, self._subs = self._subs, []
        for sub in subs:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()


class Supervisor:
    """Runs agents as tasks; restarts crashed ones; records status in ``state.agents``."""

    def __init__(self, bus: Bus, state: RuntimeState, backoff: Backoff | None = None) -> None:
        self.bus, self.state = bus, state
        self.backoff = backoff or Backoff()
        self._tasks: dict[str, asyncio.Task] = {}
        self._agents: dict[str, Agent] = {}

    @property
    def agents(self) -> dict[str, Agent]:
        return dict(self._agents)

    def start(self, agent: Agent) -> None:
        if agent.name in self._tasks:
            msg = f"an agent named {agent.name!r} is already running"
            raise ValueError(msg)
        self.state.agents[agent.name] = AgentStatus(agent.name, agent.period_s)
        self._agents[agent.name] = agent
        self._tasks[agent.name] = asyncio.create_task(self._run(agent), name=f"agent:{agent.name}")

    async def stop(self, name: str | None = None) -> None:
        names = [name] if name else list(self._tasks)
        for n in names:
            task = self._tasks.pop(n)
            await cancel_and_wait(task)
            await self._agents.pop(n).teardown()
            self.state.agents[n].state = "stopped"

    async def _run(self, agent: Agent) -> None:
        status = self.state.agents[agent.name]
        delay = self.backoff.min_s
        loop = asyncio.get_running_loop()
        while True:
            started = time.monotonic()
            try:
                status.state = "starting"
                await agent.setup(self.bus)
                status.state = "running"
                next_t = loop.time()
                while True:
                    await agent.tick(self.bus)
                    status.ticks += 1
                    status.last_tick_s = time.time()
                    next_t += agent.period_s
                    now = loop.time()
                    if next_t < now:  # overran: skip missed ticks instead of bursting
                        next_t = now
                    await asyncio.sleep(next_t - now)
            except asyncio.CancelledError:
                raise
            except Exception as err:
                await agent.teardown()
                if time.monotonic() - started > self.backoff.healthy_s:
                    delay = self.backoff.min_s
                status.state, status.restarts = "backoff", status.restarts + 1
                status.last_error = f"{type(err).__name__}: {err}"
                status.next_restart_s = time.time() + delay
                log.warning("agent %s crashed (%s); restart in %.1f s", agent.name, err, delay)
                with contextlib.suppress(Exception):
                    await self.bus.publish(
                        "alerts",
                        {
                            "kind": "agent_crashed",
                            "severity": "warning",
                            "source": agent.name,
                            "message": f"agent {agent.name} crashed: {status.last_error};"
                            f" restarting in {delay:.1f} s",
                            "ts_s": time.time(),
                        },
                    )
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.backoff.max_s)
