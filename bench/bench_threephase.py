"""Three-phase unbalanced power flow against OpenDSS (DSS-Python) in the same process.

* IEEE 13-node feeder (regulator taps fixed at the published solution): per-node |V| error
  against OpenDSS solved to 1e-10, time per solve; and the published script with its
  regulators acting (``regulators.regulate`` vs OpenDSS's static control): taps and |V|.
* IEEE European LV feeder (906 buses, 55 single-phase customers) over its 96-step day (the
  shipped 15-minute load shapes): |V| error at every node and step; time per snapshot of our
  batch (all 96 at once) and of our one-at-a-time loop against OpenDSS's yearly-mode loop
  (one ``Solve`` per step, all node voltages read back each step) at its default tolerance
  (1e-4) and at 1e-10; unbalance KPIs of the day.
* The default and the stressed scenarios, uncontrolled, balanced and three-phase
  (``[grid] phases = 3``): unbalance and voltage KPIs of the twin (``argv[1]`` days, 7);
  the default scenario with every single-phase connection on phase a (2 days at most).

Timings are the best of ``REPEATS`` on the shared machine. Writes bench/results/threephase.json
(``bench_threephase.py [days] [section ...]`` re-runs only the named sections).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from importlib import resources
from pathlib import Path

import numpy as np

from gridsync.grid.threephase.from_dss import read_network
from gridsync.grid.threephase.solver import ThreePhaseSolver, unbalance

OUT = Path(__file__).parent / "results" / "threephase.json"
FEEDERS = Path(str(resources.files("gridsync") / "data" / "feeders"))
REPEATS = 5


def _best(fn, repeats: int = REPEATS) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def _dss(path: Path, *commands: str):
    from dss import DSS

    DSS.AllowChangeDir = False
    DSS.Text.Command = "clear"
    DSS.Text.Command = f"redirect [{path}]"
    for c in commands:
        DSS.Text.Command = c
    return DSS.ActiveCircuit


def ieee13() -> dict:
    path = FEEDERS / "ieee13" / "IEEE13Nodeckt.dss"
    t_build, net = _best(lambda: read_network(path), 3)
    solver = ThreePhaseSolver(net)
    t_ours, res = _best(lambda: solver.solve(net.loads.p_kw, net.loads.q_kvar))
    ckt = _dss(path, "set tolerance=1e-10", "solve")
    names = [n.lower() for n in ckt.AllNodeNames]
    err = np.abs(res.vm_pu[0, net.node_index(names)] - np.asarray(ckt.AllBusVmagPu))
    return {
        "nodes_compared": len(names),
        "max_abs_vm_error_pu": float(err.max()),
        "worst_node": names[int(err.argmax())],
        "model_notes": net.notes + ["regulator taps fixed at the published solution (1.0625, 1.05, 1.06875)"],
        "ours_read_build_s": t_build,
        "ours_solve_s": t_ours,
        "iterations": res.iterations,
    }


def ieee13_regulated(tmp: Path) -> dict:
    """The published script with its regulators acting (static mode) against OpenDSS's."""
    from gridsync.grid.threephase.dss import read_dss
    from gridsync.grid.threephase.regulators import regulate

    text = (FEEDERS / "ieee13" / "IEEE13Nodeckt.dss").read_text().splitlines()
    keep = [x for x in text if not x.startswith("Transformer.Reg") and "Controlmode=OFF" not in x]
    path = tmp / "ieee13_regulated.dss"
    path.write_text("\n".join(keep))
    t_ours, (net, res, taps) = _best(lambda: regulate(read_dss(path)), 3)
    ckt = _dss(path, "set tolerance=1e-10", "solve")
    ref = {}
    for name in ("reg1", "reg2", "reg3"):
        ckt.Transformers.Name = name
        ref[name] = ckt.Transformers.Tap
    names = [n.lower() for n in ckt.AllNodeNames]
    err = np.abs(res.vm_pu[0, net.node_index(names)] - np.asarray(ckt.AllBusVmagPu))
    return {
        "taps_ours": {k.split(".")[1]: v for k, v in taps.items()},
        "taps_opendss": ref,
        "max_abs_vm_error_pu": float(err.max()),
        "ours_parse_regulate_solve_s": t_ours,
    }


