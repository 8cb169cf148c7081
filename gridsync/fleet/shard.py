"""A worker's share of the fleet: the feeders it hosts, stepped on request.

``FeederShard`` is plain Python; the Ray runner wraps it as an actor (one process per worker,
restarted by Ray if it dies) and the in-process runner calls it directly. A shard builds each
feeder lazily on its first request: from the store's last checkpoint if there is one (a
restarted worker), else fresh. Every step is committed to the store together with the
feeder's checkpoint before the call returns, so a step is either stored with its state or not
at all; a repeated request for a step already stored returns the stored result.
"""

from __future__ import annotations

import os
import pickle
import time

from gridsync.dispatch.mpc import MPCConfig
from gridsync.fleet.feeder import FeederRuntime, StepOutput
from gridsync.fleet.forecast import SharedForecaster
from gridsync.fleet.replicas import FeederSpec, ReplicaFactory, ScenarioSource
from gridsync.fleet.store import make_fleet_store


def _pin_threads() -> None:
    """One BLAS/OpenMP thread per worker: the workers are the parallelism (and on a shared
    2-core machine extra threads only slow every solve down)."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)


class FeederShard:
    """Hosts ``specs``; ``model`` is the shared forecast model (or a Ray reference to it)."""

    def __init__(
        self,
        worker: str,
        specs: list[FeederSpec],
        source: ScenarioSource,
        model,
        store_url: str | None,
        mpc_config: MPCConfig | None = None,
        store=None,
    ) -> None:
        _pin_threads()
        self.worker = worker
        self.specs = {s.feeder_id: s for s in specs}
        self.factory = ReplicaFactory.for_source(source)
        self.forecaster = SharedForecaster(model, self.factory.base)
        self.store = store if store is not None else make_fleet_store(store_url)
        self.store.migrate()
        self.mpc_config = mpc_config
        self.feeders: dict[str, FeederRuntime] = {}
        self._last: dict[str, StepOutput] = {}
        self.resumed: dict[str, int] = {}

    def pid(self) -> int:
        return os.getpid()

    def rss_mb(self) -> float:
        """Resident memory of this worker process (MB)."""
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20

    def load(self, feeder_ids: list[str] | None = None) -> int:
        """Build (or restore) the feeders now rather than on their first step."""
        for fid in feeder_ids or list(self.specs):
            self._runtime(fid)
        return len(self.feeders)

    def positions(self) -> dict[str, tuple[int, float | None, StepOutput | None]]:
        """Per feeder hosted: its next step index (0-based in the window), the import limit
        it runs under and its last stored step's output (None before the first)."""
        out = {}
        for fid in self.specs:
            rt = self._runtime(fid)
            out[fid] = (rt.step_index, rt.limit_kw, self._last.get(fid))
        return out

    def _runtime(self, feeder_id: str) -> FeederRuntime:
        rt = self.feeders.get(feeder_id)
        if rt is not None:
            return rt
        spec = self.specs[feeder_id]
        scenario = self.factory.build(spec)
        saved = self.store.last_checkpoint(feeder_id)
        if saved is None:
            rt = FeederRuntime(spec, scenario, self.forecaster, self.mpc_config)
        else:
            step, blob = saved
            state = pickle.loads(blob)
            rt = FeederRuntime.restore(state["runtime"], spec, scenario, self.forecaster)
            self._last[feeder_id] = state["output"]
            self.resumed[feeder_id] = step
        self.feeders[feeder_id] = rt
        return rt

    def step(self, feeder_id: str, step_index: int, limit_kw: float | None) -> StepOutput:
        """Run the feeder's step ``step_index`` (0-based in the window) under ``limit_kw``
        (applied from this step's re-plan on) and commit it; if that step is already stored
        (a retried call after a restart), return the stored result instead."""
        rt = self._runtime(feeder_id)
        if rt.step_index == step_index + 1 and feeder_id in self._last:
            return self._last[feeder_id]
        if rt.step_index != step_index:
            msg = (
                f"feeder {feeder_id}: asked for step {step_index} but its stored state is at "
                f"step {rt.step_index}"
            )
            raise RuntimeError(msg)
        if limit_kw != rt.limit_kw:
            rt.set_limit(limit_kw)
        out = rt.step()
        t0 = time.perf_counter()
        blob = pickle.dumps({"runtime": rt.checkpoint(), "output": out}, protocol=5)
        t1 = time.perf_counter()
        out.extras["stored"] = self.store.commit_step(out, blob)
        out.extras["checkpoint_s"] = t1 - t0
        out.extras["commit_s"] = time.perf_counter() - t1
        out.extras["checkpoint_bytes"] = len(blob)
        out.extras["worker"] = self.worker
        self._last[feeder_id] = out
        return out

    def stats(self) -> dict:
        return {
            "worker": self.worker,
            "pid": os.getpid(),
            "feeders": len(self.feeders),
            "forecast_issues": self.forecaster.issues,
            "resumed": dict(self.resumed),
            "rss_mb": self.rss_mb(),
            "cpu_s": time.process_time(),
        }
