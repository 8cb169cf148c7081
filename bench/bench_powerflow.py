"""Power flow against pandapower.runpp: fidelity on every pandapower.networks case, and speed.

fidelity: every network function of ``pandapower.networks`` that builds without arguments (plus
a few variants: CIGRE MV with DER, Oberrhein generation case). Each goes through
``pandapower.runpp`` and ``gridsync.grid.runpp`` on copies of the same net; the row gives the
largest |V| difference (p.u.) and line/trafo/trafo3w loading difference (percentage points), or
GridSync's refusal message, or "runpp_fails" when pandapower itself does not solve it (outside
the target). Target: |V| within 1e-6 p.u. and loading within 1e-4 %.

speed (same process, same run, medians): on the default feeder (bundled SimBench semi-urban,
111 buses; loads at 55-145 % of nominal, each its own draw) one warm-started ``PowerFlowModel.solve`` and one snapshot of a 96-snapshot
``solve_batch`` against one ``pandapower.runpp`` (the faster of default options and
``init="results"``) on the same snapshots; the same on a 2,000+ bus network (case2848rte, with
PV generators; loads at 90-110 %), on the 20-fold replicated default feeder (2,220 buses) and on
pandapower's real LV grid ``lv_schutterwald`` (2,940 buses).

Run: ``nice -n 10 .venv/bin/python bench/bench_powerflow.py`` -> bench/results/powerflow.json
"""

from __future__ import annotations

import copy
import inspect
import json
import os
import platform
import time
import warnings
from pathlib import Path

import numpy as np

OUT = Path(__file__).parent / "results" / "powerflow.json"
V_TOL, LOADING_TOL = 1e-6, 1e-4
VARIANTS = {
    "create_cigre_network_mv(with_der='all')": ("create_cigre_network_mv", {"with_der": "all"}),
    "mv_oberrhein(scenario='generation')": ("mv_oberrhein", {"scenario": "generation"}),
}


def network_functions() -> dict[str, tuple[str, dict]]:
    """name -> (function, kwargs) of every pandapower.networks case buildable without arguments."""
    import pandapower.networks as pn

    out = {}
    for name in sorted(dir(pn)):
        func = getattr(pn, name)
        if name.startswith("_") or not inspect.isfunction(func):
            continue
        if not func.__module__.startswith("pandapower.networks"):
            continue
        params = inspect.signature(func).parameters.values()
        if any(p.default is inspect._empty and p.kind != p.VAR_KEYWORD for p in params):
            continue
        out[name] = (name, {})
    out.update(VARIANTS)
    return out


def _max_diff(a, b) -> float:
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if not len(a):
        return 0.0
    if not np.array_equal(np.isnan(a), np.isnan(b)):
        return float("inf")
    both = ~np.isnan(a)
    return float(np.max(np.abs(a[both] - b[both]), initial=0.0))


def fidelity_row(label: str, func: str, kwargs: dict) -> dict:
    import pandapower as pp
    import pandapower.networks as pn
    from pandapower.powerflow import LoadflowNotConverged

    from gridsync.grid import runpp
    from gridsync.grid.topology import UnsupportedElement

    row = {"network": label}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            net = getattr(pn, func)(**kwargs)
        except Exception as err:  # a case that does not even build is not in the target
            return {**row, "status": "does_not_build", "message": str(err)[:200]}
        row["buses"] = len(net.bus)
        ref, ours = copy.deepcopy(net), copy.deepcopy(net)
        t = time.perf_counter()
        try:
            pp.runpp(ref)
        except Exception as err:
            return {**row, "status": "runpp_fails", "message": f"{type(err).__name__}: {err}"[:200]}
        row["runpp_ms"] = round((time.perf_counter() - t) * 1e3, 1)
        t = time.perf_counter()
        try:
            runpp(ours)
        except UnsupportedElement as err:
            return {**row, "status": "refused", "message": str(err)}
        except LoadflowNotConverged as err:
            return {**row, "status": "not_converged", "message": str(err)}
        row["gridsync_runpp_ms"] = round((time.perf_counter() - t) * 1e3, 1)
    row["max_dvm_pu"] = _max_diff(ref.res_bus.vm_pu, ours.res_bus.vm_pu)
    row["max_dloading_pct"] = max(
        _max_diff(ref[t].loading_percent, ours[t].loading_percent)
        for t in ("res_line", "res_trafo", "res_trafo3w")
    )
    row["max_dp_ext_grid_mw"] = _max_diff(ref.res_ext_grid.p_mw, ours.res_ext_grid.p_mw)
    ok = row["max_dvm_pu"] <= V_TOL and row["max_dloading_pct"] <= LOADING_TOL
    row["status"] = "match" if ok else "mismatch"
    return row


def _snapshots(feeder, n: int, rng, spread: float):
    """``n`` snapshots by bus: every load at its own random share of nominal (1 +- ``spread``),
    the sgens the scenario would drive (``fleet_sgen_mask``) at rated power."""
    from gridsync.model.network import fleet_sgen_mask

    scale = rng.uniform(1 - spread, 1 + spread, (n, len(feeder.load_p_kw)))
    inc = np.zeros((len(feeder.load_p_kw), feeder.n_bus))
    inc[np.arange(len(feeder.load_p_kw)), feeder.load_bus_pos] = 1.0
    sg = feeder.net.sgen[fleet_sgen_mask(feeder.net)]
    sg_p, sg_q = np.zeros(feeder.n_bus), np.zeros(feeder.n_bus)
    at = feeder.bus_pos(sg.bus.to_numpy())
    np.add.at(sg_p, at, (sg.p_mw * sg.scaling).to_numpy() * 1e3)
    np.add.at(sg_q, at, (sg.q_mvar * sg.scaling).to_numpy() * 1e3)
    p = (scale * feeder.load_p_kw) @ inc - sg_p
    q = (scale * feeder.load_q_kvar) @ inc - sg_q
    return p, q, scale