def eu_lv_day() -> dict:
    path = FEEDERS / "ieee_eu_lv" / "Master.dss"
    t_build, net = _best(lambda: read_network(path), 3)
    t_factor, solver = _best(lambda: ThreePhaseSolver(net), 3)
    loads = net.loads
    mult = np.stack([net.load_shapes[net.load_shape_of[e]] for e in loads.element], axis=1)
    p, q = mult * loads.p_kw, mult * loads.q_kvar
    n_t = len(mult)
    t_batch, res = _best(lambda: solver.solve(p, q))
    t_loop, _ = _best(lambda: [solver.solve(p[k], q[k]) for k in range(n_t)])

    def opendss_day(ckt) -> list[np.ndarray]:
        ckt.Solution.Hour, ckt.Solution.Seconds = 0, 0.0
        out = []
        for _ in range(n_t):
            ckt.Solution.Solve()
            out.append(np.asarray(ckt.AllBusVmagPu))
        return out

    ckt = _dss(path, "set mode=yearly number=1 stepsize=15m")
    t_dss_default, _ = _best(lambda: opendss_day(ckt))
    ckt = _dss(path, "set mode=yearly number=1 stepsize=15m", "set tolerance=1e-10")
    t_dss_tight, ref = _best(lambda: opendss_day(ckt))
    idx = net.node_index([n.lower() for n in ckt.AllNodeNames])
    err = np.abs(res.vm_pu[:, idx] - np.asarray(ref))
    t0 = time.perf_counter()
    _dss(path)
    t_dss_compile = time.perf_counter() - t0
    kpi = unbalance(net, res.v)
    vuf = kpi["vuf_pct"]
    lv = np.isfinite(vuf[0])
    return {
        "buses": int(len(net.bus_names)),
        "nodes_compared": int(len(idx)),
        "customers": int(len(net.load_names)),
        "snapshots": n_t,
        "max_abs_vm_error_pu": float(err.max()),
        "ours_read_build_s": t_build,
        "ours_factorise_s": t_factor,
        "ours_batch_per_snapshot_s": t_batch / n_t,
        "ours_loop_per_snapshot_s": t_loop / n_t,
        "opendss_compile_s": t_dss_compile,
        "opendss_per_snapshot_s_tol_1e-4": t_dss_default / n_t,
        "opendss_per_snapshot_s_tol_1e-10": t_dss_tight / n_t,
        "speedup_batch_vs_opendss_default_tol": t_dss_default / t_batch,
        "speedup_loop_vs_opendss_default_tol": t_dss_default / t_loop,
        "iterations": res.iterations,
        "max_vuf_pct": float(np.nanmax(vuf)),
        "bus_steps_vuf_above_2pct": int((vuf[:, lv] > 2.0).sum()),
        "max_residual_current_a": float(kpi["residual_current_a"].max()),
    }


def scenario_unbalance(days: int, name: str | None = None) -> dict:
    """The bundled scenario ``name`` (None: default) balanced and three-phase, uncontrolled."""
    from gridsync.sim.builder import load_scenario
    from gridsync.sim.kpi import compute_kpis
    from gridsync.sim.registry import make_controller
    from gridsync.sim.simulator import simulate

    out = {}
    for phases in (1, 3):
        sc = load_scenario(name, days=days, history_days=7, phases=phases)
        res = simulate(sc, make_controller("uncontrolled"))
        k = compute_kpis(res, sc)
        out[f"phases_{phases}"] = {
            key: k[key]
            for key in (
                "max_vuf_pct",
                "vuf_bus_steps_above_2pct",
                "max_neutral_current_a",
                "voltage_violation_bus_steps",
                "min_voltage_pu",
                "max_voltage_pu",
                "peak_import_kw",
                "losses_kwh",
                "runtime_s",
            )
            if key in k
        }
    out["days"] = days
    out["start"] = str(sc.window[0])
    out["controller"] = "uncontrolled"
    return out


