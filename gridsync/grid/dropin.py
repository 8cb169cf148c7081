"""``runpp(net)``: a drop-in for ``pandapower.runpp`` on balanced networks, solved by GridSync.

The network goes through pandapower's converter (``gridsync.grid.topology``: element models,
switches, out-of-service elements, islands), our Newton-Raphson solves it (slacks, PV buses
with optional Q limits, ZIP loads), and pandapower's result writer fills ``net.res_bus``,
``res_line``, ``res_trafo``, ``res_trafo3w``, ``res_ext_grid``, ``res_gen``, ``res_load``,
``res_sgen``, ``res_shunt``, ``res_ward``, ``res_xward``, ``res_switch`` ... exactly as
``pandapower.runpp`` lays them out. Elements we do not model raise ``UnsupportedElement``
naming the element; a case that does not converge raises pandapower's
``LoadflowNotConverged`` (so code catching it keeps working).
"""

from __future__ import annotations

import time

import numpy as np

from gridsync.grid.newton import JacobianPattern, newton
from gridsync.grid.topology import NetworkModel, build_network_model

MAX_ITER = 30


def _solve(model: NetworkModel, loads, pv: np.ndarray, pq: np.ndarray, v0, tol, max_iter):
    """Newton-Raphson with ``loads`` = (generation, constant-P, -I, -Z consumption) in p.u."""
    s_gen, s_p, s_i, s_z = loads
    pattern = JacobianPattern(model.ybus, np.sort(np.r_[pv, pq]).astype(int), pq)
    return newton(model.ybus, pattern, s_gen - s_p, v0, s_i, s_z, tol_pu=tol, max_iter=max_iter)


def _pfsoln(model: NetworkModel, bus, gen, branch, v, limited=None):
    from pandapower.pypower.pfsoln import pfsoln

    p = model.ppci
    ref_gens = p["internal"]["ref_gens"]
    return pfsoln(
        model.base_mva, bus, gen, branch, p["svc"], p["tcsc"], p["ssc"], p["vsc"],
        model.ybus, model.yf, model.yt, v, model.ref, ref_gens, limited_gens=limited,
    )  # fmt: skip


def _solve_with_q_limits(model: NetworkModel, tol: float, max_iter: int):
    """PV generators that exceed their reactive limits are held at the limit (their bus turns
    PQ) and the case is solved again, one round per set of new violations, as pandapower's
    ``enforce_q_lims`` does: a held generator becomes a negative load of its bus, so it takes
    the bus's ZIP shares like pandapower's."""
    from pandapower.pypower.idx_gen import GEN_BUS, GEN_STATUS, PG, QG, QMAX, QMIN

    ppci = model.ppci
    bus, gen, branch = ppci["bus"], ppci["gen"], ppci["branch"]
    ref_gens = ppci["internal"]["ref_gens"]
    pv, pq = model.pv.copy(), model.pq.copy()
    loads = (model.s_gen, model.s_load, model.s_load_i, model.s_load_z)
    limited = np.zeros(0, dtype=np.int64)
    fixed_q = np.zeros(gen.shape[0])
    v, iterations = model.v0, 0
    while True:
        res = _solve(model, loads, pv, pq, v, tol, max_iter)
        iterations += res.iterations
        if not res.converged:
            return res, bus, gen, branch, iterations
        v = res.v
        b, g, br = _pfsoln(model, bus.copy(), gen.copy(), branch.copy(), v, limited)
        on = g[:, GEN_STATUS] > 0
        over = np.setdiff1d(np.flatnonzero(on & (g[:, QG] > g[:, QMAX])), ref_gens)
        under = np.setdiff1d(np.flatnonzero(on & (g[:, QG] < g[:, QMIN])), ref_gens)
        over = np.setdiff1d(over, limited)
        under = np.setdiff1d(under, limited)
        if not len(over) and not len(under):
            break
        fixed_q[over] = g[over, QMAX]
        fixed_q[under] = g[under, QMIN]
        new = np.r_[over, under].astype(np.int64)
        limited = np.r_[limited, new]
        gen_bus = gen[new, GEN_BUS].astype(int)
        s_gen = loads[0].copy()
        held = np.zeros(model.n_bus, dtype=complex)
        s_new = (gen[new, PG] + 1j * fixed_q[new]) / model.base_mva
        np.add.at(s_gen, gen_bus, -gen[new, PG] / model.base_mva)
        np.add.at(held, gen_bus, -s_new)
        s_p, s_i, s_z = model.split_load(held)
        loads = (s_gen, loads[1] + s_p, loads[2] + s_i, loads[3] + s_z)
        to_pq = np.setdiff1d(gen_bus, model.ref)
        pv = np.setdiff1d(pv, to_pq)
        pq = np.union1d(pq, to_pq)
    gen_final = gen.copy()
    b, g, br = _pfsoln(
        model, bus.copy(), gen_final, branch.copy(), v, limited if len(limited) else None
    )
    if len(limited):
        g[limited, QG] = fixed_q[limited]
    return res, b, g, br, iterations


