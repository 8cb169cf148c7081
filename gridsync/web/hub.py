"""Fan-out of console events to Server-Sent-Event connections (one queue per browser)."""

from __future__ import annotations

import asyncio
import json
import math
from typing import Any

import numpy as np

QUEUE_LIMIT = 64


def clean(obj: Any) -> Any:
    """JSON-safe copy: NaN/inf become null (browsers reject them), numpy scalars become floats."""
    if isinstance(obj, dict):
        return {k: clean(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [clean(v) for v in obj]
    if isinstance(obj, float | np.floating):
        return float(obj) if math.isfinite(obj) else None
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


class EventHub:
    """Thread-safe publish; each subscriber drains its own bounded queue.

    A slow browser loses old ``state`` frames (only the newest matters) but never approval
    events: when its queue is full the oldest frame is dropped to make room.
    """

    def __init__(self) -> None:
        self._queues: set[asyncio.Queue[str]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def subscribe(self) -> asyncio.Queue[str]:
        q: asyncio.Queue[str] = asyncio.Queue(maxsize=QUEUE_LIMIT)
        self._queues.add(q)
        return q

    def unsubscribe(self, q: asyncio.Queue[str]) -> None:
        self._queues.discard(q)

    @property
    def subscribers(self) -> int:
        return len(self._queues)

    @staticmethod
    def frame(event: str, payload: dict[str, Any]) -> str:
        data = json.dumps(clean(payload), separators=(",", ":"), allow_nan=False, default=str)
        return f"event: {event}\ndata: {data}\n\n"

    def _put(self, text: str) -> None:
        for q in list(self._queues):
            if q.full():
                q.get_nowait()
            q.put_nowait(text)

    def publish(self, event: str, payload: dict[str, Any]) -> None:
        text = self.frame(event, payload)
        loop = self._loop
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if loop is None or running is loop:
            self._put(text)
        else:
            loop.call_soon_threadsafe(self._put, text)
