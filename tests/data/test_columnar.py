"""Columnar telemetry batches: same rules as single readings, bad rows rejected one by one."""

from __future__ import annotations

import asyncio
import json

import numpy as np
import pytest

from gridsync.bus import InProcessBus
from gridsync.data.ingest import Ingestor, Rejected, TelemetryValidator

NOW = 1_800_000_000.0


def batch(seq=1, source="dc-1", **cols) -> bytes:
    body = {
        "source": source,
        "seq": seq,
        "device_id": ["m-1", "m-2", "m-3"],
        "quantity": "p",
        "unit": "W",
        "ts_s": NOW - 5,
        "value": [1500, 250.5, -80.0],
    }
    body.update(cols)
    return json.dumps(body).encode()


def test_good_batch_converted_like_single_readings():
    v = TelemetryValidator(late_after_s=60)
    acc = v.validate(batch(ts_s=[NOW - 5, NOW - 600, NOW - 5]), NOW)
    assert acc.rejected_rows == []
    assert list(acc.device_id) == ["m-1", "m-2", "m-3"]
    np.testing.assert_allclose(acc.value, [1.5, 0.2505, -0.08])
    assert list(acc.unit) == ["kW"] * 3 and list(acc.quantity) == ["p"] * 3
    assert list(acc.late) == [False, True, False]
    # the same readings as one object each give the same columns
    single = {
        "source": "gw-x",
        "seq": 1,
        "readings": [
            {"device_id": d, "quantity": "p", "unit": "W", "value": x, "ts": t}
            for d, x, t in zip(
                ["m-1", "m-2", "m-3"],
                [1500, 250.5, -80.0],
                [NOW - 5, NOW - 600, NOW - 5],
                strict=True,
            )
        ],
    }
    ref = TelemetryValidator(late_after_s=60).validate(json.dumps(single), NOW)
    np.testing.assert_allclose(acc.value, ref.value)
    np.testing.assert_allclose(acc.ts_s, ref.ts_s)
    assert list(acc.late) == ref.late


def test_per_row_quantity_and_unit_arrays():
    acc = TelemetryValidator().validate(
        batch(quantity=["p", "v", "soc"], unit=["kW", "pu", "%"], value=[2.0, 1.02, 55]), NOW
    )
    np.testing.assert_allclose(acc.value, [2.0, 1.02, 0.55])
    assert list(acc.unit) == ["kW", "pu", "frac"]


def test_bad_rows_rejected_individually_with_reasons():
    rows = [
        ("m-ok1", "p", "kW", 1.0, NOW - 1, None),
        ("x'); DROP TABLE readings;--", "p", "kW", 1.0, NOW - 1, "device_id"),
        (["nested"], "p", "kW", 1.0, NOW - 1, "device_id"),
        ("m-nl\n", "p", "kW", 1.0, NOW - 1, "device_id"),  # "$" alone would accept it
        ("m-q", "power", "kW", 1.0, NOW - 1, "unknown quantity 'power'"),
        ("m-u", "p", "hp", 1.0, NOW - 1, "'hp' is not a unit of 'p'"),
        ("m-s", "p", "kW", "2.5", NOW - 1, "expected a number (got '2.5')"),
        ("m-b", "p", "kW", True, NOW - 1, "expected a number (got True)"),
        ("m-n", "p", "kW", None, NOW - 1, "expected a number (got None)"),
        ("m-nan", "p", "kW", float("nan"), NOW - 1, "not a finite number"),
        ("m-big", "v", "pu", 7.0, NOW - 1, "outside [0.0, 2.0] pu"),
        ("m-f", "p", "kW", 1.0, NOW + 3600, "in the future"),
        ("m-o", "p", "kW", 1.0, NOW - 30 * 86400, "older than"),
        ("m-t", "p", "kW", 1.0, "yesterday", "ts_s: expected UNIX seconds"),
        ("m-ok2", "v", "pu", 1.01, NOW - 1, None),
        ("m-ok1", "p", "kW", 9.0, NOW - 1, "duplicate reading"),  # same series and time
        ("m-ok1", "p", "kW", 3.0, NOW - 2, None),  # same series, another time: fine
    ]
    names = ["device_id", "quantity", "unit", "value", "ts_s"]
    cols = {k: [r[j] for r in rows] for j, k in enumerate(names)}
    acc = TelemetryValidator().validate(batch(**cols), NOW)
    expected_bad = [i for i, r in enumerate(rows) if r[5] is not None]
    assert [b["row"] for b in acc.rejected_rows] == expected_bad
    for b in acc.rejected_rows:
        assert rows[b["row"]][5] in b["reason"], b
    assert list(acc.device_id) == ["m-ok1", "m-ok2", "m-ok1"]
    np.testing.assert_allclose(acc.value, [1.0, 1.01, 3.0])


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (batch(extra=1), "extra: unknown field"),
        (batch(value=[1.0, 2.0]), "value: 2 entries but device_id has 3"),
        (batch(value=5.0), "value: expected an array"),
        (batch(device_id=[]), "device_id: expected an array of 1 to"),
        (batch(device_id="m-1"), "device_id: expected an array"),
        (batch(seq=-1), "seq: expected an integer >= 0"),
        (batch(seq=True), "seq: expected an integer"),
        (batch(source="<script>"), "source: expected an id"),
        (batch(source="dc-1\n"), "source: expected an id"),
        (batch(quantity=7), "quantity: expected a string"),
        (batch(ts_s="now"), "ts_s: expected UNIX seconds"),
        (batch(device_id=["bad id!"] * 3), "all 3 rows rejected"),
    ],
)
def test_malformed_batches_rejected_whole(payload, reason):
    with pytest.raises(Rejected) as err:
        TelemetryValidator().validate(payload, NOW)
    assert reason in str(err.value)


def test_oversized_batch_and_too_many_rows():
    with pytest.raises(Rejected, match="exceeds"):
        TelemetryValidator(max_bytes=100).validate(batch(), NOW)
    n = 20_001
    big = batch(device_id=[f"m{i}" for i in range(n)], value=[1.0] * n)
    with pytest.raises(Rejected, match="1 to 20000 ids"):
        TelemetryValidator(max_bytes=10**7).validate(big, NOW)


def test_ingestor_forwards_good_rows_and_dead_letters_bad_ones_and_replays():
    async def main():
        bus = InProcessBus()
        ing = Ingestor(bus, TelemetryValidator(max_age_s=1e12, max_future_s=1e12))
        mixed = batch(device_id=["m-1", "bad id!", "m-3"])
        r1 = await ing.submit(mixed, origin="test")
        r2 = await ing.submit(mixed, origin="test")  # replayed
        return r1, r2, await bus.replay("telemetry"), await bus.replay("deadletter")

    r1, r2, tel, dead = asyncio.run(main())
    assert r1.accepted and r1.n_readings == 2 and r1.rejected_rows == 1
    assert not r2.accepted and "duplicate message" in r2.reason
    assert len(tel) == 1 and list(tel[0].data["device_id"]) == ["m-1", "m-3"]
    assert len(dead) == 2
    assert dead[0].data["rejected_rows"] == 1 and dead[0].data["rows"][0]["row"] == 1
    assert "1 of 3 rows rejected" in dead[0].data["reason"]
    assert "duplicate message" in dead[1].data["reason"]
