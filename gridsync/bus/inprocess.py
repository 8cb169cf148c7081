"""In-process bus: per-topic bounded logs in memory, one asyncio task per subscription.

The default for ``make run``, ``gridsync serve`` without a broker and unit tests. It honours
the same contract as the NATS JetStream bus (ordering, acknowledgement by returning,
redelivery, dead-lettering, durable positions, replay, msg-id de-duplication) within one
process; nothing survives the process.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import OrderedDict, deque
from dataclasses import replace
from typing import Any

from gridsync.aio import cancel_and_wait
from gridsync.bus.base import (
    TOPICS,
    BatchHandler,
    Bus,
    BusError,
    Deliver,
    Handler,
    Message,
    Subscription,
    check_topic,
)

log = logging.getLogger(__name__)


class _TopicLog:
    def __init__(self, name: str, retention: int, dedup_window_s: float) -> None:
        self.name = name
        self.messages: deque[Message] = deque(maxlen=retention)
        self.last_seq = 0
        self.changed = asyncio.Event()
        self.dedup: OrderedDict[str, tuple[int, float]] = OrderedDict()
        self.dedup_window_s = dedup_window_s

    def first_seq(self) -> int:
        return self.messages[0].seq if self.messages else self.last_seq + 1

    def after(self, seq: int) -> list[Message]:
        if not self.messages or seq >= self.last_seq:
            return []
        start = max(seq + 1 - self.messages[0].seq, 0)
        return [self.messages[i] for i in range(start, len(self.messages))]


class _InProcessSubscription(Subscription):
    def __init__(self, task: asyncio.Task) -> None:
        self._task = task

    async def unsubscribe(self) -> None:
        await cancel_and_wait(self._task)


class InProcessBus(Bus):
    """Bus inside one event loop. ``retention`` bounds each topic's log (oldest dropped)."""

    kind = "inprocess"

    def __init__(self, retention: int = 100_000, dedup_window_s: float = 120.0) -> None:
        self._topics = {t: _TopicLog(t, retention, dedup_window_s) for t in TOPICS}
        self._durable: dict[tuple[str, str], int] = {}
        self._subs: set[_InProcessSubscription] = set()
        self._closed = False

    async def close(self) -> None:
        self._closed = True
        for sub in list(self._subs):
            await sub.unsubscribe()
        self._subs.clear()

    async def publish(self, topic: str, data: dict[str, Any], *, msg_id: str | None = None) -> int:
        if self._closed:
            raise BusError("publish on a closed bus")
        tl = self._topics[check_topic(topic)]
        now = time.time()
        if msg_id is not None:
            while tl.dedup:
                oldest_id, (_, t) = next(iter(tl.dedup.items()))
                if now - t <= tl.dedup_window_s:
                    break
                tl.dedup.pop(oldest_id)
            if msg_id in tl.dedup:
                return tl.dedup[msg_id][0]
        tl.last_seq += 1
        mid = msg_id or uuid.uuid4().hex
        tl.messages.append(Message(topic, tl.last_seq, data, mid, now))
        if msg_id is not None:
            tl.dedup[msg_id] = (tl.last_seq, now)
        tl.changed.set()
        tl.changed = asyncio.Event()
        return tl.last_seq

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
        async def one(msgs: list[Message]) -> None:
            await handler(msgs[0])

        return self._subscribe(topic, one, durable, deliver, 1, max_deliver, retry_delay_s)

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
        return self._subscribe(
            topic, handler, durable, deliver, max_batch, max_deliver, retry_delay_s
        )

    def _subscribe(
        self,
        topic: str,
        handler: BatchHandler,
        durable: str | None,
        deliver: Deliver,
        max_batch: int,
        max_deliver: int | None,
        retry_delay_s: float,
    ) -> Subscription:
        tl = self._topics[check_topic(topic)]
        key = (topic, durable) if durable else None
        if key is not None and key in self._durable:
            cursor = self._durable[key]
        else:
            cursor = tl.first_seq() - 1 if deliver == "all" else tl.last_seq
            if key is not None:
                self._durable[key] = cursor

        async def run() -> None:
            nonlocal cursor
            while True:
                pending = tl.after(cursor)
                if not pending:
                    await tl.changed.wait()
                    continue
                for k in range(0, len(pending), max_batch):
                    chunk = pending[k : k + max_batch]
                    await self._deliver(chunk, handler, max_deliver, retry_delay_s)
                    cursor = chunk[-1].seq
                    if key is not None:
                        self._durable[key] = cursor

        sub = _InProcessSubscription(asyncio.create_task(run(), name=f"bus:{topic}:{durable}"))
        self._subs.add(sub)
        return sub

    async def _deliver(
        self,
        msgs: list[Message],
        handler: BatchHandler,
        max_deliver: int | None,
        retry_delay_s: float,
    ) -> None:
        attempt = 1
        while True:
            try:
                await handler([replace(m, deliveries=attempt) for m in msgs])
                return
            except asyncio.CancelledError:
                raise
            except Exception as err:  # the handler's failure is the nak
                first = msgs[0]
                if max_deliver is not None and attempt >= max_deliver:
                    log.warning(
                        "%s #%d (+%d) dead after %d attempts: %s",
                        first.topic, first.seq, len(msgs) - 1, attempt, err,
                    )  # fmt: skip
                    for m in msgs:
                        await self._report_dead(replace(m, deliveries=attempt), repr(err))
                    return
                log.debug("%s #%d attempt %d failed: %s", first.topic, first.seq, attempt, err)
                attempt += 1
                await asyncio.sleep(retry_delay_s)

    async def replay(self, topic: str, start_seq: int = 1, limit: int = 1000) -> list[Message]:
        return self._topics[check_topic(topic)].after(start_seq - 1)[:limit]

    async def last_seq(self, topic: str) -> int:
        return self._topics[check_topic(topic)].last_seq