def speed_row(label: str, feeder, reps: int = 20, batch: int = 96, spread: float = 0.45) -> dict:
    """Median times of runpp, warm Newton-Raphson and batched solves on the same snapshots."""
    import pandapower as pp

    from gridsync.grid.powerflow import build_powerflow_model

    rng = np.random.default_rng(0)
    p, q, scale = _snapshots(feeder, max(reps, batch), rng, spread)
    model = build_powerflow_model(feeder)
    net = copy.deepcopy(feeder.net)
    loads = net.load.in_service & net.load.bus.isin(feeder.bus_ids)
    p0, q0 = net.load.loc[loads, "p_mw"].to_numpy(), net.load.loc[loads, "q_mvar"].to_numpy()
    pp_ms = {"default": [], "init_results": []}
    nr_ms, vm_err = [], 0.0
    _, v = model.solve(p[0], q[0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pp.runpp(net)
        for k in range(reps):
            net.load.loc[loads, "p_mw"] = p0 * scale[k]
            net.load.loc[loads, "q_mvar"] = q0 * scale[k]
            for mode, kw in (("default", {}), ("init_results", {"init": "results"})):
                t = time.perf_counter()
                pp.runpp(net, **kw)
                pp_ms[mode].append((time.perf_counter() - t) * 1e3)
            t = time.perf_counter()
            res, v = model.solve(p[k], q[k], v0=v)
            nr_ms.append((time.perf_counter() - t) * 1e3)
            vm_err = max(
                vm_err, float(np.max(np.abs(res.vm_pu - net.res_bus.vm_pu.loc[feeder.bus_ids])))
            )
    batch_ms = []
    for _ in range(5):
        t = time.perf_counter()
        out = model.solve_batch(p[:batch], q[:batch])
        batch_ms.append((time.perf_counter() - t) * 1e3 / batch)
    runpp_ms = min(np.median(pp_ms["default"]), np.median(pp_ms["init_results"]))
    nr, per_snap = float(np.median(nr_ms)), float(np.median(batch_ms))
    return {
        "network": label,
        "buses": feeder.n_bus,
        "pv_buses": len(model.pv),
        "runpp_ms_default": round(float(np.median(pp_ms["default"])), 3),
        "runpp_ms_init_results": round(float(np.median(pp_ms["init_results"])), 3),
        "nr_warm_ms": round(nr, 3),
        "batch_ms_per_snapshot": round(per_snap, 4),
        "batch_all_converged": bool(np.all(out.converged)),
        "speedup_single_vs_runpp": round(runpp_ms / nr, 1),
        "speedup_batch_vs_runpp": round(runpp_ms / per_snap, 1),
        "max_dvm_vs_runpp_pu": vm_err,
    }


def main() -> dict:
    from gridsync.grid.sources import load_network
    from gridsync.grid.synthetic import replicate_feeder_net
    from gridsync.model.network import feeder_from_net

    t0 = time.time()
    fidelity_row("warm-up (numba compiles on the first runpp)", "case9", {})
    fidelity = []
    for label, (func, kwargs) in network_functions().items():
        row = fidelity_row(label, func, kwargs)
        fidelity.append(row)
        extra = row.get("message", "")[:90]
        print(
            f"{label:45s} {row.get('buses', ''):>6} {row['status']:14s} "
            f"dV={row.get('max_dvm_pu', float('nan')):.1e} "
            f"dload={row.get('max_dloading_pct', float('nan')):.1e} {extra}",
            flush=True,
        )
    default = load_network("bundled:feeders/simbench_lv_semiurb5.json").feeder
    speed = [speed_row("default feeder (SimBench 1-LV-semiurb5)", default)]
    big = load_network("pandapower:case2848rte").feeder
    speed.append(speed_row("case2848rte", big, reps=10, batch=96, spread=0.1))
    rep = replicate_feeder_net(default.net, 20)
    speed.append(speed_row("default feeder x20", feeder_from_net(rep, "semiurb5x20"), reps=10))
    schutterwald = load_network("pandapower:lv_schutterwald").feeder
    speed.append(speed_row("lv_schutterwald", schutterwald, reps=10))
    for row in speed:
        print(row, flush=True)
    solved = [r for r in fidelity if r["status"] not in ("runpp_fails", "does_not_build")]
    summary = {
        "networks_runpp_solves": len(solved),
        "match": sum(r["status"] == "match" for r in solved),
        "refused": sum(r["status"] == "refused" for r in solved),
        "mismatch_or_not_converged": [
            r["network"] for r in solved if r["status"] in ("mismatch", "not_converged")
        ],
        "max_dvm_pu_over_matches": max(
            (r["max_dvm_pu"] for r in solved if r["status"] == "match"), default=None
        ),
        "max_dloading_pct_over_matches": max(
            (r["max_dloading_pct"] for r in solved if r["status"] == "match"), default=None
        ),
    }
    print(summary)
    result = {
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "load_average_at_end": list(os.getloadavg()),
        },
        "targets": {
            "v_tol_pu": V_TOL,
            "loading_tol_pct": LOADING_TOL,
            "speedup_single": 20,
            "speedup_batch": 200,
            "speedup_2000_bus": 5,
        },
        "summary": summary,
        "fidelity": fidelity,
        "speed": speed,
        "runtime_s": round(time.time() - t0, 1),
    }
    OUT.write_text(json.dumps(result, indent=1, default=float) + "\n")
    return result


if __name__ == "__main__":
    main()
