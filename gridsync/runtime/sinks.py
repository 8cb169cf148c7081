"""The runtime's store writer: telemetry readings, plans, alerts and dead letters -> store.

Two kinds of failure are told apart. :class:`~gridsync.store.StoreUnavailable` (the database
is down or restarting) is raised back to the bus, which redelivers after ``retry_delay_s``
up to ``max_deliver`` times, so an outage loses nothing acknowledged. Any other failure means
the message itself cannot be stored (a NaN or year-10^9 timestamp, a NUL where PostgreSQL
allows none, a malformed body): retrying cannot help, so the message is dead-lettered at
once with the reason and the writer goes on with the next one. A batch of readings that
fails that way is retried message by message, so only the bad messages are dead-lettered.

:attr:`StoreSink.progress` turns stalled when a run of readings has been failing (or hanging)
for longer than ``stall_after_s``: the database is down, nothing is being stored.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from gridsync.bus import Bus, Message, Subscription
from gridsync.data.progress import Progress
from gridsync.runtime.state import RuntimeState
from gridsync.store import ReadingBatch, Store, StoreUnavailable

log = logging.getLogger(__name__)


def readings_batch(data: dict[str, Any]) -> ReadingBatch:
    """A ``telemetry`` message of kind ``readings`` as a :class:`ReadingBatch`."""
    return ReadingBatch(
        data["ts_s"],
        data["device_id"],
        data["quantity"],
        data["unit"],
        data["value"],  # null (NaN over JSON) -> NaN
    )


def _summary(msg: Message) -> dict[str, Any]:
    """What a dead letter quotes of an unstorable message (readings only by their origin:
    a columnar batch can hold 20,000 rows)."""
    d = msg.data
    if msg.topic == "telemetry":
        n = d.get("ts_s")
        return {
            "kind": d.get("kind"),
            "source": d.get("source"),
            "seq": d.get("seq"),
            "n_readings": len(n) if isinstance(n, list) else None,
        }
    return d


class StoreSink:
    """Durable bus subscriptions writing to ``store`` (see the module docstring)."""

    def __init__(
        self,
        bus: Bus,
        store: Store,
        state: RuntimeState,
        *,
        max_deliver: int = 600,
        retry_delay_s: float = 1.0,
        stall_after_s: float = 30.0,
    ) -> None:
        self.bus, self.store, self.state = bus, store, state
        self.max_deliver, self.retry_delay_s = max_deliver, retry_delay_s
        self.progress = Progress("store-sink", stall_after_s=stall_after_s)
        self.last_stored_s: float | None = None
        self._done_seq = 0

    async def subscribe(self) -> list[Subscription]:
        """Dead letters first: the other sinks may dead-letter a message as soon as they
        start (one left over from before a restart), and a new durable only sees messages
        published after it exists."""
        subs = []
        for topic in ("deadletter", "alerts", "plans"):
            subs.append(
                await self.bus.subscribe(
                    topic,
                    self._one,
                    durable=f"store-sink-{topic}",
                    max_deliver=self.max_deliver,
                    retry_delay_s=self.retry_delay_s,
                )
            )
        subs.append(
            await self.bus.subscribe_batches(
                "telemetry",
                self._readings,
                durable="store-sink-telemetry",
                max_batch=128,
                max_deliver=self.max_deliver,
                retry_delay_s=self.retry_delay_s,
            )
        )
        return subs

    # progress -----------------------------------------------------------------------------
    def _finished(self, msgs: list[Message]) -> None:
        self._done_seq = max(self._done_seq, max(m.seq for m in msgs))

    async def drain(self, timeout_s: float) -> bool:
        """Wait until every telemetry message published so far is finished (for the
        in-process bus, whose messages do not outlive the process)."""
        last = await self.bus.last_seq("telemetry")
        end = time.monotonic() + timeout_s
        while self._done_seq < last and time.monotonic() < end:
            await asyncio.sleep(0.05)
        return self._done_seq >= last

    # writers ------------------------------------------------------------------------------
    async def _readings(self, msgs: list[Message]) -> None:
        """Write a run of telemetry messages in one store transaction (each message's id
        keeps a redelivery from being stored twice); fall back to one by one on a failure
        that is not an outage."""
        readings = [m for m in msgs if m.data.get("kind") == "readings"]
        if not readings:  # snapshots only: nothing to store, no progress to report
            self._finished(msgs)
            return
        # pending until written or dead-lettered: a run that keeps failing (or hangs) stalls
        self.progress.set_pending(len(readings))
        items, owners = [], []
        for m in readings:
            try:
                items.append((readings_batch(m.data), m.msg_id or f"bus:telemetry:{m.seq}"))
                owners.append(m)
            except Exception as err:
                await self._dead_letter(m, err)
        try:
            await self._write(items)
        except StoreUnavailable:
            raise
        except Exception:
            for item, m in zip(items, owners, strict=True):
                try:
                    await self._write([item])
                except StoreUnavailable:
                    raise
                except Exception as err:
                    await self._dead_letter(m, err)
        self.progress.done(len(readings))
        self._finished(msgs)

    async def _write(self, items: list[tuple[ReadingBatch, str]]) -> None:
        if items:
            n = await asyncio.to_thread(self.store.write_readings_many, items)
            self.state.counters["stored_readings"] += n
            self.last_stored_s = time.time()

    async def _one(self, msg: Message) -> None:
        try:
            await self._store(msg, msg.data)
        except StoreUnavailable:
            raise
        except Exception as err:
            if msg.topic != "deadletter":
                await self._dead_letter(msg, err)
                return
            await self._store_reduced(msg, err)
        if msg.topic == "deadletter":
            self.state.counters["deadletters"] += 1

    async def _store_reduced(self, msg: Message, err: BaseException) -> None:
        # a dead letter that cannot be stored as it is: keep its reason, drop the body
        log.warning("dead letter #%d unstorable as is (%r); storing its reason", msg.seq, err)
        d = msg.data
        reduced = {"reason": str(d.get("reason", ""))[:500], "unstorable": repr(err)[:500]}
        try:
            await self._store(msg, reduced)
        except StoreUnavailable:
            raise
        except Exception as err2:
            log.error("dead letter #%d could not be stored: %r", msg.seq, err2)

    async def _store(self, msg: Message, d: dict[str, Any]) -> None:
        if msg.topic == "plans":
            await asyncio.to_thread(
                self.store.put_plan,
                str(d.get("plan_id") or msg.msg_id),
                float(d.get("created_s") or msg.published_at),
                str(d.get("source", "")),
                d,
                d.get("valid_from_s"),
                d.get("valid_to_s"),
            )
        elif msg.topic == "alerts":
            await asyncio.to_thread(
                self.store.add_event,
                str(d.get("kind", "alert")),
                str(d.get("message", "")),
                severity=str(d.get("severity", "info")),
                source=str(d.get("source", "")),
                payload=d,
            )
        elif msg.topic == "deadletter":
            await asyncio.to_thread(
                self.store.add_event,
                "deadletter",
                str(d.get("reason", ""))[:500],
                severity="warning",
                source=str(d.get("source", d.get("source_topic", ""))),
                payload=d,
            )

    async def _dead_letter(self, msg: Message, err: BaseException) -> None:
        """Report an unstorable message on ``deadletter`` with the reason and move on."""
        reason = f"store refused {msg.topic} #{msg.seq}: {type(err).__name__}: {err}"[:500]
        log.warning("%s", reason)
        self.state.counters["unstorable"] += 1
        await self.bus.publish(
            "deadletter",
            {
                "reason": reason,
                "source_topic": msg.topic,
                "source_seq": msg.seq,
                "msg_id": msg.msg_id,
                "deliveries": msg.deliveries,
                "data": _summary(msg),
                "at": time.time(),
            },
            msg_id=f"unstorable:{msg.topic}:{msg.msg_id or msg.seq}",
        )
