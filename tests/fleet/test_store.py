"""The fleet store on SQLite and PostgreSQL: a step is stored once with its checkpoint."""

from __future__ import annotations

import os
import uuid

import pytest

from gridsync.fleet.feeder import StepOutput
from gridsync.fleet.store import FleetStoreError, PostgresFleetStore, SqliteFleetStore

PG_DSN = os.environ.get("GRIDSYNC_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


def _out(feeder: str, step: int, time: str, kw: float = 10.0) -> StepOutput:
    return StepOutput(
        feeder_id=feeder,
        step=step,
        time=time,
        telemetry={
            "feeder_kw": kw,
            "vm_min_pu": 0.97,
            "vm_max_pu": 1.02,
            "max_loading_pct": 40.0,
            "pf_failed": False,
        },  # fmt: skip
        plan={"status": "optimal", "replanned": step % 4 == 0, "battery_kw": [1.0, -2.0]},
        flex_up_kw=[1.0, 0.0, 0.0],
        flex_down_kw=[0.0, 0.0, 0.0],
        planned_import_kw=kw,
        loop_s=0.1,
        cpu_s=0.1,
    )


def _postgres():
    s = PostgresFleetStore(PG_DSN, schema="tf_" + uuid.uuid4().hex[:12])
    try:
        s.migrate()
    except FleetStoreError as err:
        from tests.conftest import require_service

        require_service("PostgreSQL", f"{PG_DSN}: {err}")
    return s


@pytest.fixture(params=["sqlite", "postgres"])
def store(request, tmp_path):
    s = (
        SqliteFleetStore(str(tmp_path / "fleet.sqlite"))
        if request.param == "sqlite"
        else _postgres()
    )
    s.migrate()
    yield s
    if s.kind == "postgres":
        s.drop_schema()
    s.close()


@pytest.fixture
def pg_store():
    s = _postgres()
    yield s
    s.drop_schema()
    s.close()


def test_a_step_is_stored_once_with_its_checkpoint(store):
    assert store.last_checkpoint("f0001") is None
    assert store.commit_step(_out("f0001", 100, "2016-06-06 23:45:00"), b"state-100")
    # the same step again (a retried call): nothing changes, the first checkpoint stays
    assert not store.commit_step(_out("f0001", 100, "2016-06-06 23:45:00", 99.0), b"other")
    assert store.last_checkpoint("f0001") == (100, b"state-100")
    assert store.commit_step(_out("f0001", 101, "2016-06-07 00:00:00"), b"state-101")
    assert store.last_checkpoint("f0001") == (101, b"state-101")
    plans = store.plan_steps()
    assert plans[["feeder_id", "step"]].values.tolist() == [["f0001", 100], ["f0001", 101]]


def test_feeders_lists_each_feeders_latest_state(store):
    for step, kw in ((0, 5.0), (1, 7.5)):
        store.commit_step(_out("f0001", step, f"2016-06-06 00:{15 * step:02d}:00", kw), b"x")
    store.commit_step(_out("f0002", 0, "2016-06-06 00:00:00", 3.0), b"y")
    rows = store.feeders().set_index("feeder_id")
    assert rows.loc["f0001", "last_step"] == 1 and rows.loc["f0001", "feeder_kw"] == 7.5
    assert rows.loc["f0001", "steps_stored"] == 2 and rows.loc["f0002", "steps_stored"] == 1
    assert rows.loc["f0002", "plan_status"] == "optimal"


def test_postgres_partitions_per_day_and_feeder(pg_store):
    store = pg_store
    for feeder in ("f0001", "f0002"):
        store.commit_step(_out(feeder, 95, "2016-06-06 23:45:00"), b"a")
        store.commit_step(_out(feeder, 96, "2016-06-07 00:00:00"), b"b")
    assert store.partitions() == [
        "fleet_plan_d20160606_f0001",
        "fleet_plan_d20160606_f0002",
        "fleet_plan_d20160607_f0001",
        "fleet_plan_d20160607_f0002",
    ]
