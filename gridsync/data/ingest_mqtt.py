"""MQTT side of ingestion: the bridge (broker -> validation -> bus) and a device publisher.

Devices publish :mod:`telemetry messages <gridsync.data.ingest>` with QoS 1 on
``gridsync/telemetry/<source>``; the bridge rejects a message whose ``source`` is not the
topic's last level (with per-device broker credentials and ACLs, see ``deploy/mosquitto/``,
that binds every reading to an authenticated device).

The bridge keeps a persistent MQTT v5 session under a stable client id (``clean_start``
off, a session expiry of ``session_expiry_s``) and acknowledges each message only after it
was forwarded to the bus or dead-lettered: a bridge restart resumes the session and the
broker redelivers what was not acknowledged, so telemetry the broker confirmed is not lost.
A message that cannot be forwarded is retried ``max_attempts`` times, then dead-lettered
with its reason; only when the bus refuses the dead letter too (the bus is down) is it held
and retried, unacknowledged. :attr:`MqttBridge.progress` tells ``/health`` when the bridge
stalls.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from gridsync.aio import cancel_and_wait
from gridsync.bus.base import encode
from gridsync.data.ingest import Ingestor
from gridsync.data.progress import Progress

log = logging.getLogger(__name__)
TELEMETRY_TOPIC = "gridsync/telemetry"


class MqttUnavailable(ConnectionError):
    """The broker could not be reached (message names host and port)."""


def _client(
    client_id: str,
    clean: bool,
    manual_ack: bool = False,
    username: str | None = None,
    password: str | None = None,
    v5: bool = False,
) -> mqtt.Client:
    if v5:
        c = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=mqtt.MQTTv5,
            manual_ack=manual_ack,
        )
    else:
        c = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=client_id,
            clean_session=clean,
            manual_ack=manual_ack,
        )
    if username is not None:
        c.username_pw_set(username, password)
    c.reconnect_delay_set(min_delay=1, max_delay=5)
    c.max_inflight_messages_set(200)
    c.max_queued_messages_set(0)
    return c


class MqttBridge:
    """Subscribes to ``<topic_root>/#`` and feeds every payload to an :class:`Ingestor`."""

    def __init__(
        self,
        ingestor: Ingestor,
        host: str = "127.0.0.1",
        port: int = 1883,
        *,
        topic_root: str = TELEMETRY_TOPIC,
        client_id: str = "gridsync-bridge",
        username: str | None = None,
        password: str | None = None,
        session_expiry_s: int = 86_400,
        queue_max: int = 10_000,
        window: int = 64,
        max_attempts: int = 5,
        retry_delay_s: float = 0.5,
        stall_after_s: float = 30.0,
    ) -> None:
        if max_attempts < 1:
            msg = f"max_attempts: expected >= 1 (got {max_attempts})"
            raise ValueError(msg)
        self.ingestor, self.host, self.port = ingestor, host, port
        self.root = topic_root.rstrip("/")
        self.topic = f"{self.root}/#"
        self.client_id, self.username, self.password = client_id, username, password
        self.session_expiry_s = session_expiry_s
        self.queue_max, self.window = queue_max, window
        self.max_attempts, self.retry_delay_s = max_attempts, retry_delay_s
        self.progress = Progress("mqtt-bridge", stall_after_s=stall_after_s)
        self.connected = threading.Event()
        self.connects = 0
        self.sessions_resumed = 0
        self.refused = ""
        self._client: mqtt.Client | None = None
        self._queue: asyncio.Queue | None = None
        self._task: asyncio.Task | None = None
        self._stopping = False
        self._in_window = False

    def source_of(self, topic: str) -> str:
        """The sender a topic stands for: its level under the root (``""`` if none)."""
        return topic[len(self.root) + 1 :] if topic.startswith(self.root + "/") else ""

    async def start(self, timeout_s: float = 5.0) -> None:
        loop = asyncio.get_running_loop()
        self._queue = asyncio.Queue(self.queue_max)
        self._stopping = False
        c = _client(
            self.client_id, False, manual_ack=True, username=self.username,
            password=self.password, v5=True,
        )  # fmt: skip

        def on_connect(client, userdata, flags, reason_code, properties) -> None:
            if reason_code.is_failure:
                self.refused = str(reason_code)
                return
            self.connects += 1
            self.sessions_resumed += bool(flags.session_present)
            client.subscribe(self.topic, qos=1)

        def on_subscribe(client, userdata, mid, reason_codes, properties) -> None:
            # ready only once the broker confirmed the subscription
            if reason_codes and not reason_codes[0].is_failure:
                self.connected.set()
            elif reason_codes:
                self.refused = f"subscription to {self.topic} refused: {reason_codes[0]}"

        def on_disconnect(client, userdata, flags, reason_code, properties) -> None:
            self.connected.clear()
            if reason_code == "Session taken over":
                log.error(
                    "bridge: another client connected as %r and took over the session;"
                    " give each bridge its own client id", self.client_id,
                )  # fmt: skip

        def on_message(client, userdata, msg) -> None:
            item = (msg.topic, msg.payload, msg.mid, msg.qos)
            loop.call_soon_threadsafe(self._enqueue, item)

        c.on_connect, c.on_disconnect, c.on_message = on_connect, on_disconnect, on_message
        c.on_subscribe = on_subscribe
        self._client = c
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = int(self.session_expiry_s)
        c.connect_async(self.host, self.port, keepalive=15, clean_start=False, properties=props)
        c.loop_start()
        self._task = asyncio.create_task(self._consume(), name="mqtt-bridge")
        ok = await asyncio.to_thread(self.connected.wait, timeout_s)
        if not ok:
            await self.stop()
            why = f" ({self.refused})" if self.refused else ""
            msg = (
                f"MQTT broker at {self.host}:{self.port} not reachable within {timeout_s:g} s{why}"
            )
            raise MqttUnavailable(msg)

    def _enqueue(self, item: tuple) -> None:
        assert self._queue is not None
        self._queue.put_nowait(item)
        self.progress.pending()

    async def _consume(self) -> None:
        """Forward what is queued in windows of up to ``window`` messages: validation runs
        in arrival order, the bus publishes await their acknowledgements together, and the
        broker gets its acknowledgements in arrival order once the whole window is through."""
        assert self._queue is not None
        while not self._stopping:
            items = [await self._queue.get()]
            while len(items) < self.window and not self._queue.empty():
                items.append(self._queue.get_nowait())
            self._in_window = True
            try:
                await self._forward(items)
            finally:
                self._in_window = False
            if self._client is not None:
                for _, _, mid, qos in items:
                    if qos > 0:
                        self._client.ack(mid, qos)
            self.progress.done(len(items))

    async def _submit(self, topic: str, payload: bytes):
        return await self.ingestor.submit(
            payload, origin=f"mqtt:{topic}", source=self.source_of(topic)
        )

    async def _forward(self, items: list[tuple]) -> None:
        """Submit a window; retry what failed up to ``max_attempts`` times, then settle it."""
        todo = [(t, p) for t, p, _, _ in items]
        for attempt in range(1, self.max_attempts + 1):
            done = await asyncio.gather(
                *(self._submit(t, p) for t, p in todo), return_exceptions=True
            )
            failed = []
            for item, res in zip(todo, done, strict=True):
                if isinstance(res, asyncio.CancelledError):
                    raise res
                if isinstance(res, BaseException):
                    failed.append((item, res))
            if not failed:
                return
            log.warning(
                "bridge: %d message(s) not forwarded (attempt %d of %d): %r",
                len(failed), attempt, self.max_attempts, failed[0][1],
            )  # fmt: skip
            if attempt == self.max_attempts:
                break
            await asyncio.sleep(self.retry_delay_s)
            todo = [item for item, _ in failed]
        for (topic, payload), err in failed:
            await self._settle(topic, payload, err)

    async def _settle(self, topic: str, payload: bytes, err: BaseException) -> None:
        """Dead-letter a message that could not be forwarded. If the bus refuses the dead
        letter too, the bus is down: hold the message (unacknowledged, nothing lost) and
        retry, forwarding first, until one of them goes through."""
        delay = self.retry_delay_s
        while True:
            reason = f"not forwarded after {self.max_attempts} attempts: {err!r}"[:500]
            try:
                await self.ingestor.dead_letter(payload, f"mqtt:{topic}", reason)
                return
            except asyncio.CancelledError:
                raise
            except Exception as dl_err:
                log.warning("bridge: bus unavailable (%r); holding the message", dl_err)
            await asyncio.sleep(delay)
            delay = min(2 * delay, 5.0)
            try:
                await self._submit(topic, payload)
                return
            except asyncio.CancelledError:
                raise
            except Exception as e:
                err = e

    async def stop(self, drain_timeout_s: float = 10.0) -> None:
        """Finish the window being forwarded (its messages are acknowledged), then
        disconnect: what is still queued stays unacknowledged, so the broker redelivers it
        to the next session under the same client id."""
        self._stopping = True
        if self._task is not None:
            if self._in_window:
                await asyncio.wait({self._task}, timeout=drain_timeout_s)
            await cancel_and_wait(self._task)
            self._task = None
        if self._client is not None:
            self._client.disconnect()
            self._client.loop_stop()
            self._client = None

    @property
    def backlog(self) -> int:
        return self._queue.qsize() if self._queue is not None else 0


