"""Audit trail of every command sent to a field device.

Each entry says who (``actor``, e.g. ``csms``), what (``action``, e.g.
``ocpp.SetChargingProfile``), to which device (``target``) and the request and outcome
(``detail``). Entries are kept in memory (the newest ``keep``) and, with a store, appended to
its audit log in batches off the event loop (so a burst of 500 commands costs one thread hop
per :meth:`flush`, not 500).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from typing import Any


class AuditTrail:
    """Append-only command log; ``store`` is any :class:`gridsync.store.Store` (optional)."""

    def __init__(self, store: Any = None, actor: str = "devices", keep: int = 10_000) -> None:
        self.store, self.actor = store, actor
        self.entries: deque[dict[str, Any]] = deque(maxlen=keep)
        self._pending: list[dict[str, Any]] = []
        self.count = 0

    def record(self, action: str, target: str, detail: dict[str, Any]) -> None:
        entry = {"ts_s": time.time(), "actor": self.actor, "action": action, "target": target}
        entry["detail"] = detail
        self.entries.append(entry)
        self.count += 1
        if self.store is not None:
            self._pending.append(entry)

    def find(self, action: str | None = None, target: str | None = None) -> list[dict[str, Any]]:
        """Entries in memory matching ``action`` and/or ``target``, oldest first."""
        return [
            e
            for e in self.entries
            if (action is None or e["action"] == action)
            and (target is None or e["target"] == target)
        ]

    async def flush(self) -> int:
        """Write the pending entries to the store; returns how many were written."""
        batch, self._pending = self._pending, []
        if batch and self.store is not None:
            await asyncio.to_thread(self._write, batch)
        return len(batch)

    def _write(self, batch: list[dict[str, Any]]) -> None:
        for e in batch:
            self.store.audit(e["actor"], "device", e["action"], e["target"], e["detail"])
