"""The fleet runner without Ray: a fleet stopped and started again on its store continues
exactly where it stopped."""

from __future__ import annotations

import numpy as np

from gridsync.fleet.runner import FleetRunConfig, run_fleet
from gridsync.fleet.store import SqliteFleetStore
from tests.fleet.conftest import SOURCE


def _config(store: str, steps: int) -> FleetRunConfig:
    return FleetRunConfig(
        n_feeders=2,
        backend="inprocess",
        source=SOURCE,
        store_url=store,
        forecast="naive",
        steps=steps,
        substation_limit_kw=100.0,
    )


def test_a_stopped_fleet_resumes_from_its_store(fleet_factory, tmp_path):
    straight = run_fleet(_config(str(tmp_path / "a.sqlite"), 6))
    store = str(tmp_path / "b.sqlite")
    first = run_fleet(_config(store, 4))  # stops just before the limit is shared at step 4
    again = run_fleet(_config(store, 6))
    assert (first.first_step, again.first_step, again.n_steps) == (0, 4, 2)
    assert again.limits_kw == straight.limits_kw and len(again.limits_kw) == 1
    np.testing.assert_allclose(
        np.r_[first.feeder_kw, again.feeder_kw], straight.feeder_kw, rtol=1e-9
    )
    plans = SqliteFleetStore(store).plan_steps()
    assert len(plans) == 12 and not plans.duplicated(["feeder_id", "step"]).any()
