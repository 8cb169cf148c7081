"""NATS JetStream bus: one stream per topic (``<prefix>_<TOPIC>`` on subject ``<prefix>.<topic>``).

Streams are file-backed and keep messages for ``max_age_s`` (durable, replayable). Each
subscription is a pull consumer with explicit acknowledgement: the handler returning acks,
raising naks with a delay, and after ``max_deliver`` attempts the message is terminated and
reported on the deadletter topic. Durable consumers survive reconnects and process restarts.
Publishing sets ``Nats-Msg-Id`` so JetStream drops duplicates inside its window.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
import uuid
from dataclasses import replace
from typing import Any

import nats
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import api
from nats.js.errors import NotFoundError

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
    decode,
    encode,
)

log = logging.getLogger(__name__)
_PREFIX_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,31}$")


async def ensure_stream(
    js, name: str, subjects: list[str], max_age_s: float, dedup_window_s: float
) -> None:
    """Create the file-backed stream ``name`` on ``subjects``, or bring an existing one to
    this retention (``max_age_s``) and de-duplication window (``dedup_window_s``)."""
    cfg = api.StreamConfig(
        name=name,
        subjects=subjects,
        storage=api.StorageType.FILE,
        max_age=max_age_s,
        duplicate_window=dedup_window_s,
    )
    try:
        await js.add_stream(cfg)
    except Exception:
        await js.update_stream(cfg)


class _NatsSubscription(Subscription):
    def __init__(self, task: asyncio.Task, psub, delete_consumer) -> None:
        self._task = task
        self._psub = psub
        self._delete_consumer = delete_consumer

    async def unsubscribe(self) -> None:
        await cancel_and_wait(self._task)
        with contextlib.suppress(Exception):
            await self._psub.unsubscribe()
        if self._delete_consumer is not None:
            with contextlib.suppress(Exception):
                await self._delete_consumer()


class NatsBus(Bus):
    """JetStream-backed bus. ``prefix`` namespaces streams (tests use a unique one)."""

    kind = "nats"

    def __init__(
        self,
        url: str = "nats://127.0.0.1:4222",
        *,
        prefix: str = "gridsync",
        max_age_s: float = 7 * 86400,
        dedup_window_s: float = 120.0,
        connect_timeout_s: float = 2.0,
    ) -> None:
        if not _PREFIX_RE.match(prefix):
            msg = f"NATS stream prefix {prefix!r}: expected a letter then up to 31 letters/digits/_"
            raise BusError(msg)
        self.url, self.prefix = url, prefix
        self.max_age_s, self.dedup_window_s = max_age_s, dedup_window_s
        self.connect_timeout_s = connect_timeout_s
        self._nc = None
        self._js = None
        self._subs: set[_NatsSubscription] = set()
        self._down = self._closing = False

    def stream(self, topic: str) -> str:
        return f"{self.prefix}_{check_topic(topic)}".upper()

    def subject(self, topic: str) -> str:
        return f"{self.prefix}.{check_topic(topic)}"

    async def connect(self) -> None:
        if self._nc is not None:
            return
        self._closing = self._down = False
        try:
            self._nc = await nats.connect(
                self.url,
                connect_timeout=self.connect_timeout_s,
                max_reconnect_attempts=-1,
                reconnect_time_wait=0.5,
                allow_reconnect=True,
                error_cb=self._on_error,
                disconnected_cb=self._on_disconnect,
                reconnected_cb=self._on_reconnect,
            )
        except Exception as err:
            self._nc = None
            msg = f"cannot reach NATS at {self.url}: {err!r}"
            raise BusError(msg) from err
        self._js = self._nc.jetstream()
        for topic in TOPICS:
            await ensure_stream(
                self._js, self.stream(topic), [self.subject(topic)],
                self.max_age_s, self.dedup_window_s,
            )  # fmt: skip

    # nats-py prints a traceback per failed reconnect attempt unless given callbacks
    async def _on_error(self, err: Exception) -> None:
        log.debug("NATS %s: %r", self.url, err)

    async def _on_disconnect(self) -> None:
        if not self._closing and not self._down:
            self._down = True  # nats-py calls this again after every failed reconnect
            log.warning("NATS %s: disconnected; reconnecting", self.url)

    async def _on_reconnect(self) -> None:
        self._down = False
        log.warning("NATS %s: reconnected", self.url)

    async def close(self) -> None:
        for sub in list(self._subs):
            await sub.unsubscribe()
        self._subs.clear()
        if self._nc is not None:
            self._closing = True
            with contextlib.suppress(Exception):
                await self._nc.drain()
            self._nc = self._js = None

    async def delete_streams(self) -> None:
        """Remove this prefix's streams (test clean-up)."""
        for topic in TOPICS:
            with contextlib.suppress(NotFoundError):
                await self._jetstream().delete_stream(self.stream(topic))

    def _jetstream(self):
        if self._js is None:
            raise BusError("NATS bus is not connected; call connect() first")
        return self._js

    async def publish(self, topic: str, data: dict[str, Any], *, msg_id: str | None = None) -> int:
        js = self._jetstream()
        mid = msg_id or uuid.uuid4().hex
        headers = {"Nats-Msg-Id": mid, "Gs-Published": repr(time.time())}
        ack = await js.publish(self.subject(topic), encode(data), headers=headers, timeout=5.0)
        return int(ack.seq)

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
        async def each(batch: list) -> None:
            for raw in batch:
                await self._handle([raw], topic, handler, max_deliver, retry_delay_s, single=True)

        return await self._subscribe(topic, each, durable, deliver, 256, max_deliver)

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
        async def whole(batch: list) -> None:
            await self._handle(batch, topic, handler, max_deliver, retry_delay_s, single=False)

        return await self._subscribe(topic, whole, durable, deliver, max_batch, max_deliver)

    async def _subscribe(self, topic, on_fetch, durable, deliver, max_batch, max_deliver):
        js = self._jetstream()
        stream = self.stream(topic)
        cfg = api.ConsumerConfig(
            durable_name=durable,
            deliver_policy=api.DeliverPolicy.ALL if deliver == "all" else api.DeliverPolicy.NEW,
            ack_policy=api.AckPolicy.EXPLICIT,
            ack_wait=30.0,
            max_deliver=-1 if max_deliver is None else max_deliver + 1,
            inactive_threshold=None if durable else 60.0,
        )
        if durable is not None:
            await self._bound_redelivery(stream, durable, cfg.max_deliver)
        psub = await js.pull_subscribe(
            self.subject(topic), durable=durable, stream=stream, config=cfg
        )

        async def run() -> None:
            while True:
                try:
                    batch = await psub.fetch(max_batch, timeout=1.0)
                except NatsTimeoutError:
                    continue
                except asyncio.CancelledError:
                    raise
                except Exception as err:  # connection hiccup: back off and fetch again
                    log.debug("fetch on %s failed: %r", stream, err)
                    await asyncio.sleep(0.5)
                    continue
                await on_fetch(batch)

        delete = None
        if durable is None:
            info = await psub.consumer_info()
            name = info.name

            async def delete() -> None:
                await js.delete_consumer(stream, name)

        sub = _NatsSubscription(asyncio.create_task(run(), name=f"nats:{topic}"), psub, delete)
        self._subs.add(sub)
        return sub

    async def _bound_redelivery(self, stream: str, durable: str, max_deliver: int) -> None:
        """A durable consumer keeps the configuration it was created with; one made by an
        older runtime with unbounded redelivery (-1) gets this subscription's bound."""
        js = self._jetstream()
        try:
            info = await js.consumer_info(stream, durable)
        except NotFoundError:
            return
        if info.config.max_deliver != max_deliver:
            log.info(
                "%s/%s: max_deliver %s -> %s", stream, durable, info.config.max_deliver, max_deliver
            )
            await js.add_consumer(stream, config=replace(info.config, max_deliver=max_deliver))

    async def _handle(self, raws, topic, handler, max_deliver, retry_delay_s, single) -> None:
        """Decode, call ``handler`` (one message or the list), then ack all or nak all."""
        msgs, ok = [], []
        for raw in raws:
            meta, hdr = raw.metadata, raw.headers or {}
            try:
                data = decode(raw.data)
            except Exception as err:
                await raw.term()
                log.warning("undecodable message on %s #%s: %r", topic, meta.sequence.stream, err)
                continue
            msgs.append(
                Message(
                    topic=topic,
                    seq=int(meta.sequence.stream),
                    data=data,
                    msg_id=hdr.get("Nats-Msg-Id", ""),
                    published_at=float(hdr.get("Gs-Published", "0") or 0),
                    deliveries=int(meta.num_delivered),
                )
            )
            ok.append(raw)
        if not msgs:
            return
        try:
            await handler(msgs[0] if single else msgs)
        except asyncio.CancelledError:
            raise
        except Exception as err:
            for msg, raw in zip(msgs, ok, strict=True):
                if max_deliver is not None and msg.deliveries >= max_deliver:
                    await self._report_dead(msg, repr(err))
                    await raw.term()
                else:
                    await raw.nak(delay=retry_delay_s)
            return
        for raw in ok:
            await raw.ack()

    async def replay(self, topic: str, start_seq: int = 1, limit: int = 1000) -> list[Message]:
        js = self._jetstream()
        stream = self.stream(topic)
        last = await self.last_seq(topic)
        out: list[Message] = []
        if last < start_seq or limit <= 0:
            return out
        cfg = api.ConsumerConfig(
            deliver_policy=api.DeliverPolicy.BY_START_SEQUENCE,
            opt_start_seq=start_seq,
            ack_policy=api.AckPolicy.NONE,
            inactive_threshold=30.0,
        )
        psub = await js.pull_subscribe(self.subject(topic), stream=stream, config=cfg)
        try:
            while len(out) < limit:
                try:
                    batch = await psub.fetch(min(limit - len(out), 512), timeout=1.0)
                except NatsTimeoutError:
                    break
                for raw in batch:
                    hdr = raw.headers or {}
                    seq = int(raw.metadata.sequence.stream)
                    out.append(
                        Message(
                            topic,
                            seq,
                            decode(raw.data),
                            hdr.get("Nats-Msg-Id", ""),
                            float(hdr.get("Gs-Published", "0") or 0),
                        )
                    )
                if out and out[-1].seq >= last:
                    break
        finally:
            with contextlib.suppress(Exception):
                await psub.unsubscribe()
        return out[:limit]

    async def last_seq(self, topic: str) -> int:
        info = await self._jetstream().stream_info(self.stream(topic))
        return int(info.state.last_seq)
