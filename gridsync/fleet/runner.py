"""Run a fleet of feeders: on Ray actors (local or a cluster) or in-process without Ray.

The coordinator (this process) trains the shared forecast model once and broadcasts it
(``ray.put``), places the feeders on ``workers`` shard actors (feeder i on worker i mod W;
each actor is restarted by Ray if its process dies, up to ``max_restarts`` times, and its lost
calls are retried as often), and steps the fleet over the window in coordination periods (one
re-plan interval, an hour by default): at the start of each the coordinator allocates the
substation import limit (``<prefix>.<feeder>.limit``, applied at the feeders' re-plan), then
requests every feeder's steps of the period, at most ``max_in_flight`` requests outstanding per
worker (back-pressure: the coordinator waits for results before submitting more, so queues and
memory stay bounded whatever the fleet size; the feeders are independent inside a period, so
a worker never idles waiting for the others at each step). Results are published on the fleet
bus (``<prefix>.<feeder>.telemetry`` / ``.plan``) and every step's flexibility becomes the
fleet's VPP bid (``<prefix>.substation.bid``). Run as fast as possible this is a simulation;
live, each step waits for its interval anyway.

The in-process backend runs the same shard code in this process, one feeder after another:
the reference the Ray overhead is measured against.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from gridsync.dispatch.mpc import MPCConfig
from gridsync.fleet.bus import SUBSTATION, make_fleet_bus
from gridsync.fleet.coordinator import aggregate_bid, allocate_limits
from gridsync.fleet.feeder import StepOutput
from gridsync.fleet.forecast import FORECAST_MODELS, train_shared_model
from gridsync.fleet.replicas import ReplicaFactory, ScenarioSource, fleet_specs
from gridsync.fleet.shard import FeederShard

log = logging.getLogger(__name__)
BACKENDS = ("ray", "inprocess")


@dataclass
class FleetRunConfig:
    """What to run. ``store_url`` None: in-memory SQLite in-process, a temporary SQLite file
    with Ray (the workers are other processes). ``steps`` None: the whole window."""

    n_feeders: int = 10
    workers: int = 2
    backend: str = "ray"
    address: str | None = None
    source: ScenarioSource = field(default_factory=ScenarioSource)
    store_url: str | None = None
    bus_url: str | None = None
    bus_prefix: str = "gridsync"
    substation_limit_kw: float | None = None
    forecast: str = "learned"
    max_in_flight: int = 2
    resolve_every: int = 4
    base_seed: int = 1000
    steps: int | None = None
    max_restarts: int = 3  # per worker actor; its lost calls are retried as often

    def __post_init__(self) -> None:
        checks = {
            "n_feeders": (self.n_feeders, self.n_feeders >= 1, ">= 1"),
            "workers": (self.workers, self.workers >= 1, ">= 1"),
            "backend": (self.backend, self.backend in BACKENDS, f"one of {BACKENDS}"),
            "forecast": (self.forecast, self.forecast in FORECAST_MODELS, f"{FORECAST_MODELS}"),
            "max_in_flight": (self.max_in_flight, self.max_in_flight >= 1, ">= 1"),
            "resolve_every": (self.resolve_every, self.resolve_every >= 1, ">= 1"),
            "max_restarts": (self.max_restarts, self.max_restarts >= 0, ">= 0"),
        }
        for name, (value, ok, expected) in checks.items():
            if not ok:
                msg = f"fleet.{name} = {value!r}: expected {expected}"
                raise ValueError(msg)
        if self.substation_limit_kw is not None and self.substation_limit_kw <= 0:
            msg = f"fleet.substation_limit_kw = {self.substation_limit_kw!r}: expected > 0"
            raise ValueError(msg)


@dataclass
class FleetResult:
    """Measurements of one run (seconds, kW) and what it published and stored."""

    config: FleetRunConfig
    n_steps: int  # steps run (from first_step on)
    first_step: int  # 0, or where a resumed fleet continued
    setup_s: float
    train_s: float
    run_s: float
    loop_s: np.ndarray  # (n_steps, n_feeders) in-worker loop wall time
    cpu_s: np.ndarray  # (n_steps, n_feeders) in-worker loop CPU time
    feeder_kw: np.ndarray  # (n_steps, n_feeders)
    bids: list[dict]
    limits_kw: list[list[float]]
    published: int
    worker_stats: list[dict]
    rss_per_feeder_mb: float
    store_url: str | None
    plan_status: dict[str, int]
    persist_s: np.ndarray | None = None  # (n_steps, n_feeders) checkpoint + commit, s
    checkpoint_bytes: np.ndarray | None = None  # (n_steps, n_feeders)
    driver_cpu_s: float = 0.0  # coordinator process CPU over the run (all of it in-process)
    worker_cpu_s: float = 0.0  # Ray worker processes' CPU over the run

    @property
    def feeder_steps(self) -> int:
        return int(self.loop_s.size)

    def summary(self) -> dict:
        loop = self.loop_s.ravel() if self.loop_s.size else np.array([np.nan])
        k = self.first_step + np.arange(self.n_steps)
        replan = k % self.config.resolve_every == 0  # the MPC's re-plan steps
        return {
            "n_feeders": self.config.n_feeders,
            "workers": self.config.workers if self.config.backend == "ray" else 1,
            "backend": self.config.backend,
            "steps": self.n_steps,
            "first_step": self.first_step,
            "feeder_steps": self.feeder_steps,
            "setup_s": round(self.setup_s, 3),
            "train_s": round(self.train_s, 3),
            "run_s": round(self.run_s, 3),
            "feeder_steps_per_s": round(self.feeder_steps / max(self.run_s, 1e-9), 3),
            "loop_p50_s": round(float(np.percentile(loop, 50)), 4),
            "loop_p99_s": round(float(np.percentile(loop, 99)), 4),
            "loop_max_s": round(float(loop.max()), 4),
            "loop_cpu_per_feeder_step_s": round(float(self.cpu_s.mean()), 4),
            "loop_cpu_replan_step_s": round(float(self.cpu_s[replan].mean()), 4),
            "loop_cpu_other_step_s": round(float(self.cpu_s[~replan].mean()), 4),
            "cpu_per_feeder_step_s": round(
                (self.driver_cpu_s + self.worker_cpu_s) / max(self.feeder_steps, 1), 4
            ),
            "driver_cpu_s": round(self.driver_cpu_s, 2),
            "worker_cpu_s": round(self.worker_cpu_s, 2),
            "rss_per_feeder_mb": round(self.rss_per_feeder_mb, 2),
            **_persist_summary(self.persist_s, self.checkpoint_bytes),
            "worker_rss_mb": [round(w["rss_mb"], 1) for w in self.worker_stats],
            "published": self.published,
            "plan_status": self.plan_status,
            "resumed": {k: v for w in self.worker_stats for k, v in w.get("resumed", {}).items()},
        }


def _ray_init(cfg: FleetRunConfig):
    import ray

    if not ray.is_initialized():
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        kwargs: dict = {
            "include_dashboard": False,
            "log_to_driver": False,
            "configure_logging": False,
        }
        if cfg.address:
            kwargs["address"] = cfg.address
        else:
            kwargs.update(num_cpus=cfg.workers, object_store_memory=256 * 2**20)
        ray.init(**kwargs)
    cpus = ray.cluster_resources().get("CPU", 0)
    if cpus < cfg.workers:
        msg = (
            f"fleet.workers = {cfg.workers}: each worker takes one CPU, but the Ray cluster "
            f"has {cpus:g}; lower --workers or start Ray with more CPUs"
        )
        raise ValueError(msg)
    return ray


class _RayShards:
    """Shard actors and back-pressured calls (at most ``max_in_flight`` per worker)."""

    def __init__(self, cfg, groups, model, store_url, mpc_config) -> None:
        ray = _ray_init(cfg)
        self.ray = ray
        actor = ray.remote(FeederShard).options(
            num_cpus=1,
            max_restarts=cfg.max_restarts,
            max_task_retries=cfg.max_restarts,
            max_concurrency=1,
        )
        # one copy in the object store, read by every worker; kept referenced so that a
        # restarted actor can read it again
        self.model_ref = model_ref = ray.put(model)
        self.handles = [
            actor.remote(f"w{j}", specs, cfg.source, model_ref, store_url, mpc_config)
            for j, specs in enumerate(groups)
        ]
        self.max_in_flight = cfg.max_in_flight

    def call_all(self, name: str, *args) -> list:
        return self.ray.get([getattr(h, name).remote(*args) for h in self.handles])

    def step_all(self, work: list[list[tuple[str, int, float | None]]]) -> list[StepOutput]:
        queues = [deque(w) for w in work]
        inflight: dict = {}
        count = [0] * len(queues)
        out: list[StepOutput] = []
        while any(queues) or inflight:
            for j, q in enumerate(queues):
                while q and count[j] < self.max_in_flight:
                    ref = self.handles[j].step.remote(*q.popleft())
                    inflight[ref] = j
                    count[j] += 1
            done, _ = self.ray.wait(list(inflight), num_returns=1)
            for ref in done:
                count[inflight.pop(ref)] -= 1
                out.append(self.ray.get(ref))
        return out

    def close(self) -> None:
        for h in self.handles:
            self.ray.kill(h, no_restart=True)


class _LocalShards:
    """The same shard code in this process (no Ray): the overhead reference."""

    def __init__(self, cfg, groups, model, store_url, mpc_config) -> None:
        specs = [s for g in groups for s in g]
        self.shards = [FeederShard("w0", specs, cfg.source, model, store_url, mpc_config)]

    def call_all(self, name: str, *args) -> list:
        return [getattr(s, name)(*args) for s in self.shards]

    def step_all(self, work: list[list[tuple[str, int, float | None]]]) -> list[StepOutput]:
        return [self.shards[0].step(*item) for w in work for item in w]

    def close(self) -> None:
        for s in self.shards:
            s.store.close()


def run_fleet(
    cfg: FleetRunConfig,
    on_step: Callable[[int, object], None] | None = None,
    model=None,
) -> FleetResult:
    """Run the fleet over the window (see module doc). ``on_step(k, shards)`` is called after
    every step ``k`` is recorded (progress bars; the failure test kills a worker from it).
    ``model``: a shared forecast model already trained on this source (``train_s`` is 0)."""
    t0 = time.perf_counter()
    factory = ReplicaFactory.for_source(cfg.source)
    base = factory.base
    n_steps = base.n_steps if cfg.steps is None else min(cfg.steps, base.n_steps)
    tt = time.perf_counter()
    if model is None:
        model = train_shared_model(base, cfg.forecast)
    train_s = time.perf_counter() - tt
    specs = fleet_specs(cfg.n_feeders, cfg.base_seed)
    ids = [s.feeder_id for s in specs]
    n_workers = cfg.workers if cfg.backend == "ray" else 1
    groups = [specs[j::n_workers] for j in range(n_workers)]
    groups = [g for g in groups if g]
    store_url = cfg.store_url
    if store_url is None and cfg.backend == "ray":
        store_url = str(Path(tempfile.mkdtemp(prefix="gridsync-fleet-")) / "fleet.sqlite")
    mpc_config = MPCConfig(resolve_every=cfg.resolve_every)
    shard_cls = _RayShards if cfg.backend == "ray" else _LocalShards
    bus = make_fleet_bus(cfg.bus_url, cfg.bus_prefix)
    try:
        shards = shard_cls(cfg, groups, model, store_url, mpc_config)
    except BaseException:
        bus.close()
        raise
    try:
        rss0 = shards.call_all("rss_mb")
        shards.call_all("load")
        # a store that already holds this fleet resumes it: from the step the slowest feeder
        # has not stored yet (a feeder one step ahead returns its stored step)
        positions = {f: v for p in shards.call_all("positions") for f, v in p.items()}
        first = min(k for k, _, _ in positions.values())
        setup_s = time.perf_counter() - t0
        col = {fid: i for i, fid in enumerate(ids)}
        loop_s = np.zeros((n_steps, len(ids)))
        cpu_s = np.zeros_like(loop_s)
        persist_s = np.zeros_like(loop_s)  # checkpoint + store commit after each loop
        ckpt_bytes = np.zeros_like(loop_s)
        feeder_kw = np.zeros_like(loop_s)
        limits: dict[str, float | None] = {f: positions[f][1] for f in ids}
        bids, limit_log, published = [], [], 0
        status: dict[str, int] = {}
        last: dict[str, StepOutput] = {f: v[2] for f, v in positions.items() if v[2] is not None}
        cpu0 = [st["cpu_s"] for st in shards.call_all("stats")]
        tr, driver0 = time.perf_counter(), time.process_time()
        k = first
        while k < n_steps:
            due = k % cfg.resolve_every == 0 and len(last) == len(ids)
            if cfg.substation_limit_kw is not None and due:
                planned = [last[f].planned_import_kw for f in ids]
                reducible = [sum(last[f].flex_up_kw) for f in ids]
                alloc = allocate_limits(planned, reducible, cfg.substation_limit_kw)
                limits = dict(zip(ids, alloc.round(3).tolist(), strict=True))
                limit_log.append(list(limits.values()))
                published += bus.publish_many(
                    [(f, "limit", {"step": k, "limit_kw": lim}, f"{f}.limit.{k}")
                     for f, lim in limits.items()]
                )  # fmt: skip
            # the feeders are independent until the next allocation: request all their steps
            # up to it at once, so a worker never idles waiting for the others at every step
            block = range(k, min(n_steps, (k // cfg.resolve_every + 1) * cfg.resolve_every))
            work = [[(s.feeder_id, j, limits[s.feeder_id]) for j in block for s in g]
                    for g in groups]  # fmt: skip
            outs: dict[int, list[StepOutput]] = {j: [] for j in block}
            for o in shards.step_all(work):
                outs[o.step - base.start_step].append(o)
            for j in block:
                published += _record_step(j, outs[j], col, last, status, ids, bus, bids,
                                          (loop_s, cpu_s, persist_s, ckpt_bytes, feeder_kw))  # fmt: skip
                if on_step is not None:
                    on_step(j, shards)
            k = block.stop
        run_s = time.perf_counter() - tr
        driver_cpu_s = time.process_time() - driver0
        stats = shards.call_all("stats")
        worker_cpu_s = float(np.sum(np.subtract([st["cpu_s"] for st in stats], cpu0)))
        if cfg.backend != "ray":  # the shard runs in this process: its CPU is the driver's
            worker_cpu_s = 0.0
        rss1 = [st["rss_mb"] for st in stats]
        rss_per_feeder = float(np.sum(np.subtract(rss1, rss0))) / cfg.n_feeders
    finally:
        bus.close()
        shards.close()
    return FleetResult(
        config=cfg,
        n_steps=n_steps - first,
        first_step=first,
        setup_s=setup_s,
        train_s=train_s,
        run_s=run_s,
        loop_s=loop_s[first:],
        cpu_s=cpu_s[first:],
        feeder_kw=feeder_kw[first:],
        persist_s=persist_s[first:],
        checkpoint_bytes=ckpt_bytes[first:],
        bids=bids,
        limits_kw=limit_log,
        published=published,
        worker_stats=stats,
        rss_per_feeder_mb=rss_per_feeder,
        store_url=store_url,
        plan_status=status,
        driver_cpu_s=driver_cpu_s,
        worker_cpu_s=worker_cpu_s,
    )


def _persist_summary(persist_s, checkpoint_bytes) -> dict:
    """Checkpoint + commit time per feeder-step (p50/p99, s) and checkpoint size (kB)."""
    if persist_s is None or not persist_s.size:
        return {}
    return {
        "persist_p50_s": round(float(np.percentile(persist_s, 50)), 4),
        "persist_p99_s": round(float(np.percentile(persist_s, 99)), 4),
        "checkpoint_kb_mean": round(float(checkpoint_bytes.mean()) / 1024, 1),
    }


def _record_step(k, outs, col, last, status, ids, bus, bids, arrays) -> int:
    """Record step ``k``'s outputs, bid the fleet's flexibility and publish; returns the
    number of messages published."""
    loop_s, cpu_s, persist_s, ckpt_bytes, feeder_kw = arrays
    items = []
    for o in outs:
        i = col[o.feeder_id]
        loop_s[k, i], cpu_s[k, i] = o.loop_s, o.cpu_s
        persist_s[k, i] = o.extras["checkpoint_s"] + o.extras["commit_s"]
        ckpt_bytes[k, i] = o.extras["checkpoint_bytes"]
        feeder_kw[k, i] = o.telemetry["feeder_kw"]
        last[o.feeder_id] = o
        status[o.plan["status"]] = status.get(o.plan["status"], 0) + 1
        items.append((o.feeder_id, "telemetry", {"step": o.step, "time": o.time, **o.telemetry},
                      f"{o.feeder_id}.telemetry.{o.step}"))  # fmt: skip
        items.append((o.feeder_id, "plan", {"step": o.step, "time": o.time, **o.plan},
                      f"{o.feeder_id}.plan.{o.step}"))  # fmt: skip
    ordered = [last[f] for f in ids]
    bid = aggregate_bid(
        ordered[0].step,
        ordered[0].time,
        np.array([o.flex_up_kw for o in ordered]),
        np.array([o.flex_down_kw for o in ordered]),
        np.array([o.extras["up_cost_eur_per_kwh"] for o in ordered]),
        np.array([o.extras["down_value_eur_per_kwh"] for o in ordered]),
    )
    bids.append(bid.as_dict())
    items.append((SUBSTATION, "bid", bid.as_dict(), f"{SUBSTATION}.bid.{bid.step}"))
    return bus.publish_many(items)
