"""Progress of one stage of the ingestion pipeline, and stall detection for ``/health``.

A stage (the MQTT bridge, the store sink) calls :meth:`Progress.pending` when work arrives
and :meth:`Progress.done` when it finished an item (stored, forwarded or dead-lettered). The
stage is *stalled* when work has been waiting for more than ``stall_after_s`` without any
item finishing: a poison message retried forever, a sink stuck on one bad value, a broker or
database that stopped answering. An idle stage (nothing pending) is never stalled.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any


@dataclass
class Progress:
    """Counts and times of one stage (times are UNIX seconds)."""

    name: str
    stall_after_s: float = 30.0
    done_total: int = 0
    last_done_s: float | None = None
    _pending: int = 0
    _waiting_since_s: float | None = None

    def pending(self, n: int = 1, now_s: float | None = None) -> None:
        """``n`` items arrived and wait for this stage."""
        self._pending += n
        if self._waiting_since_s is None:
            self._waiting_since_s = time.time() if now_s is None else now_s

    def done(self, n: int = 1, now_s: float | None = None) -> None:
        """``n`` items finished; what is still pending waits from now on."""
        now = time.time() if now_s is None else now_s
        self.done_total += n
        self.last_done_s = now
        self._pending = max(self._pending - n, 0)
        self._waiting_since_s = now if self._pending else None

    def set_pending(self, n: int, now_s: float | None = None) -> None:
        """Replace the pending count (for stages that measure their backlog directly)."""
        now = time.time() if now_s is None else now_s
        self._pending = max(n, 0)
        if not self._pending:
            self._waiting_since_s = None
        elif self._waiting_since_s is None:
            self._waiting_since_s = now

    def stalled_for_s(self, now_s: float | None = None) -> float:
        """Seconds pending work has waited without progress (0 when idle)."""
        if self._waiting_since_s is None:
            return 0.0
        return max((time.time() if now_s is None else now_s) - self._waiting_since_s, 0.0)

    def stalled(self, now_s: float | None = None) -> bool:
        return self.stalled_for_s(now_s) > self.stall_after_s

    def to_dict(self, now_s: float | None = None) -> dict[str, Any]:
        return {
            "stage": self.name,
            "status": "stalled" if self.stalled(now_s) else "ok",
            "pending": self._pending,
            "done": self.done_total,
            "last_done_s": self.last_done_s,
            "waiting_s": round(self.stalled_for_s(now_s), 3),
            "stall_after_s": self.stall_after_s,
        }