def _no_nan(obj):
    """NaN (a KPI that does not apply, e.g. VUF of a balanced run) as JSON null."""
    if isinstance(obj, dict):
        return {k: _no_nan(v) for k, v in obj.items()}
    if isinstance(obj, float) and not np.isfinite(obj):
        return None
    return obj


def worst_case(days: int) -> dict:
    """The default scenario three-phase with every single-phase connection on phase a."""
    from gridsync.model.scenario_config import load_scenario_config
    from gridsync.sim.builder import build_scenario, resolve_scenario_path
    from gridsync.sim.kpi import compute_kpis
    from gridsync.sim.registry import make_controller
    from gridsync.sim.simulator import simulate

    path = resolve_scenario_path(None)
    cfg = load_scenario_config(path)
    cfg = cfg.model_copy(
        update={
            "grid": cfg.grid.model_copy(update={"phases": 3, "single_phase_on": "a"}),
            "time": cfg.time.model_copy(update={"days": days, "history_days": 7}),
        }
    )
    sc = build_scenario(cfg, base_dir=path.parent)
    k = compute_kpis(simulate(sc, make_controller("uncontrolled")), sc)
    keys = ("max_vuf_pct", "vuf_bus_steps_above_2pct", "max_neutral_current_a")
    keys += ("voltage_violation_bus_steps", "min_voltage_pu", "max_voltage_pu")
    return {
        "days": days,
        "start": str(sc.window[0]),
        "controller": "uncontrolled",
        "phases": sc.three_phase.alloc.summary(),
        **{key: k[key] for key in keys},
    }


def _regulated() -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        return ieee13_regulated(Path(tmp))


def main() -> None:
    """``bench_threephase.py [days] [section ...]``: run the named sections (default all) and
    update them in the JSON, keeping the others; each section records the commit it ran on."""
    args = sys.argv[1:]
    days = int(args.pop(0)) if args and args[0].isdigit() else 7
    sections = {
        "ieee13": ieee13,
        "ieee13_regulated": _regulated,
        "eu_lv_day": eu_lv_day,
        "default_scenario": lambda: scenario_unbalance(days),
        "summer_high_pv": lambda: scenario_unbalance(days, "summer-high-pv"),
        "winter_electrified": lambda: scenario_unbalance(days, "winter-electrified"),
        "default_all_single_phase_on_a": lambda: worst_case(min(days, 2)),
    }
    unknown = set(args) - set(sections)
    if unknown:
        raise SystemExit(f"unknown sections {sorted(unknown)}; choose from {list(sections)}")
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=OUT.parent
    ).stdout.strip()
    result = json.loads(OUT.read_text()) if OUT.exists() else {}
    for name in args or sections:
        result[name] = {**sections[name](), "commit": commit}
    rows = []
    for sec, key in (
        ("ieee13", "max_abs_vm_error_pu"),
        ("ieee13_regulated", "max_abs_vm_error_pu"),
        ("eu_lv_day", "max_abs_vm_error_pu"),
        ("eu_lv_day", "ours_batch_per_snapshot_s"),
        ("eu_lv_day", "ours_loop_per_snapshot_s"),
        ("eu_lv_day", "opendss_per_snapshot_s_tol_1e-4"),
        ("eu_lv_day", "opendss_per_snapshot_s_tol_1e-10"),
        ("eu_lv_day", "max_vuf_pct"),
    ):
        rows.append((f"{sec} {key}", result.get(sec, {}).get(key, float("nan"))))
    for sec in ("default_scenario", "summer_high_pv", "winter_electrified"):
        for ph in ("phases_1", "phases_3"):
            for key in ("max_vuf_pct", "vuf_bus_steps_above_2pct", "voltage_violation_bus_steps"):
                val = result.get(sec, {}).get(ph, {}).get(key)
                rows.append((f"{sec} {ph} {key}", float("nan") if val is None else val))
    for name, val in rows:
        print(f"{name:<56} {val:.6g}")
    OUT.write_text(json.dumps(_no_nan(result), indent=2) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