def runpp(
    net,
    algorithm: str = "nr",
    calculate_voltage_angles: bool = True,
    init: str = "auto",
    max_iteration: int | str = "auto",
    tolerance_mva: float = 1e-8,
    trafo_model: str = "t",
    trafo_loading: str = "current",
    enforce_q_lims: bool = False,
    check_connectivity: bool = True,
    voltage_depend_loads: bool = True,
    **options,
) -> None:
    """Solve ``net`` and write pandapower's result tables (same arguments as ``pandapower.runpp``;
    every ``algorithm`` is solved by Newton-Raphson, which converges to the same solution).

    Raises ``UnsupportedElement`` (a ``ValueError``) naming an element or option we do not
    model, and ``pandapower.powerflow.LoadflowNotConverged`` when Newton-Raphson fails.
    """
    from pandapower.powerflow import _ppci_to_net
    from pandapower.pypower.idx_bus import VA, VM

    t0 = time.perf_counter()
    model = build_network_model(
        net,
        calculate_voltage_angles=calculate_voltage_angles,
        init=init,
        trafo_model=trafo_model,
        trafo_loading=trafo_loading,
        check_connectivity=check_connectivity,
        voltage_depend_loads=voltage_depend_loads,
        enforce_q_lims=enforce_q_lims,
        tolerance_mva=tolerance_mva,
        **options,
    )
    max_iter = MAX_ITER if max_iteration == "auto" else int(max_iteration)
    tol = tolerance_mva / model.base_mva
    ppci = model.ppci
    if enforce_q_lims and len(model.pv):
        res, bus, gen, branch, iterations = _solve_with_q_limits(model, tol, max_iter)
    else:
        loads = (model.s_gen, model.s_load, model.s_load_i, model.s_load_z)
        res = _solve(model, loads, model.pv, model.pq, model.v0, tol, max_iter)
        iterations = res.iterations
        bus, gen, branch = _pfsoln(model, ppci["bus"], ppci["gen"], ppci["branch"], res.v)
    bus[:, VM], bus[:, VA] = np.abs(res.v), np.degrees(np.angle(res.v))
    ppci["bus"], ppci["gen"], ppci["branch"] = bus, gen, branch
    ppci["success"] = bool(res.converged)
    ppci["iterations"] = iterations
    ppci["et"] = time.perf_counter() - t0
    ppci["internal"].update(
        {"V": res.v, "Ybus": model.ybus, "Yf": model.yf, "Yt": model.yt, "ref": model.ref,
         "pv": model.pv, "pq": model.pq, "bus": bus, "gen": gen, "branch": branch,
         "baseMVA": model.base_mva}
    )  # fmt: skip
    _ppci_to_net(ppci, net)
