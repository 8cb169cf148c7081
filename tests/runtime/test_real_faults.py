"""Fault drills against REAL servers: private Mosquitto, NATS JetStream and PostgreSQL
instances (free ports, temp dirs; the shared services are never touched) are crashed and
restarted while a device streams telemetry with hostile payloads mixed in. Every reading is
accounted for from the device's numbering and the database's contents."""

from __future__ import annotations

import asyncio
import os

import pytest

from gridsync.runtime.fault_drill import Lab, run_drill
from gridsync.runtime.private_services import missing_binaries

pytestmark = [pytest.mark.slow, pytest.mark.service]
N_METERS = 250


@pytest.fixture(scope="module")
def lab():
    missing = missing_binaries()
    if missing:
        from tests.conftest import require_service

        require_service("private Mosquitto/NATS/PostgreSQL servers", f"missing {missing}")
    if os.geteuid() == 0 and not os.path.exists("/usr/sbin/runuser"):
        pytest.skip("running as root without runuser: cannot start PostgreSQL as 'postgres'")
    with Lab() as lab:
        yield lab


@pytest.mark.parametrize(
    ("server", "hard"), [("postgres", True), ("nats", True), ("mosquitto", True)]
)
def test_server_crash_during_ingestion_loses_and_duplicates_nothing(lab, server, hard):
    r = asyncio.run(run_drill(lab, server, hard, n_meters=N_METERS, down_s=3.0))
    detail = r.to_dict()
    # everything the device sent arrived once the server was back (device and broker retry)
    assert r.messages_device_acked == r.messages_sent > 50, detail
    assert r.messages_accepted == r.messages_sent and r.device_acked_not_accepted == 0, detail
    # every good row of every accepted message: full batches plus the one good row of each
    # hostile mixed batch (a burst of five hostile messages carries one)
    bursts = r.hostile_sent // 5
    assert bursts == 2, detail
    assert r.readings_accepted == N_METERS * (r.messages_accepted - bursts) + bursts, detail
    assert r.readings_stored == r.readings_accepted, detail
    assert (r.lost, r.duplicated, r.bad_stored) == (0, 0, 0), detail
    # each hostile payload was dead-lettered with its reason
    assert r.deadletter_reasons_missing == [] and r.deadletters >= r.hostile_sent, detail
    # the 0.25-s step clock kept producing snapshots through the outage, the agent recovered
    assert r.snapshots_during_outage >= 8, detail
    assert r.agent_ticks_after_recovery > 0 and r.recovery_s is not None, detail
