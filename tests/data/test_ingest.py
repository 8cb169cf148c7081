"""Telemetry validation (schema, units, timestamps, duplicates, hostile payloads) and file import."""

from __future__ import annotations

import asyncio
import json

import numpy as np
import pandas as pd
import pytest

from gridsync.bus import InProcessBus
from gridsync.data.ingest import Ingestor, Rejected, TelemetryValidator
from gridsync.data.ingest_files import ImportFileError, import_readings
from gridsync.store import SqliteStore

NOW = 1_800_000_000.0


def msg(seq=1, source="gw-1", **reading) -> bytes:
    r = {"device_id": "meter-1", "quantity": "p", "unit": "kW", "value": 2.5, "ts": NOW - 1}
    r.update(reading)
    return json.dumps({"source": source, "seq": seq, "readings": [r]}).encode()


def test_accepts_and_converts_units():
    v = TelemetryValidator()
    acc = v.validate(msg(unit="W", value=1500), NOW)
    assert acc.value == [1.5] and acc.unit == ["kW"]
    acc = v.validate(
        msg(seq=2, quantity="temp", unit="K", value=293.15, ts="2027-01-15T08:00:00Z"), NOW
    )
    assert acc.value == [pytest.approx(20.0)] and acc.ts_s == [
        pd.Timestamp("2027-01-15T08:00:00Z").timestamp()
    ]
    acc = v.validate(msg(seq=3, quantity="soc", unit="%", value=55), NOW)
    assert acc.value == [pytest.approx(0.55)]


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"\xff\xfe not json", "not valid JSON"),
        (b"[1, 2]", "(top level)"),
        (msg(value="2.5"), "readings.0.value"),
        (msg(value=True), "readings.0.value"),
        (
            b'{"source": "gw-1", "seq": 1, "readings": [{"device_id": "m", "quantity": "p", "unit": "kW", "value": NaN, "ts": 1}]}',
            "finite number",
        ),
        (msg(quantity="power"), "unknown quantity 'power'"),
        (msg(unit="hp"), "'hp' is not a unit of 'p'"),
        (msg(quantity="v", unit="pu", value=7.0), "outside [0.0, 2.0] pu"),
        (msg(ts=NOW + 3600), "in the future"),
        (msg(ts=NOW - 30 * 86400), "older than"),
        (msg(ts="2027-01-15T08:00:00"), "readings.0.ts"),  # no time zone
        (msg(device_id="x'); DROP TABLE readings;--"), "readings.0.device_id"),
        (msg(source="<script>"), "source"),
        (msg(seq=-1), "seq"),
        (msg(extra_field=1), "extra_field"),
        (json.dumps({"source": "gw", "seq": 1, "readings": []}).encode(), "readings"),
    ],
)
def test_rejects_bad_messages_with_reason(payload, reason):
    with pytest.raises(Rejected) as err:
        TelemetryValidator().validate(payload, NOW)
    assert reason in str(err.value)


def test_oversized_payload_rejected_before_parsing():
    v = TelemetryValidator(max_bytes=1000)
    with pytest.raises(Rejected, match="exceeds the 1000-byte limit"):
        v.validate(b"{" + b" " * 5000 + b"}", NOW)


def test_duplicates_out_of_order_and_late_flags():
    v = TelemetryValidator(late_after_s=60)
    assert not v.validate(msg(seq=5), NOW).out_of_order
    with pytest.raises(Rejected, match="duplicate"):
        v.validate(msg(seq=5), NOW)
    acc = v.validate(msg(seq=3, ts=NOW - 600), NOW)
    assert acc.out_of_order and acc.late == [True]
    assert v.validate(msg(seq=5, source="gw-2"), NOW).seq == 5  # seq is per source


