"""The fleet's subject tree, in memory and on NATS JetStream: one stream, per-worker reads."""

from __future__ import annotations

import uuid

import pytest

from gridsync.fleet.bus import FleetBusError, InProcessFleetBus, NatsFleetBus

NATS_URL = "nats://127.0.0.1:4222"


@pytest.fixture(params=["inprocess", "nats"])
def bus(request):
    prefix = "t" + uuid.uuid4().hex[:10]
    if request.param == "inprocess":
        b = InProcessFleetBus(prefix)
        yield b
        return
    try:
        b = NatsFleetBus(NATS_URL, prefix, connect_timeout_s=1.0)
    except FleetBusError as err:
        from tests.conftest import require_service

        require_service("NATS JetStream", f"{NATS_URL}: {err}")
    yield b
    b.delete_stream()
    b.close()


def test_subjects_name_the_feeder_and_the_kind(bus):
    assert bus.subject("f0007", "telemetry") == f"{bus.prefix}.f0007.telemetry"
    assert bus.subject("substation", "bid") == f"{bus.prefix}.substation.bid"
    with pytest.raises(FleetBusError, match="kind 'plans'"):
        bus.subject("f0007", "plans")
    with pytest.raises(ValueError, match="NATS subject token"):
        bus.subject("F.7", "plan")


def test_a_repeated_msg_id_is_published_once(bus):
    items = [("f0001", "plan", {"step": 3}, "f0001.plan.3")]
    assert bus.publish_many(items) == 1
    assert bus.publish_many(items) == 0  # the same step re-published after a restart
    assert bus.count() == 1


def test_each_worker_reads_only_its_feeders_in_order_and_resumes(bus):
    items = [
        (f, kind, {"step": s}, f"{f}.{kind}.{s}")
        for s in range(3)
        for f in ("f0001", "f0002", "f0003")
        for kind in ("telemetry", "plan")
    ]
    assert bus.publish_many(items[:12]) == 12  # steps 0 and 1
    w0 = bus.consume("w0", ["f0001", "f0003"], timeout_s=0.5)
    w1 = bus.consume("w1", ["f0002"], timeout_s=0.5)
    assert {m.feeder_id for m in w0} == {"f0001", "f0003"} and len(w0) == 8
    assert {m.feeder_id for m in w1} == {"f0002"} and len(w1) == 4
    assert [m.seq for m in w0] == sorted(m.seq for m in w0)
    assert [(m.kind, m.data["step"]) for m in w1] == [
        ("telemetry", 0), ("plan", 0), ("telemetry", 1), ("plan", 1)
    ]  # fmt: skip
    bus.publish_many(items[12:])  # step 2
    again = bus.consume("w1", ["f0002"], timeout_s=0.5)
    assert [(m.kind, m.data["step"]) for m in again] == [("telemetry", 2), ("plan", 2)]
