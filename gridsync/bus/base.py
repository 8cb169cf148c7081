"""The message-bus contract shared by the in-process and NATS JetStream implementations.

Every topic is an append-only, sequence-numbered log. Subscribers get messages in order; a
handler that returns acknowledges the message, a handler that raises asks for redelivery
(after ``retry_delay_s``) until ``max_deliver`` attempts, after which the message is reported
on the ``deadletter`` topic and skipped. A durable subscription remembers its last
acknowledged sequence across unsubscribe/resubscribe (and, on NATS, across restarts).
Publishing with the same ``msg_id`` twice inside the de-duplication window stores it once.
``subscribe_batches`` delivers (and acknowledges) runs of pending messages together.
"""

from __future__ import annotations

import json
import math
import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

TOPICS: tuple[str, ...] = (
    "telemetry",
    "forecasts",
    "plans",
    "setpoints",
    "alerts",
    "approvals",
    "deadletter",
)


class BusError(RuntimeError):
    """The bus could not perform an operation (bad topic, broker unreachable, closed bus)."""


def check_topic(topic: str) -> str:
    if topic not in TOPICS:
        msg = f"unknown bus topic {topic!r}; expected one of {', '.join(TOPICS)}"
        raise BusError(msg)
    return topic


@dataclass(frozen=True)
class Message:
    """One delivered message. ``seq`` is the topic's sequence number (1, 2, ...);
    ``deliveries`` counts delivery attempts (1 on first delivery)."""

    topic: str
    seq: int
    data: dict[str, Any]
    msg_id: str
    published_at: float
    deliveries: int = 1


Handler = Callable[[Message], Awaitable[None]]
BatchHandler = Callable[[list[Message]], Awaitable[None]]
Deliver = Literal["new", "all"]


def _default(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    if hasattr(obj, "isoformat"):
        return obj.isoformat()
    msg = f"cannot encode {type(obj).__name__} for the bus"
    raise TypeError(msg)


def encode(data: dict[str, Any]) -> bytes:
    """JSON-encode a payload (numpy arrays become lists, NaN becomes null)."""
    return json.dumps(data, default=_default, allow_nan=True, separators=(",", ":")).encode()


def decode(raw: bytes) -> dict[str, Any]:
    data = json.loads(raw)
    if not isinstance(data, dict):
        msg = f"bus payload must be a JSON object, got {type(data).__name__}"
        raise BusError(msg)
    return data


def finite_or_none(x: float) -> float | None:
    return x if math.isfinite(x) else None


class Subscription(ABC):
    """A live subscription; ``unsubscribe`` stops delivery (a durable keeps its position)."""

    @abstractmethod
    async def unsubscribe(self) -> None: ...


class Bus(ABC):
    """Asynchronous publish/subscribe over the fixed :data:`TOPICS`."""

    kind: str = "abstract"

    async def connect(self) -> None:  # noqa: B027 - optional hook
        """Open connections / create streams. Idempotent."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Stop all subscriptions and release connections."""

    @abstractmethod
    async def publish(self, topic: str, data: dict[str, Any], *, msg_id: str | None = None) -> int:
        """Append ``data`` to ``topic``; returns its sequence number (the original one for a
        duplicate ``msg_id``)."""

    @abstractmethod
    async def subscribe(
        self,
        topic: str,
        handler: Handler,
        *,
        durable: str | None = None,
        deliver: Deliver = "new",
        max_deliver: int | None = 5,
        retry_delay_s: float = 0.2,
    ) -> Subscription:
        """Call ``handler`` for each message of ``topic``.

        ``deliver="new"`` starts after the current last message, ``"all"`` from the first
        retained one; a durable that already exists resumes after its last acknowledged
        message regardless. ``max_deliver=None`` retries forever (for sinks that must not
        lose data while, e.g., the database restarts).
        """

    @abstractmethod
    async def subscribe_batches(
        self,
        topic: str,
        handler: BatchHandler,
        *,
        durable: str | None = None,
        deliver: Deliver = "new",
        max_batch: int = 256,
        max_deliver: int | None = 5,
        retry_delay_s: float = 0.2,
    ) -> Subscription:
        """Like :meth:`subscribe`, but ``handler`` gets up to ``max_batch`` pending messages at
        once (in order); returning acknowledges all of them, raising asks for all to be
        redelivered. Lets a sink write many small messages in one transaction."""

    @abstractmethod
    async def replay(self, topic: str, start_seq: int = 1, limit: int = 1000) -> list[Message]:
        """Up to ``limit`` retained messages of ``topic`` from ``start_seq`` on, in order."""

    @abstractmethod
    async def last_seq(self, topic: str) -> int:
        """Sequence number of the newest message on ``topic`` (0 when empty)."""

    async def _report_dead(self, msg: Message, reason: str) -> None:
        if msg.topic == "deadletter":
            return
        await self.publish(
            "deadletter",
            {
                "reason": reason,
                "source_topic": msg.topic,
                "source_seq": msg.seq,
                "deliveries": msg.deliveries,
                "data": msg.data,
                "at": time.time(),
            },
        )

    async def __aenter__(self) -> Bus:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
