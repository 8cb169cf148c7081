"""The fleet's subject tree: one log, subjects ``<prefix>.<feeder>.<kind>``, consumers per worker.

Every feeder publishes on its own subjects (``gridsync.f0007.telemetry``, ``.plan``; the
coordinator adds ``.limit``, and ``gridsync.substation.bid`` for the VPP bid) and all of them
live in ONE JetStream stream (``<PREFIX>_FLEET`` on ``<prefix>.*.*``), so adding a feeder adds
no stream. A worker reads exactly its feeders' subjects through its own durable consumer
(``filter_subjects``, NATS >= 2.10; on older servers one durable consumer per feeder, named
after the worker). Messages carry a ``msg_id`` (``<feeder>.<kind>.<step>``): JetStream drops a
repeat inside its de-duplication window, so a step re-run after a worker restart is not
published twice.

``InProcessFleetBus`` keeps the same contract in memory for runs without services. The API is
synchronous (the NATS client runs its event loop in a background thread), which is what Ray
actors and the fleet's lock-step coordinator want.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import threading
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

from gridsync.bus.base import decode, encode
from gridsync.fleet.replicas import check_feeder_id

KINDS = ("telemetry", "plan", "limit", "bid")
SUBSTATION = "substation"
_PREFIX_RE = re.compile(r"^[a-z][a-z0-9_]{0,31}$")


class FleetBusError(RuntimeError):
    """The fleet bus cannot reach its broker or was given a bad subject."""


@dataclass(frozen=True)
class FleetMessage:
    """One message of the subject tree; ``seq`` is its position in the stream."""

    feeder_id: str
    kind: str
    seq: int
    data: dict[str, Any]
    msg_id: str


def _check(feeder_id: str, kind: str) -> None:
    if kind not in KINDS:
        msg = f"fleet bus kind {kind!r}: expected one of {', '.join(KINDS)}"
        raise FleetBusError(msg)
    if feeder_id != SUBSTATION:
        check_feeder_id(feeder_id)


class FleetBus(ABC):
    """Publish per-feeder messages and read them back per worker (see module doc)."""

    kind = "abstract"

    def __init__(self, prefix: str = "gridsync") -> None:
        if not _PREFIX_RE.match(prefix):
            msg = f"fleet bus prefix {prefix!r}: expected a lower-case letter then [a-z0-9_]"
            raise FleetBusError(msg)
        self.prefix = prefix

    def subject(self, feeder_id: str, kind: str) -> str:
        _check(feeder_id, kind)
        return f"{self.prefix}.{feeder_id}.{kind}"

    @abstractmethod
    def publish_many(self, items: list[tuple[str, str, dict, str]]) -> int:
        """Publish (feeder_id, kind, data, msg_id) items; returns how many were new (a
        repeated msg_id inside the de-duplication window is dropped)."""

    def publish(self, feeder_id: str, kind: str, data: dict, msg_id: str) -> bool:
        return self.publish_many([(feeder_id, kind, data, msg_id)]) == 1

    @abstractmethod
    def consume(
        self, worker: str, feeders: list[str], max_msgs: int = 1000, timeout_s: float = 1.0
    ) -> list[FleetMessage]:
        """Up to ``max_msgs`` new messages on ``feeders``' subjects for ``worker``'s durable
        consumer, acknowledged (a worker resumes after its last read message)."""

    @abstractmethod
    def count(self) -> int:
        """Messages in the stream."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release the connection."""


class InProcessFleetBus(FleetBus):
    """The subject tree in memory (one process; no broker)."""

    kind = "inprocess"

    def __init__(self, prefix: str = "gridsync", dedup_window_s: float = 120.0) -> None:
        super().__init__(prefix)
        self.messages: list[FleetMessage] = []
        self._seen: dict[str, float] = {}
        self._cursor: dict[str, int] = {}
        self.dedup_window_s = dedup_window_s
        self._lock = threading.Lock()

    def publish_many(self, items: list[tuple[str, str, dict, str]]) -> int:
        now, new = time.monotonic(), 0
        with self._lock:
            for feeder_id, kind, data, msg_id in items:
                self.subject(feeder_id, kind)
                seen = self._seen.get(msg_id)
                if seen is not None and now - seen <= self.dedup_window_s:
                    continue
                self._seen[msg_id] = now
                seq = len(self.messages) + 1
                self.messages.append(
                    FleetMessage(feeder_id, kind, seq, decode(encode(data)), msg_id)
                )
                new += 1
        return new

    def consume(
        self, worker: str, feeders: list[str], max_msgs: int = 1000, timeout_s: float = 1.0
    ) -> list[FleetMessage]:
        wanted = set(feeders)
        with self._lock:
            start = end = self._cursor.get(worker, 0)
            out = []
            for pos in range(start, len(self.messages)):
                if len(out) >= max_msgs:
                    break
                end = pos + 1
                if self.messages[pos].feeder_id in wanted:
                    out.append(self.messages[pos])
            self._cursor[worker] = end
        return out

    def count(self) -> int:
        return len(self.messages)


