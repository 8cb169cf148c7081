"""The fleet on Ray: a worker process killed mid-run is restarted and its feeders resume from
the store, losing and repeating no plan; the run matches the uninterrupted in-process one."""

from __future__ import annotations

import os
import signal
import threading
import time

import numpy as np
import pytest

from gridsync.dispatch.mpc import MPCConfig
from gridsync.fleet.feeder import FeederRuntime
from gridsync.fleet.forecast import SharedForecaster, train_shared_model
from gridsync.fleet.replicas import fleet_specs
from gridsync.fleet.runner import FleetRunConfig, run_fleet
from gridsync.fleet.store import SqliteFleetStore
from tests.fleet.conftest import SOURCE

ray = pytest.importorskip("ray")
STEPS = 8


@pytest.fixture(scope="module")
def local_ray():
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False,
             object_store_memory=128 * 2**20)  # fmt: skip
    yield
    ray.shutdown()


def _config(backend: str, store: str) -> FleetRunConfig:
    return FleetRunConfig(
        n_feeders=3,
        workers=2,
        backend=backend,
        source=SOURCE,
        store_url=store,
        forecast="naive",
        steps=STEPS,
        substation_limit_kw=150.0,
    )


def test_killed_worker_resumes_without_losing_or_repeating_plans(
    local_ray, fleet_factory, tmp_path
):
    ray_store = str(tmp_path / "ray.sqlite")
    killed: list[int] = []

    def kill_when_busy(pid: int) -> None:
        # SIGKILL w0 while it works through the second hour: once f0000 has stored step 4,
        # its steps 5-7 are queued or running
        store = SqliteFleetStore(ray_store)
        while (done := store.plan_steps().query("feeder_id == 'f0000'").shape[0]) < 5:
            time.sleep(0.02)
        os.kill(pid, signal.SIGKILL)
        killed.extend([pid, done])

    def start_killer(k, shards):
        if k == 0:
            pid = ray.get(shards.handles[0].pid.remote())
            threading.Thread(target=kill_when_busy, args=(pid,), daemon=True).start()

    result = run_fleet(_config("ray", ray_store), on_step=start_killer)
    w0 = next(s for s in result.worker_stats if s["worker"] == "w0")
    assert killed and killed[1] < STEPS  # killed with f0000's steps still to do
    assert w0["pid"] != killed[0]  # Ray restarted the actor in a new process
    # w0 hosts f0000 and f0002; both resumed from their last stored checkpoint
    assert sorted(w0["resumed"]) == ["f0000", "f0002"]
    plans = SqliteFleetStore(ray_store).plan_steps()
    assert len(plans) == 3 * STEPS
    assert not plans.duplicated(["feeder_id", "step"]).any()
    assert plans.groupby("feeder_id").step.apply(lambda s: s.diff().dropna().eq(1).all()).all()
    # each feeder run alone in this process, without Ray and without a failure, under the
    # limits the coordinator allocated (from step 4 on): the same feeder power every step
    # (limits are published rounded to 1 W: three of them sum to the limit within 1.5 W)
    assert len(result.limits_kw) == 1
    assert sum(result.limits_kw[0]) == pytest.approx(150.0, abs=1.5e-3)
    model = SharedForecaster(train_shared_model(fleet_factory.base, "naive"), fleet_factory.base)
    for i, spec in enumerate(fleet_specs(3)):
        alone = FeederRuntime(spec, fleet_factory.build(spec), model, MPCConfig())
        kw = []
        for k in range(STEPS):
            if k == 4:
                alone.set_limit(result.limits_kw[0][i])
            kw.append(alone.step().telemetry["feeder_kw"])
        np.testing.assert_allclose(result.feeder_kw[:, i], kw, rtol=1e-9)
    assert result.published == STEPS * (2 * 3 + 1) + 3
