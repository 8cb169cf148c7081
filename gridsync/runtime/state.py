"""What the API and the operator console read: the latest value seen on each bus topic.

:class:`RuntimeState` is written only by the runtime's own bus subscriptions (and by the
supervisor for agent status) and read by HTTP handlers; everything in it is JSON-ready.
"""

from __future__ import annotations

import itertools
import time
from collections import Counter, deque
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class AgentStatus:
    """Health of one supervised agent."""

    name: str
    period_s: float
    state: str = "starting"  # starting | running | backoff | stopped
    ticks: int = 0
    restarts: int = 0
    last_error: str = ""
    last_tick_s: float | None = None
    next_restart_s: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class RuntimeState:
    """Latest snapshot, forecast, plan, setpoints, plus recent alerts and approvals.

    ``snapshot`` is the state buffer's synchronised 5-s grid snapshot; ``twin`` the latest
    twin/asset state message; ``plan`` the newest plan published by any dispatcher or
    operator; ``setpoints`` the last setpoints the safety agent released.
    """

    snapshot: dict[str, Any] | None = None
    twin: dict[str, Any] | None = None
    forecast: dict[str, Any] | None = None
    plan: dict[str, Any] | None = None
    setpoints: dict[str, Any] | None = None
    alerts: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=500))
    approvals: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=500))
    agents: dict[str, AgentStatus] = field(default_factory=dict)
    scenario: dict[str, Any] = field(default_factory=dict)
    counters: Counter = field(default_factory=Counter)
    started_s: float = field(default_factory=time.time)
    _alert_ids: itertools.count = field(default_factory=lambda: itertools.count(1), repr=False)

    def add_alert(self, alert: dict[str, Any]) -> dict[str, Any]:
        entry = {"id": next(self._alert_ids), "acknowledged_by": None, **alert}
        self.alerts.append(entry)
        return entry

    def find_alert(self, alert_id: int) -> dict[str, Any] | None:
        return next((a for a in self.alerts if a["id"] == alert_id), None)