class NatsFleetBus(FleetBus):
    """The subject tree in one JetStream stream (file storage, ``max_age_s`` retention)."""

    kind = "nats"

    def __init__(
        self,
        url: str = "nats://127.0.0.1:4222",
        prefix: str = "gridsync",
        max_age_s: float = 7 * 86400,
        dedup_window_s: float = 120.0,
        connect_timeout_s: float = 2.0,
    ) -> None:
        super().__init__(prefix)
        self.url, self.max_age_s, self.dedup_window_s = url, max_age_s, dedup_window_s
        self.connect_timeout_s = connect_timeout_s
        self.stream = f"{prefix.upper()}_FLEET"
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._subs: dict[tuple[str, str], Any] = {}
        self._nc = self._js = None
        self._run(self._connect())

    def _run(self, coro, timeout: float = 60.0):
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    async def _connect(self) -> None:
        import nats

        from gridsync.bus.nats import ensure_stream

        try:
            self._nc = await nats.connect(
                self.url, connect_timeout=self.connect_timeout_s, max_reconnect_attempts=1
            )
        except Exception as err:
            msg = f"cannot reach NATS at {self.url}: {err!r}"
            raise FleetBusError(msg) from err
        self._js = self._nc.jetstream()
        await ensure_stream(
            self._js, self.stream, [f"{self.prefix}.*.*"], self.max_age_s, self.dedup_window_s
        )
        version = str(self._nc._server_info.get("version", "0.0"))
        self.multi_filter = tuple(int(x) for x in version.split(".")[:2]) >= (2, 10)

    def publish_many(self, items: list[tuple[str, str, dict, str]]) -> int:
        subjects = [self.subject(f, k) for f, k, _, _ in items]

        async def go() -> int:
            acks = await asyncio.gather(
                *(
                    self._js.publish(s, encode(d), headers={"Nats-Msg-Id": mid}, timeout=10.0)
                    for s, (_, _, d, mid) in zip(subjects, items, strict=True)
                )
            )
            return sum(not a.duplicate for a in acks)

        return self._run(go())

    async def _pull(self, durable: str, filters: list[str]):
        from nats.js import api

        key = (durable, ",".join(filters))
        if key not in self._subs:
            cfg = api.ConsumerConfig(
                durable_name=durable,
                deliver_policy=api.DeliverPolicy.ALL,
                ack_policy=api.AckPolicy.EXPLICIT,
                ack_wait=30.0,
                **({"filter_subjects": filters} if len(filters) > 1 else {}),
            )
            self._subs[key] = await self._js.pull_subscribe(
                filters[0] if len(filters) == 1 else "",
                durable=durable,
                stream=self.stream,
                config=cfg,
            )
        return self._subs[key]

    def consume(
        self, worker: str, feeders: list[str], max_msgs: int = 1000, timeout_s: float = 1.0
    ) -> list[FleetMessage]:
        from nats.errors import TimeoutError as NatsTimeoutError

        for f in feeders:
            check_feeder_id(f)
        if self.multi_filter:
            groups = [(f"{worker}", [f"{self.prefix}.{f}.*" for f in feeders])]
        else:  # NATS 2.9: one filter subject per consumer
            groups = [(f"{worker}-{f}", [f"{self.prefix}.{f}.*"]) for f in feeders]

        async def go() -> list[FleetMessage]:
            out: list[FleetMessage] = []
            for durable, filters in groups:
                psub = await self._pull(durable, filters)
                while len(out) < max_msgs:
                    try:
                        batch = await psub.fetch(min(256, max_msgs - len(out)), timeout=timeout_s)
                    except (NatsTimeoutError, TimeoutError):  # nothing more pending
                        break
                    for raw in batch:
                        _, feeder_id, kind = raw.subject.split(".")
                        out.append(
                            FleetMessage(
                                feeder_id,
                                kind,
                                int(raw.metadata.sequence.stream),
                                decode(raw.data),
                                (raw.headers or {}).get("Nats-Msg-Id", ""),
                            )
                        )
                        await raw.ack()
            return sorted(out, key=lambda m: m.seq)

        return self._run(go())

    def count(self) -> int:
        async def go() -> int:
            return int((await self._js.stream_info(self.stream)).state.messages)

        return self._run(go())

    def delete_stream(self) -> None:
        """Remove the stream (test clean-up)."""

        async def go() -> None:
            await self._js.delete_stream(self.stream)

        self._run(go())

    def close(self) -> None:
        async def go() -> None:
            # every publish was acknowledged already: nothing to drain, and draining pull
            # subscriptions can wait for a fetch that never comes
            for psub in self._subs.values():
                with contextlib.suppress(Exception):
                    await psub.unsubscribe()
            if self._nc is not None:
                await self._nc.close()

        try:
            self._run(go(), timeout=10.0)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=5.0)


def make_fleet_bus(url: str | None, prefix: str = "gridsync") -> FleetBus:
    """``None``/``inprocess`` -> in memory; ``nats://host:port`` -> JetStream."""
    if url in (None, "", "inprocess"):
        return InProcessFleetBus(prefix)
    if url.startswith(("nats://", "tls://")):
        return NatsFleetBus(url, prefix)
    msg = f"fleet bus url {url!r}: expected 'inprocess' or 'nats://host:port'"
    raise FleetBusError(msg)
