"""State buffer: hold-last alignment, staleness, late and out-of-order readings."""

from __future__ import annotations

import numpy as np
import pytest

from gridsync.runtime.buffer import StateBuffer


def test_hold_last_age_and_staleness():
    buf = StateBuffer(step_s=5.0, stale_after_s=12.0)
    buf.ingest(["a/p", "b/p"], [100.0, 103.0], [1.0, 2.0])
    snap = buf.snapshot(105.0)
    assert snap.keys == ["a/p", "b/p"]
    np.testing.assert_allclose(snap.value, [1.0, 2.0])
    np.testing.assert_allclose(snap.age_s, [5.0, 2.0])
    assert not snap.stale.any()
    # b keeps reporting, a falls silent: a's value is held, then flagged stale
    buf.ingest(["b/p"], [108.0], [3.0])
    snap = buf.snapshot(115.0)
    np.testing.assert_allclose(snap.value, [1.0, 3.0])
    assert snap.stale.tolist() == [True, False]
    assert snap.to_dict()["n_stale"] == 1


def test_reading_stamped_after_snapshot_time_waits_for_next_step():
    buf = StateBuffer()
    buf.ingest(["m/v"], [100.0], [1.00])
    buf.ingest(["m/v"], [106.0], [1.02])  # arrives before the 105 s snapshot is taken
    assert buf.snapshot(105.0).value.tolist() == [1.00]
    assert buf.snapshot(110.0).value.tolist() == [1.02]


def test_out_of_order_and_late_readings_never_overwrite_newer():
    buf = StateBuffer()
    buf.ingest(["m/p"], [110.0], [5.0])
    buf.ingest(["m/p"], [100.0], [1.0])  # late, older: kept only as the fallback slot
    buf.ingest(["m/p"], [90.0], [0.5])  # older than both: ignored
    buf.ingest(["m/p"], [110.0], [7.0])  # same timestamp again (duplicate): ignored
    assert buf.ignored_out_of_order == 2
    assert buf.snapshot(112.0).value.tolist() == [5.0]
    assert buf.snapshot(105.0).value.tolist() == [1.0]


def test_many_readings_of_one_series_in_one_batch_keep_the_newest():
    buf = StateBuffer()
    buf.ingest(["x"] * 5 + ["y"], [3.0, 1.0, 5.0, 2.0, 4.0, 1.0], [3, 1, 5, 2, 4, 9])
    snap = buf.snapshot(10.0)
    assert snap.value.tolist() == [5.0, 9.0]
    assert buf.snapshot(4.5).value.tolist() == [4.0, 9.0]


def test_missing_series_and_step_time():
    buf = StateBuffer(step_s=5.0)
    buf.indices(["never"])
    snap = buf.snapshot(50.0)
    assert snap.missing.tolist() == [True] and np.isnan(snap.value[0])
    assert snap.to_dict()["series"]["never"]["value"] is None
    assert buf.step_time(52.4) == 50.0
    with pytest.raises(ValueError, match="step_s"):
        StateBuffer(step_s=0)


def test_vectorised_ingest_matches_sequential_reference():
    rng = np.random.default_rng(3)
    keys = [f"k{i}" for i in rng.integers(0, 20, 400)]
    ts = rng.uniform(0, 100, 400)
    val = rng.normal(size=400)
    batch = StateBuffer()
    batch.ingest(keys, ts, val)
    one = StateBuffer()
    for k, t, v in zip(keys, ts, val, strict=True):
        one.ingest([k], [t], [v])
    for t in (30.0, 70.0, 100.0):
        a, b = batch.snapshot(t), one.snapshot(t)
        order = [b.keys.index(k) for k in a.keys]
        np.testing.assert_array_equal(a.value, b.value[order])
    # reference: newest reading at or before t, per key
    snap = batch.snapshot(100.0)
    for k in set(keys):
        mine = [(t, v) for kk, t, v in zip(keys, ts, val, strict=True) if kk == k]
        assert snap.value[snap.keys.index(k)] == max(mine)[1]
