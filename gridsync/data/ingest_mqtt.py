"""MQTT side of ingestion: the bridge (broker -> validation -> bus) and a device publisher.

Devices publish :mod:`telemetry messages <gridsync.data.ingest>` with QoS 1 on
``gridsync/telemetry/<source>``. The bridge keeps a persistent session (fixed client id,
``clean_session=False``) and acknowledges each MQTT message only after it was forwarded to
the bus or dead-lettered, so a bridge or bus outage makes the broker redeliver instead of
losing data; paho reconnects on its own after a broker restart.
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

from gridsync.aio import cancel_and_wait
from gridsync.bus.base import encode
from gridsync.data.ingest import Ingestor

log = logging.getLogger(__name__)
TELEMETRY_TOPIC = "gridsync/telemetry"


class MqttUnavailable(ConnectionError):
    """The broker could not be reached (message names host and port)."""


def _client(client_id: str, clean: bool, manual_ack: bool = False) -> mqtt.Client:
    c = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2,
        client_id=client_id,
        clean_session=clean,
        manual_ack=manual_ack,
    )
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
        queue_max: int = 10_000,
        window: int = 64,
    ) -> None:
        self.ingestor, self.host, self.port = ingestor, host, port
        self.topic = f"{topic_root}/#"
        self.client_id = client_id
        self.queue_max, self.window = queue_max, window
        self.connected = threading.Event()
        self.connects = 0
        self._client: mqtt.Client | None = None
        self._queue: asyncio.Queue | None = None
        self._task: asyncio.Task | None = None

    async def start(self, timeout_s: float = 5.0) -> None:
        loop = asyncio.get_running_loop()
        self._queue = asyncio.Queue(self.queue_max)
        c = _client(self.client_id, clean=False, manual_ack=True)

        def on_connect(client, userdata, flags, reason_code, properties) -> None:
            if not reason_code.is_failure:
                client.subscribe(self.topic, qos=1)
                self.connects += 1

        def on_subscribe(client, userdata, mid, reason_codes, properties) -> None:
            # ready only once the broker confirmed the subscription
            if reason_codes and not reason_codes[0].is_failure:
                self.connected.set()

        def on_disconnect(client, userdata, flags, reason_code, properties) -> None:
            self.connected.clear()

        def on_message(client, userdata, msg) -> None:
            item = (msg.topic, msg.payload, msg.mid, msg.qos)
            loop.call_soon_threadsafe(self._queue.put_nowait, item)

        c.on_connect, c.on_disconnect, c.on_message = on_connect, on_disconnect, on_message
        c.on_subscribe = on_subscribe
        self._client = c
        c.connect_async(self.host, self.port, keepalive=15)
        c.loop_start()
        self._task = asyncio.create_task(self._consume(), name="mqtt-bridge")
        ok = await asyncio.to_thread(self.connected.wait, timeout_s)
        if not ok:
            await self.stop()
            msg = f"MQTT broker at {self.host}:{self.port} not reachable within {timeout_s:g} s"
            raise MqttUnavailable(msg)

    async def _consume(self) -> None:
        """Forward what is queued in windows of up to ``window`` messages: validation runs
        in arrival order, the bus publishes await their acknowledgements together, and the
        broker gets its acknowledgements in arrival order once the whole window is through."""
        assert self._queue is not None
        while True:
            items = [await self._queue.get()]
            while len(items) < self.window and not self._queue.empty():
                items.append(self._queue.get_nowait())
            done = await asyncio.gather(
                *(self.ingestor.submit(p, origin=f"mqtt:{t}") for t, p, _, _ in items),
                return_exceptions=True,
            )
            for (topic, payload, _, _), res in zip(items, done, strict=True):
                if isinstance(res, asyncio.CancelledError):
                    raise res
                if isinstance(res, BaseException):
                    await self._retry(topic, payload, res)
            if self._client is not None:
                for _, _, mid, qos in items:
                    if qos > 0:
                        self._client.ack(mid, qos)

    async def _retry(self, topic: str, payload: bytes, err: BaseException) -> None:
        """Bus down: keep the message unacknowledged and retry until it is forwarded."""
        while True:
            log.warning("bridge: forwarding failed (%r); retrying", err)
            await asyncio.sleep(0.5)
            try:
                await self.ingestor.submit(payload, origin=f"mqtt:{topic}")
                return
            except asyncio.CancelledError:
                raise
            except Exception as e:
                err = e

    async def stop(self) -> None:
        if self._task is not None:
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
    ) -> None:
        self.source, self.host, self.port = source, host, port
        self.topic = f"{topic_root}/{source}"
        self.seq = 0
        self._c = _client(f"gridsync-dev-{source}", clean=True)
        self._connected = threading.Event()
        self._c.on_connect = lambda c, u, f, rc, p: self._connected.set()
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
            msg = f"MQTT broker at {self.host}:{self.port} did not accept the connection"
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
