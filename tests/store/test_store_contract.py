"""One store contract, two backends: the same tests run on SQLite and PostgreSQL."""

from __future__ import annotations

import os
import uuid

import numpy as np
import pytest

from gridsync.store import ReadingBatch, SqliteStore, StoreError, make_store

PG_DSN = os.environ.get("GRIDSYNC_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


@pytest.fixture(params=["sqlite", "postgres"])
def store(request):
    if request.param == "sqlite":
        s = SqliteStore(":memory:")
        s.migrate()
        yield s
        s.close()
        return
    from gridsync.store.postgres import PostgresStore

    s = PostgresStore(PG_DSN, schema="t_" + uuid.uuid4().hex[:12])
    try:
        s.migrate()
    except StoreError as err:
        from tests.conftest import require_service

        require_service("PostgreSQL", f"{PG_DSN}: {err}")
    yield s
    s.drop_schema()
    s.close()


def _batch(n_dev=3, n_t=4, t0=1_700_000_000.0, offset=0.0) -> ReadingBatch:
    dev = np.repeat([f"meter-{i}" for i in range(n_dev)], n_t)
    ts = np.tile(t0 + 5.0 * np.arange(n_t), n_dev)
    val = np.arange(n_dev * n_t, dtype=float) + offset
    return ReadingBatch(ts, dev, ["p_kw"] * len(ts), ["kW"] * len(ts), val)


def test_migrate_is_idempotent(store):
    assert store.migrate() == store.migrate() >= 1


def test_readings_roundtrip_and_redelivered_batch_is_skipped(store):
    assert store.write_readings(_batch(), batch_id="tm:gw-1:1") == 12
    assert store.write_readings(_batch(offset=100.0), batch_id="tm:gw-1:1") == 0  # redelivery
    df = store.query_readings()
    assert len(df) == 12 == store.count_readings()
    m1 = df[df.device_id == "meter-1"]
    assert m1.value.tolist() == [4.0, 5.0, 6.0, 7.0]
    assert (m1.ts.diff().dropna().dt.total_seconds() == 5.0).all()
    assert str(df.ts.dt.tz) == "UTC" and set(df.unit) == {"kW"}


def test_many_batches_at_once_skip_stored_and_repeated_ids(store):
    store.write_readings(_batch(), batch_id="a")
    items = [
        (_batch(offset=100.0), "a"),  # already stored
        (_batch(t0=1_700_000_100.0), "b"),
        (_batch(t0=1_700_000_100.0, offset=50.0), "b"),  # same id twice in one call
        (_batch(n_dev=1, n_t=2, t0=1_700_000_200.0), None),
    ]
    assert store.write_readings_many(items) == 12 + 2
    assert store.write_readings_many(items[:3]) == 0
    assert store.count_readings() == 12 + 12 + 2
    b = store.query_readings(start_s=1_700_000_100.0, end_s=1_700_000_200.0)
    assert sorted(b.value) == list(range(12))  # the first "b", not the repeat


def test_query_filters_by_device_quantity_and_half_open_time_range(store):
    store.write_readings(_batch())
    t0 = 1_700_000_000.0
    df = store.query_readings(device_id="meter-2", start_s=t0 + 5, end_s=t0 + 15)
    assert df.value.tolist() == [9.0, 10.0]
    assert store.query_readings(quantity="v_pu").empty
    assert len(store.query_readings(limit=5)) == 5


def test_readings_spanning_days_and_nan_values(store):
    day = 86400.0
    b = ReadingBatch(
        [1_700_000_000.0, 1_700_000_000.0 + day, 1_700_000_000.0 + 2 * day],
        ["m", "m", "m"],
        ["v_pu"] * 3,
        ["pu"] * 3,
        [1.01, np.nan, 0.99],
    )
    assert store.write_readings(b) == 3
    vals = store.query_readings().value.to_numpy()
    assert vals[0] == 1.01 and np.isnan(vals[1]) and vals[2] == 0.99


def test_injection_strings_are_stored_verbatim_not_executed(store):
    evil = "x'); DROP TABLE readings; --"
    store.write_readings(ReadingBatch([1.0e9], [evil], ["p_kw"], ["kW"], [1.0]))
    store.add_event("alert", evil, source=evil, payload={"k": evil})
    assert store.query_readings(device_id=evil).device_id.tolist() == [evil]
    assert store.events()[0]["message"] == evil
    assert store.count_readings() == 1


def test_events_with_nul_characters_are_stored(store):
    # a dead letter quotes the hostile payload: NUL bytes must not block the event sink
    store.add_event("deadletter", "bad\x00reason", payload={"raw": "\x00" * 8 + "x"})
    ev = store.events(kind="deadletter")[0]
    assert ev["message"].startswith("bad") and ev["payload"]["raw"].endswith("x")
    assert len(ev["payload"]["raw"]) == 9


def test_plans_once_per_id_newest_first(store):
    assert store.put_plan("p1", 100.0, "tou", {"battery_kw": [1.0, -2.0]}, 100.0, 1000.0)
    assert not store.put_plan("p1", 100.0, "tou", {"battery_kw": [9.0]})
    assert store.put_plan("p2", 200.0, "operator", {"note": "manual"})
    plans = store.plans()
    assert [p["plan_id"] for p in plans] == ["p2", "p1"]
    assert plans[1]["payload"] == {"battery_kw": [1.0, -2.0]}
    assert plans[1]["valid_to_s"] == pytest.approx(1000.0)
    assert [p["plan_id"] for p in store.plans(since_s=150.0)] == ["p2"]


def test_events_and_audit_log(store):
    a = store.add_event("restart", "dispatch restarted", severity="warning", source="supervisor")
    b = store.add_event("alert", "overvoltage", severity="critical", payload={"bus": 7})
    assert b > a
    assert [e["kind"] for e in store.events()] == ["alert", "restart"]
    assert store.events(kind="alert")[0]["payload"] == {"bus": 7}
    store.audit("alice", "operator", "plan.submit", "p9", {"reason": "test"})
    log = store.audit_log()
    assert log[0]["actor"] == "alice" and log[0]["detail"] == {"reason": "test"}


def test_make_store_rejects_unknown_url():
    with pytest.raises(StoreError, match="mysql://x"):
        make_store("mysql://x")


def test_postgres_rejects_unsafe_schema_name():
    from gridsync.store.postgres import PostgresStore

    with pytest.raises(StoreError, match="schema"):
        PostgresStore(PG_DSN, schema="x; DROP")


def test_overrides_are_upserted_listed_and_deleted(store):
    assert store.overrides() == []
    store.put_override("battery", 3, {"asset_kind": "battery", "index": 3, "setpoint_kw": 2.5})
    store.put_override("pv", 0, {"asset_kind": "pv", "index": 0, "mode": "manual"})
    store.put_override("battery", 3, {"asset_kind": "battery", "index": 3, "setpoint_kw": -1.0})
    got = {(o["asset_kind"], o["index"]): o for o in store.overrides()}
    assert set(got) == {("battery", 3), ("pv", 0)}
    assert got[("battery", 3)]["setpoint_kw"] == -1.0
    assert store.delete_override("battery", 3) is True
    assert store.delete_override("battery", 3) is False
    assert [o["asset_kind"] for o in store.overrides()] == ["pv"]