class MqttTelemetryPublisher:
    """A device or data concentrator publishing telemetry messages (used by the demo twin,
    the bench and tests). ``publish`` is thread-safe and returns once queued in paho."""

    def __init__(
        self,
        source: str,
        host: str = "127.0.0.1",
        port: int = 1883,
        topic_root: str = TELEMETRY_TOPIC,
        *,
        username: str | None = None,
        password: str | None = None,
    ) -> None:
        self.source, self.host, self.port = source, host, port
        self.topic = f"{topic_root}/{source}"
        self.seq = 0
        self._c = _client(f"gridsync-dev-{source}", True, username=username, password=password)
        self._connected = threading.Event()
        self.refused = ""

        def on_connect(client, userdata, flags, reason_code, properties) -> None:
            if reason_code.is_failure:
                self.refused = str(reason_code)
            else:
                self._connected.set()

        self._c.on_connect = on_connect
        # message ids the broker acknowledged (QoS 1 PUBACK); paho re-sends unacknowledged
        # ones after a reconnect, even those published while disconnected
        self.acked: set[int] = set()
        self._c.on_publish = lambda c, u, mid, rc, p: self.acked.add(mid)

    def connect(self, timeout_s: float = 5.0) -> None:
        try:
            self._c.connect(self.host, self.port, keepalive=15)
        except OSError as err:
            msg = f"MQTT broker at {self.host}:{self.port}: {err}"
            raise MqttUnavailable(msg) from err
        self._c.loop_start()
        if not self._connected.wait(timeout_s):
            self._c.loop_stop()
            why = f": {self.refused}" if self.refused else ""
            msg = f"MQTT broker at {self.host}:{self.port} did not accept the connection{why}"
            raise MqttUnavailable(msg)

    def publish_raw(self, payload: bytes, qos: int = 1) -> mqtt.MQTTMessageInfo:
        return self._c.publish(self.topic, payload, qos=qos)

    def publish(
        self,
        device_id: Sequence[str],
        quantity: Sequence[str],
        unit: Sequence[str],
        value: Sequence[float],
        ts_s: Sequence[float] | None = None,
    ) -> mqtt.MQTTMessageInfo:
        """Send one message with these readings (``ts_s`` defaults to now)."""
        now = time.time()
        ts = ts_s if ts_s is not None else [now] * len(value)
        readings: list[dict[str, Any]] = [
            {"device_id": d, "quantity": q, "unit": u, "value": v, "ts": t}
            for d, q, u, v, t in zip(device_id, quantity, unit, value, ts, strict=True)
        ]
        self.seq += 1
        body = {"source": self.source, "seq": self.seq, "readings": readings}
        return self.publish_raw(json.dumps(body, separators=(",", ":")).encode())

    def publish_batch(
        self,
        device_id: Sequence[str],
        value: Sequence[float] | np.ndarray,
        quantity: str | Sequence[str],
        unit: str | Sequence[str],
        ts_s: float | Sequence[float] | np.ndarray | None = None,
    ) -> mqtt.MQTTMessageInfo:
        """Send one :mod:`columnar batch <gridsync.data.columnar>` (``ts_s`` defaults to now)."""
        self.seq += 1
        body = {
            "source": self.source,
            "seq": self.seq,
            "device_id": list(device_id),
            "quantity": quantity if isinstance(quantity, str) else list(quantity),
            "unit": unit if isinstance(unit, str) else list(unit),
            "ts_s": time.time() if ts_s is None else ts_s,
            "value": value,
        }
        return self.publish_raw(encode(body))

    def close(self) -> None:
        self._c.disconnect()
        self._c.loop_stop()
