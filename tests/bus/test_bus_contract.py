"""One contract, two buses: the same tests run against InProcessBus and NATS JetStream."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from gridsync.bus import BusError, InProcessBus, Message

NATS_URL = "nats://127.0.0.1:4222"


async def _nats_or_none():
    from gridsync.bus.nats import NatsBus

    bus = NatsBus(NATS_URL, prefix="t" + uuid.uuid4().hex[:12], connect_timeout_s=1.0)
    try:
        await asyncio.wait_for(bus.connect(), 5)
    except (BusError, TimeoutError) as err:
        return None, repr(err)
    return bus, ""


def run_with_bus(kind: str, body) -> None:
    async def main() -> None:
        if kind == "inprocess":
            bus = InProcessBus()
            await bus.connect()
        else:
            bus, why = await _nats_or_none()
            if bus is None:
                return why
        try:
            await asyncio.wait_for(body(bus), 30)
        finally:
            if kind == "nats":
                for sub in list(bus._subs):
                    await sub.unsubscribe()
                await bus.delete_streams()
            await bus.close()
        return None

    why = asyncio.run(main())
    if why:
        from tests.conftest import require_service

        require_service("NATS JetStream", f"{NATS_URL}: {why}")


@pytest.fixture(params=["inprocess", "nats"])
def bus_kind(request):
    return request.param


async def _collect(bus, topic, n, **kw) -> tuple[list[Message], object]:
    got: list[Message] = []
    done = asyncio.Event()

    async def handler(msg: Message) -> None:
        got.append(msg)
        if len(got) >= n:
            done.set()

    sub = await bus.subscribe(topic, handler, **kw)
    return got, (sub, done)


def test_publish_subscribe_in_order_with_fanout(bus_kind):
    async def body(bus):
        a, (sub_a, done_a) = await _collect(bus, "telemetry", 20)
        b, (sub_b, done_b) = await _collect(bus, "telemetry", 20)
        seqs = [await bus.publish("telemetry", {"i": i}) for i in range(20)]
        await asyncio.wait_for(asyncio.gather(done_a.wait(), done_b.wait()), 10)
        assert seqs == list(range(seqs[0], seqs[0] + 20))
        assert [m.data["i"] for m in a] == list(range(20))
        assert [m.data["i"] for m in b] == list(range(20))
        assert [m.seq for m in a] == seqs
        assert await bus.last_seq("telemetry") == seqs[-1]

    run_with_bus(bus_kind, body)


def test_new_versus_all_delivery_and_replay(bus_kind):
    async def body(bus):
        for i in range(5):
            await bus.publish("plans", {"i": i})
        old, (s1, d1) = await _collect(bus, "plans", 6, deliver="all")
        new, (s2, d2) = await _collect(bus, "plans", 1, deliver="new")
        await asyncio.sleep(0.3)
        await bus.publish("plans", {"i": 5})
        await asyncio.wait_for(asyncio.gather(d1.wait(), d2.wait()), 10)
        assert [m.data["i"] for m in old] == [0, 1, 2, 3, 4, 5]
        assert [m.data["i"] for m in new] == [5]
        replayed = await bus.replay("plans", start_seq=3)
        assert [m.data["i"] for m in replayed] == [2, 3, 4, 5]
        assert [m.seq for m in replayed] == [3, 4, 5, 6]
        assert await bus.replay("plans", start_seq=99) == []

    run_with_bus(bus_kind, body)


def test_failing_handler_is_redelivered_then_dead_lettered(bus_kind):
    async def body(bus):
        attempts: dict[int, int] = {}
        ok: list[int] = []
        finished = asyncio.Event()

        async def flaky(msg: Message) -> None:
            i = msg.data["i"]
            attempts[i] = attempts.get(i, 0) + 1
            if i == 1 and attempts[i] < 3:
                raise RuntimeError("transient")
            if i == 2:
                raise ValueError("poison")
            ok.append(i)
            if i == 3:
                finished.set()

        dead, (sd, dead_done) = await _collect(bus, "deadletter", 1)
        await bus.subscribe("alerts", flaky, max_deliver=3, retry_delay_s=0.05)
        for i in range(4):
            await bus.publish("alerts", {"i": i})
        await asyncio.wait_for(asyncio.gather(finished.wait(), dead_done.wait()), 20)
        assert sorted(ok) == [0, 1, 3]
        assert attempts[1] == 3 and attempts[2] == 3
        assert dead[0].data["source_topic"] == "alerts"
        assert dead[0].data["data"] == {"i": 2}
        assert "poison" in dead[0].data["reason"]

    run_with_bus(bus_kind, body)


def test_durable_subscription_resumes_after_last_ack(bus_kind):
    async def body(bus):
        got: list[int] = []
        three = asyncio.Event()

        async def handler(msg: Message) -> None:
            got.append(msg.data["i"])
            if len(got) == 3:
                three.set()

        sub = await bus.subscribe("setpoints", handler, durable="sink1", deliver="all")
        for i in range(3):
            await bus.publish("setpoints", {"i": i})
        await asyncio.wait_for(three.wait(), 10)
        await sub.unsubscribe()
        for i in range(3, 6):
            await bus.publish("setpoints", {"i": i})
        later, (sub2, done) = await _collect(bus, "setpoints", 3, durable="sink1", deliver="all")
        await asyncio.wait_for(done.wait(), 10)
        assert [m.data["i"] for m in later] == [3, 4, 5]

    run_with_bus(bus_kind, body)


def test_duplicate_msg_id_is_stored_once(bus_kind):
    async def body(bus):
        s1 = await bus.publish("telemetry", {"v": 1}, msg_id="meter-7:42")
        s2 = await bus.publish("telemetry", {"v": 1}, msg_id="meter-7:42")
        s3 = await bus.publish("telemetry", {"v": 2}, msg_id="meter-7:43")
        assert s1 == s2 and s3 == s1 + 1
        assert [m.data["v"] for m in await bus.replay("telemetry")] == [1, 2]

    run_with_bus(bus_kind, body)


def test_unknown_topic_is_rejected_with_the_topic_named(bus_kind):
    async def body(bus):
        with pytest.raises(BusError, match="'telemtry'"):
            await bus.publish("telemtry", {})

    run_with_bus(bus_kind, body)


def test_batch_subscription_delivers_runs_in_order_and_acks_them_together(bus_kind):
    async def body(bus):
        for i in range(50):
            await bus.publish("telemetry", {"i": i})
        batches: list[list[int]] = []
        fails = {"left": 1}
        done = asyncio.Event()

        async def sink(msgs: list[Message]) -> None:
            if any(m.data["i"] == 45 for m in msgs) and fails["left"]:
                fails["left"] -= 1  # the whole batch is redelivered
                raise RuntimeError("database down")
            batches.append([m.data["i"] for m in msgs])
            if sum(map(len, batches)) >= 50:
                done.set()

        sub = await bus.subscribe_batches(
            "telemetry", sink, durable="bsink", deliver="all", max_batch=16, retry_delay_s=0.05
        )
        await asyncio.wait_for(done.wait(), 15)
        flat = sorted(i for b in batches for i in b)
        assert flat == list(range(50))  # each exactly once after the failed attempt
        assert max(map(len, batches)) == 16 and len(batches) < 50
        assert all(b == sorted(b) for b in batches)
        await sub.unsubscribe()
        # the durable position covers every acknowledged batch
        for i in range(50, 53):
            await bus.publish("telemetry", {"i": i})
        later: list[int] = []
        three = asyncio.Event()

        async def rest(msgs: list[Message]) -> None:
            later.extend(m.data["i"] for m in msgs)
            if len(later) >= 3:
                three.set()

        await bus.subscribe_batches("telemetry", rest, durable="bsink", deliver="all")
        await asyncio.wait_for(three.wait(), 10)
        assert later == [50, 51, 52]

    run_with_bus(bus_kind, body)


def test_batch_that_keeps_failing_is_dead_lettered_message_by_message(bus_kind):
    async def body(bus):
        dead, (sd, dead_done) = await _collect(bus, "deadletter", 3)

        async def poison(msgs: list[Message]) -> None:
            raise ValueError("poison")

        await bus.subscribe_batches("alerts", poison, max_deliver=2, retry_delay_s=0.05)
        for i in range(3):
            await bus.publish("alerts", {"i": i})
        await asyncio.wait_for(dead_done.wait(), 20)
        assert sorted(d.data["data"]["i"] for d in dead) == [0, 1, 2]
        assert all("poison" in d.data["reason"] for d in dead)

    run_with_bus(bus_kind, body)
