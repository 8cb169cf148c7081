"""Simulator benchmark: steps per second vs fleet size, and power-flow time vs bus count.

Power flow is the hot path of the twin. Compares, in the same run, our warm-started
Newton-Raphson (`PowerFlowModel.solve`) and batched fixed-point solver against
`pandapower.runpp` on the bundled feeder and on replicated versions of it (up to ~2,200 buses).
Writes bench/results/bench_simulator.json.
"""

from __future__ import annotations

import copy
import json
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

from gridsync.dispatch.rules import UncontrolledController
from gridsync.grid.powerflow import build_powerflow_model
from gridsync.grid.synthetic import replicate_feeder_net
from gridsync.model.network import feeder_from_net
from gridsync.model.scenario_config import load_scenario_config
from gridsync.sim.builder import build_scenario, default_scenario_path
from gridsync.sim.simulator import simulate

OUT = Path(__file__).parent / "results" / "bench_simulator.json"


def fleet_scaling(sizes=(100, 1_000, 10_000), days: int = 1) -> list[dict]:
    """Fleets of ``sizes`` assets on as many copies of the feeder as keep asset density real."""
    import pandapower as pp

    from gridsync.model.network import load_feeder, resolve_data_path

    base = load_scenario_config(default_scenario_path())
    kinds = ("pv", "battery", "ev", "deferrable", "thermal")
    total = sum(getattr(base.fleet, k).count for k in kinds)
    feeder = load_feeder(resolve_data_path(base.network.path))
    tmp = Path(tempfile.mkdtemp())
    rows = []
    for n in sizes:
        copies = max(1, round(n / total))
        net_path = tmp / f"feeder_x{copies}.json"
        pp.to_json(replicate_feeder_net(feeder.net, copies), str(net_path))
        fleet = base.fleet.model_copy(
            update={
                k: getattr(base.fleet, k).model_copy(
                    update={"count": max(1, round(getattr(base.fleet, k).count * n / total))}
                )
                for k in kinds
            }
        )
        cfg = base.model_copy(
            update={
                "fleet": fleet,
                "network": base.network.model_copy(update={"path": str(net_path)}),
                "time": base.time.model_copy(update={"days": days, "history_days": 1}),
            }
        )
        t = time.perf_counter()
        scenario = build_scenario(cfg)
        scenario.powerflow()
        build_s = time.perf_counter() - t
        res = simulate(scenario, UncontrolledController())
        rows.append(
            {
                "assets": scenario.fleet.size,
                "buses": scenario.feeder.n_bus,
                "steps": scenario.n_steps,
                "build_s": round(build_s, 3),
                "run_s": round(res.runtime_s, 3),
                "steps_per_s": round(scenario.n_steps / res.runtime_s, 1),
            }
        )
        print(f"fleet {rows[-1]}")
    return rows


def _injections(feeder, rng, scale: float):
    p = np.zeros(feeder.n_bus)
    q = np.zeros(feeder.n_bus)
    np.add.at(
        p,
        feeder.load_bus_pos,
        feeder.load_p_kw * scale * rng.uniform(0.3, 1.2, len(feeder.load_p_kw)),
    )
    np.add.at(q, feeder.load_bus_pos, feeder.load_q_kvar * scale)
    return p, q


def powerflow_scaling(copies=(1, 5, 10, 20), reps: int = 30) -> list[dict]:
    import pandapower as pp

    from gridsync.model.network import load_feeder, resolve_data_path

    base = load_feeder(resolve_data_path("bundled:feeders/simbench_lv_semiurb5.json"))
    rows = []
    rng = np.random.default_rng(0)
    for k in copies:
        net = replicate_feeder_net(base.net, k)
        feeder = feeder_from_net(net, f"semiurb5x{k}")
        model = build_powerflow_model(feeder)
        p, q = _injections(feeder, rng, 1.0)
        _, v = model.solve(p, q)
        t = time.perf_counter()
        for _ in range(reps):
            p2, q2 = _injections(feeder, rng, 1.0)
            _, v = model.solve(p2, q2, v0=v)
        nr_ms = (time.perf_counter() - t) / reps * 1e3
        batch_p = np.stack([_injections(feeder, rng, 1.0)[0] for _ in range(96)])
        batch_q = np.tile(q, (96, 1))
        t = time.perf_counter()
        model.solve_batch(batch_p, batch_q)
        batch_ms = (time.perf_counter() - t) / 96 * 1e3
        ref = copy.deepcopy(net)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pp.runpp(ref)
            t = time.perf_counter()
            for _ in range(max(3, reps // 5)):
                ref.load["p_mw"] = ref.load.p_mw * rng.uniform(0.99, 1.01, len(ref.load))
                pp.runpp(ref, init="results")
            pp_ms = (time.perf_counter() - t) / max(3, reps // 5) * 1e3
        rows.append(
            {
                "buses": feeder.n_bus,
                "nr_warm_ms": round(nr_ms, 3),
                "batch_ms_per_snapshot": round(batch_ms, 3),
                "pandapower_runpp_ms": round(pp_ms, 2),
                "speedup_nr_vs_runpp": round(pp_ms / nr_ms, 1),
                "speedup_batch_vs_runpp": round(pp_ms / batch_ms, 1),
            }
        )
        print(f"powerflow {rows[-1]}")
    return rows


def main() -> None:
    result = {"fleet_scaling": fleet_scaling(), "powerflow_scaling": powerflow_scaling()}
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2))
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