def test_ingestor_forwards_good_and_dead_letters_bad():
    async def main():
        bus = InProcessBus()
        ing = Ingestor(bus, TelemetryValidator(max_age_s=1e12, max_future_s=1e12))
        ok = await ing.submit(msg(seq=1), origin="test")
        bad = await ing.submit(msg(seq=2, unit="hp"), origin="test")
        dup = await ing.submit(msg(seq=1), origin="test")
        tel = await bus.replay("telemetry")
        dead = await bus.replay("deadletter")
        return ok, bad, dup, tel, dead

    ok, bad, dup, tel, dead = asyncio.run(main())
    assert ok.accepted and not bad.accepted and not dup.accepted
    assert len(tel) == 1 and tel[0].data["value"] == [2.5] and tel[0].data["kind"] == "readings"
    assert [d.data["reason"] for d in dead] == [bad.reason, dup.reason]
    assert "hp" in dead[0].data["raw"]


def _history_frame() -> pd.DataFrame:
    ts = pd.date_range("2026-01-01", periods=4, freq="15min", tz="UTC")
    return pd.DataFrame(
        {
            "ts": list(ts) * 2 + [ts[0], "not a time", ts[1]],
            "device_id": ["m1"] * 4 + ["m2"] * 4 + ["m3", "m3", "bad id!"],
            "quantity": ["p"] * 8 + ["v", "p", "p"],
            "unit": ["W"] * 4 + ["kW"] * 4 + ["pu", "kW", "kW"],
            "value": [1000.0, 2000.0, 3000.0, 4000.0, 1.0, 2.0, 3.0, 4.0, 9.0, 1.0, 1.0],
        }
    )


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_import_history_file_converts_skips_bad_rows_and_is_idempotent(tmp_path, suffix):
    df = _history_frame()
    path = tmp_path / f"hist{suffix}"
    if suffix == ".csv":
        df.assign(ts=df.ts.astype(str)).to_csv(path, index=False)
    else:
        df.assign(ts=df.ts.astype(str)).to_parquet(path)
    store = SqliteStore()
    store.migrate()
    rep = import_readings(path, store, chunk_rows=3)
    assert rep.rows == 11 and rep.stored == 8
    assert rep.rejected == {"value out of range": 1, "bad timestamp": 1, "bad device_id": 1}
    m1 = store.query_readings(device_id="m1")
    np.testing.assert_allclose(m1.value, [1.0, 2.0, 3.0, 4.0])
    assert m1.ts.iloc[1] == pd.Timestamp("2026-01-01 00:15", tz="UTC")
    assert import_readings(path, store).stored == 0


def test_import_reports_missing_columns_and_file(tmp_path):
    path = tmp_path / "x.csv"
    pd.DataFrame({"ts": [1], "value": [2]}).to_csv(path, index=False)
    with pytest.raises(ImportFileError, match="missing column"):
        import_readings(path, SqliteStore())
    with pytest.raises(ImportFileError, match="does not exist"):
        import_readings(tmp_path / "nope.csv", SqliteStore())
    with pytest.raises(ImportFileError, match="unsupported file type"):
        (tmp_path / "a.xlsx").write_text("x")
        import_readings(tmp_path / "a.xlsx", SqliteStore())


def test_concurrent_copies_of_one_message_are_forwarded_once():
    # the MQTT bridge forwards a window of messages concurrently: a replay inside the same
    # window must still be refused as a duplicate, not forwarded twice
    class SlowAckBus(InProcessBus):  # like NATS: the publish waits for an acknowledgement
        async def publish(self, topic, data, *, msg_id=None):
            await asyncio.sleep(0.01)
            return await super().publish(topic, data, msg_id=msg_id)

    async def main():
        bus = SlowAckBus()
        ing = Ingestor(bus, TelemetryValidator(max_age_s=1e12, max_future_s=1e12))
        res = await asyncio.gather(*(ing.submit(msg(seq=7)) for _ in range(3)))
        return res, await bus.replay("telemetry"), await bus.replay("deadletter")

    res, tel, dead = asyncio.run(main())
    assert [r.accepted for r in res].count(True) == 1
    assert len(tel) == 1 and len(dead) == 2
    assert all("duplicate message" in d.data["reason"] for d in dead)
