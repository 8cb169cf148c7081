"""Fault location, isolation and service restoration (FLISR) on a switchable MV feeder.

Location: fault-current indicators (FCIs) at both ends of every remote-controlled line report
whether fault current passed. Each candidate line has a signature (the FCIs a fault on it would
trip in the pre-fault radial configuration); the located lines are those whose signature is
nearest (Hamming distance) to the readings. An indicator that stays silent can make the readings
match the neighbouring section upstream; restoring then re-energises the fault, protection trips
again, and location is repeated with one more unit of distance allowed (``slack``).

Isolation: a located remote-controlled line is opened at both ends; otherwise the located lines'
zone (buses joined by lines without remote switches) is cut off at its remote switches. A crew
later isolates exactly the faulted line with the manual disconnects.

Restoration: a MILP in HiGHS chooses which operable switches to close and which buses to
energise. A single-commodity flow from the sources with ``sum(closed lines) = sum(energised
non-source buses)`` keeps every energised part a tree fed by exactly one source (radial).
LinDistFlow rows (squared voltages, active and reactive flows, octagon limits on line and
transformer apparent power) keep it inside the limits to first order; the objective is restored
priority-weighted load minus a small cost per switching operation. Every plan is then checked by
a full AC power flow (``pandapower.runpp``); on a violation the violated limit is tightened by
what the AC flow showed and the MILP re-solved, until the AC check passes.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import highspy
import numpy as np
import scipy.sparse as sp

from gridsync.resilience.feeder import SwitchableFeeder

SWITCH_COST = 1e-3  # objective units (priority-weighted MW) per switching operation
MAX_CUTS = 8


# --------------------------------------------------------------------------- topology helpers
def _adjacency(feeder: SwitchableFeeder, closed: np.ndarray) -> list[list[tuple[int, int]]]:
    adj: list[list[tuple[int, int]]] = [[] for _ in range(feeder.n_bus)]
    for e in np.flatnonzero(closed):
        a, b = int(feeder.line_from[e]), int(feeder.line_to[e])
        adj[a].append((e, b))
        adj[b].append((e, a))
    return adj


def radial_paths(feeder: SwitchableFeeder, closed: np.ndarray) -> dict[int, list[tuple[int, int]]]:
    """For every energised line, the (line, upstream bus) pairs from its source to it, inclusive."""
    adj = _adjacency(feeder, closed)
    paths: dict[int, list[tuple[int, int]]] = {}
    for src in feeder.sources:
        stack = [(int(src), [])]
        seen = {int(src)}
        while stack:
            bus, path = stack.pop()
            for e, other in adj[bus]:
                if other in seen:
                    continue
                seen.add(other)
                p = path + [(e, bus)]
                paths[e] = p
                stack.append((other, p))
    return paths


def fci_positions(feeder: SwitchableFeeder) -> list[tuple[int, int]]:
    """(line, bus) of every fault-current indicator: both ends of each remote line."""
    out = []
    for e in np.flatnonzero(feeder.remote):
        out += [(int(e), int(feeder.line_from[e])), (int(e), int(feeder.line_to[e]))]
    return out


def fci_signature(feeder: SwitchableFeeder, paths: dict, line: int) -> np.ndarray:
    """Which FCIs see fault current for a fault on ``line`` (pre-fault radial flows)."""
    positions = fci_positions(feeder)
    passed = set()
    for e, up in paths.get(line, []):
        other = int(feeder.line_to[e]) if int(feeder.line_from[e]) == up else int(feeder.line_from[e])
        passed.add((e, up))
        if e != line:
            passed.add((e, other))
    return np.array([p in passed for p in positions])


def locate(feeder: SwitchableFeeder, closed: np.ndarray, readings: np.ndarray,
           slack: int = 0) -> list[int]:
    """Lines whose FCI signature is within ``slack`` of the nearest to ``readings``."""
    paths = radial_paths(feeder, closed)
    cands = sorted(paths)
    sigs = np.array([fci_signature(feeder, paths, e) for e in cands])
    dist = (sigs != readings[None, :]).sum(axis=1)
    return [cands[i] for i in np.flatnonzero(dist <= dist.min() + slack)]


@dataclass(frozen=True)
class Isolation:
    lines: list[int]  # lines that must stay open
    buses: list[int]  # buses left de-energised inside the isolated zone


def isolate_remote(feeder: SwitchableFeeder, closed: np.ndarray, located: list[int]) -> Isolation:
    """Smallest zone the remote switches can cut off around the located lines."""
    if all(feeder.remote[e] for e in located):
        return Isolation(lines=list(located), buses=[])
    manual_closed = closed & ~feeder.remote
    adj = _adjacency(feeder, manual_closed)
    zone: set[int] = set()
    stack = [int(b) for e in located if not feeder.remote[e]
             for b in (feeder.line_from[e], feeder.line_to[e])]
    while stack:
        b = stack.pop()
        if b in zone:
            continue
        zone.add(b)
        stack.extend(o for _, o in adj[b])
    zone -= {int(s) for s in feeder.sources}
    lines = [int(e) for e in range(len(closed))
             if feeder.line_from[e] in zone and feeder.line_to[e] in zone] + [
        e for e in located if feeder.remote[e]]
    return Isolation(lines=sorted(set(lines)), buses=sorted(zone))


def isolating_switches(feeder: SwitchableFeeder, isolation: Isolation) -> list[int]:
    """The normally closed remote switches that cut the isolated zone (or line) out."""
    touches = np.isin(feeder.line_from, isolation.buses) | np.isin(feeder.line_to, isolation.buses)
    touches[isolation.lines] = True
    return [int(e) for e in np.flatnonzero(feeder.remote & feeder.normally_closed & touches)]


# --------------------------------------------------------------------------- operating point
@dataclass
class OperatingPoint:
    """Demand per net load (MW, Mvar) and the source buses' voltage before the fault (p.u.)."""

    load_p_mw: np.ndarray
    load_q_mvar: np.ndarray
    source_vm_pu: np.ndarray


def operating_point(feeder: SwitchableFeeder, residential_pu: float, commercial_pu: float) -> OperatingPoint:
    """Scale every load by its class profile; loads outside the study follow the mean of both."""
    net = feeder.net
    names = net.load.name.tolist()
    factor = np.full(len(names), 0.5 * (residential_pu + commercial_pu))
    for i in feeder.load_index:
        factor[i] = commercial_pu if names[i].startswith("Load CI") else residential_pu
    p = net.load.p_mw.to_numpy() * factor
    q = net.load.q_mvar.to_numpy() * factor
    res = ac_check(feeder, feeder.normally_closed, np.ones(feeder.n_bus, bool),
                   OperatingPoint(p, q, np.ones(len(feeder.sources))))
    return OperatingPoint(p, q, res.vm_pu[feeder.sources])


# --------------------------------------------------------------------------- AC check
@dataclass
class ACResult:
    converged: bool
    vm_pu: np.ndarray
    line_loading_percent: np.ndarray
    trafo_loading_percent: np.ndarray
    violations: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.converged and not self.violations


def ac_check(feeder: SwitchableFeeder, closed: np.ndarray, energised: np.ndarray,
             op: OperatingPoint, vmin: float | None = None, vmax: float | None = None,
             loading_max: float | None = None) -> ACResult:
    """Full AC power flow of a switching state with DG tripped (IEEE 1547 after a fault)."""
    import pandapower as pp

    study = feeder.study
    vmin = study.voltage_min_pu if vmin is None else vmin
    vmax = study.voltage_max_pu if vmax is None else vmax
    loading_max = study.loading_max_percent if loading_max is None else loading_max
    net = copy.deepcopy(feeder.net)
    net.line["in_service"] = closed
    load_bus = net.load.bus.to_numpy()
    net.load["p_mw"] = op.load_p_mw
    net.load["q_mvar"] = op.load_q_mvar
    net.load["in_service"] = energised[load_bus]
    net.sgen["in_service"] = False
    net.storage["in_service"] = False
    try:
        pp.runpp(net, numba=False)  # JIT compiling costs more than it saves on a 15-bus net
    except Exception:  # noqa: BLE001 - pandapower raises its own and numpy errors alike
        nan = np.full(feeder.n_bus, np.nan)
        return ACResult(False, nan, np.full(len(closed), np.nan), np.full(len(net.trafo), np.nan),
                        ["AC power flow did not converge"])
    vm = net.res_bus.vm_pu.to_numpy()
    line_load = np.nan_to_num(net.res_line.loading_percent.to_numpy())
    trafo_load = np.nan_to_num(net.res_trafo.loading_percent.to_numpy())
    mv = net.bus.vn_kv.to_numpy() < 100
    out = []
    live = mv & energised & np.isfinite(vm)
    for b in np.flatnonzero(live & (vm < vmin - 1e-6)):
        out.append(f"bus {b} at {vm[b]:.3f} p.u. < {vmin:.2f}")
    for b in np.flatnonzero(live & (vm > vmax + 1e-6)):
        out.append(f"bus {b} at {vm[b]:.3f} p.u. > {vmax:.2f}")
    for e in np.flatnonzero(line_load > loading_max + 1e-6):
        out.append(f"{feeder.line_name[e]} loaded {line_load[e]:.0f} % > {loading_max:.0f} %")
    for t in np.flatnonzero(trafo_load > loading_max + 1e-6):
        out.append(f"transformer {t} loaded {trafo_load[t]:.0f} % > {loading_max:.0f} %")
    return ACResult(True, vm, line_load, trafo_load, out)


# --------------------------------------------------------------------------- restoration MILP
@dataclass
class RestorationPlan:
    closed: np.ndarray
    energised: np.ndarray
    restored_kw: float  # feeder load the plan brings back (off before it, on after it)
    switch_operations: list[tuple[str, str]]
    ac: ACResult
    milp_solves: int
    status: str
    cuts: list[str] = field(default_factory=list)
    restored_loads: np.ndarray | None = None  # per feeder load: brought back by this plan


def is_radial_forest(feeder: SwitchableFeeder, closed: np.ndarray, energised: np.ndarray) -> bool:
    """Independent check: energised lines form trees, each holding exactly one source, and no
    closed line joins an energised bus to a dead one."""
    ends_live = energised[feeder.line_from].astype(int) + energised[feeder.line_to]
    if np.any(closed & (ends_live == 1)):
        return False
    parent = list(range(feeder.n_bus))

    def find(a: int) -> int:
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    for e in np.flatnonzero(closed & (ends_live == 2)):
        a, b = find(int(feeder.line_from[e])), find(int(feeder.line_to[e]))
        if a == b:
            return False  # a loop
        parent[a] = b
    roots = {}
    for s in feeder.sources:
        r = find(int(s))
        if r in roots:
            return False  # two sources in one tree
        roots[r] = s
    mv = np.asarray(feeder.net.bus.vn_kv < 100)
    return all(find(int(b)) in roots for b in np.flatnonzero(energised & mv))


def _solve_milp(feeder: SwitchableFeeder, op: OperatingPoint, operable: np.ndarray,
                state: np.ndarray, isolation: Isolation, vmin: float, vmax: float,
                line_s_mva: np.ndarray, trafo_s_mva: np.ndarray,
                keep: np.ndarray | None) -> tuple[np.ndarray, np.ndarray] | None:
    """One MILP solve; (closed, energised) or None if infeasible."""
    nb, nl = feeder.n_bus, len(feeder.line_from)
    mv = np.asarray(feeder.net.bus.vn_kv < 100)
    src = {int(s): k for k, s in enumerate(feeder.sources)}
    ns = len(src)
    # columns: y[nb] z[nl] f[nl] P[nl] Q[nl] w[nb] Ps[ns] Qs[ns]
    iy, iz, iflow, ip, iq = 0, nb, nb + nl, nb + 2 * nl, nb + 3 * nl
    iw, ips, iqs = nb + 4 * nl, 2 * nb + 4 * nl, 2 * nb + 4 * nl + ns
    ncol = 2 * nb + 4 * nl + 2 * ns
    lo, hi, cost = np.zeros(ncol), np.zeros(ncol), np.zeros(ncol)
    integ = np.zeros(ncol, dtype=bool)
    integ[iy:iy + nb] = integ[iz:iz + nl] = True
    hi[iy:iy + nb] = mv
    hi[iy + np.array(isolation.buses, dtype=int)] = 0.0
    for s in src:
        lo[iy + s] = 1.0
    if keep is not None:
        lo[iy:iy + nb] = np.maximum(lo[iy:iy + nb], keep & (hi[iy:iy + nb] > 0))
    closable = np.ones(nl, dtype=bool)
    closable[isolation.lines] = False
    closable &= operable | state
    hi[iz:iz + nl] = closable
    big_flow = float(nb)
    lo[iflow:iflow + nl], hi[iflow:iflow + nl] = -big_flow, big_flow
    lo[ip:ip + nl], hi[ip:ip + nl] = -line_s_mva, line_s_mva
    lo[iq:iq + nl], hi[iq:iq + nl] = -line_s_mva, line_s_mva
    hi[iw:iw + nb] = vmax ** 2
    for s, k in src.items():
        lo[iw + s] = hi[iw + s] = op.source_vm_pu[k] ** 2
    lo[ips:ips + ns], hi[ips:ips + ns] = -trafo_s_mva, trafo_s_mva
    lo[iqs:iqs + ns], hi[iqs:iqs + ns] = -trafo_s_mva, trafo_s_mva

    value = np.zeros(nb)
    np.add.at(value, feeder.load_bus, feeder.priority * op.load_p_mw[feeder.load_index])
    cost[iy:iy + nb] = -value - 1e-4 * mv  # energise load-free buses too when it costs nothing
    cost[iz:iz + nl] = np.where(state, -SWITCH_COST, SWITCH_COST) * operable

    rows, cols, vals, rlo, rhi = [], [], [], [], []
    r = 0

    def row(c: list[int], v: list[float], low: float, high: float) -> None:
        nonlocal r
        rows.extend([r] * len(c))
        cols.extend(c)
        vals.extend(v)
        rlo.append(low)
        rhi.append(high)
        r += 1

    inf = highspy.kHighsInf
    load_p = np.zeros(nb)
    load_q = np.zeros(nb)
    np.add.at(load_p, feeder.net.load.bus.to_numpy(), op.load_p_mw)
    np.add.at(load_q, feeder.net.load.bus.to_numpy(), op.load_q_mvar)
    fb, tb = feeder.line_from, feeder.line_to
    for e in range(nl):
        a, b = int(fb[e]), int(tb[e])
        if not closable[e]:
            continue
        if not operable[e]:  # a closed line nobody can open now: both ends share a state
            row([iz + e, iy + a], [1, -1], 0, 0)
            row([iz + e, iy + b], [1, -1], 0, 0)
        else:
            row([iz + e, iy + a], [1, -1], -inf, 0)
            row([iz + e, iy + b], [1, -1], -inf, 0)
        s = line_s_mva[e]
        row([iflow + e, iz + e], [1, -big_flow], -inf, 0)
        row([iflow + e, iz + e], [1, big_flow], 0, inf)
        for cp, cq in ((1, 0), (0, 1), (1, 1), (1, -1)):
            bound = s * (np.sqrt(2) if cp and cq else 1.0)
            row([ip + e, iq + e, iz + e], [cp, cq, -bound], -inf, 0)
            row([ip + e, iq + e, iz + e], [cp, cq, bound], 0, inf)
        m = 1.5
        drop = [iw + b, iw + a, ip + e, iq + e, iz + e]
        row(drop, [1, -1, 2 * feeder.r_pu[e], 2 * feeder.x_pu[e], m], -inf, m)
        row(drop, [1, -1, 2 * feeder.r_pu[e], 2 * feeder.x_pu[e], -m], -m, inf)
    for e in np.flatnonzero(~closable):
        hi[iflow + e] = lo[iflow + e] = hi[ip + e] = lo[ip + e] = hi[iq + e] = lo[iq + e] = 0.0
    for bus in range(nb):
        if not mv[bus]:
            continue
        out_e, in_e = np.flatnonzero(fb == bus), np.flatnonzero(tb == bus)
        for base, load in ((ip, load_p), (iq, load_q)):
            c = [base + int(e) for e in in_e] + [base + int(e) for e in out_e]
            v = [1.0] * len(in_e) + [-1.0] * len(out_e)
            if bus in src:
                c.append((ips if base == ip else iqs) + src[bus])
                v.append(1.0)
                row(c, v, load[bus], load[bus])
            else:
                row(c + [iy + bus], v + [-load[bus]], 0, 0)
        if bus not in src:
            c = [iflow + int(e) for e in in_e] + [iflow + int(e) for e in out_e] + [iy + bus]
            row(c, [1.0] * len(in_e) + [-1.0] * len(out_e) + [-1.0], 0, 0)
            row([iw + bus, iy + bus], [1, -vmin ** 2], 0, inf)
    for k in range(ns):
        for cp, cq in ((1, 1), (1, -1)):
            row([ips + k, iqs + k], [cp, cq], -np.sqrt(2) * trafo_s_mva[k], np.sqrt(2) * trafo_s_mva[k])
    non_src = [b for b in range(nb) if mv[b] and b not in src]
    row([iz + e for e in range(nl)] + [iy + b for b in non_src],
        [1.0] * nl + [-1.0] * len(non_src), 0, 0)

    a = sp.csc_matrix((vals, (rows, cols)), shape=(r, ncol))
    lp = highspy.HighsLp()
    lp.num_col_, lp.num_row_ = ncol, r
    lp.col_cost_, lp.col_lower_, lp.col_upper_ = cost, lo, hi
    lp.row_lower_, lp.row_upper_ = np.array(rlo), np.array(rhi)
    lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    lp.a_matrix_.start_, lp.a_matrix_.index_, lp.a_matrix_.value_ = a.indptr, a.indices, a.data
    lp.integrality_ = [highspy.HighsVarType.kInteger if i else highspy.HighsVarType.kContinuous
                       for i in integ]
    h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    h.setOptionValue("threads", 1)
    h.setOptionValue("time_limit", 20.0)
    h.passModel(lp)
    h.run()
    if h.getModelStatus() != highspy.HighsModelStatus.kOptimal:
        return None
    x = np.asarray(h.getSolution().col_value)
    return x[iz:iz + nl] > 0.5, x[iy:iy + nb] > 0.5


def restore(feeder: SwitchableFeeder, op: OperatingPoint, state: np.ndarray, operable: np.ndarray,
            isolation: Isolation, keep: np.ndarray | None = None) -> RestorationPlan:
    """Best radial, AC-feasible switching state for the operable switches (see module doc).

    ``keep`` marks buses already back on supply that the plan should not drop again; if that
    proves infeasible after the AC cuts the plan is re-solved without it.
    """
    study = feeder.study
    vmin, vmax = study.voltage_min_pu, study.voltage_max_pu
    line_s = feeder.s_max_kva / 1000.0 * study.loading_max_percent / 100.0
    trafo_s = feeder.net.trafo.sn_mva.to_numpy() * study.loading_max_percent / 100.0
    cuts: list[str] = []
    for solve in range(1, MAX_CUTS + 1):
        sol = _solve_milp(feeder, op, operable, state, isolation, vmin, vmax, line_s, trafo_s, keep)
        if sol is None and keep is not None:
            keep = None
            cuts.append("keeping every bus already restored is infeasible: re-planned without it")
            sol = _solve_milp(feeder, op, operable, state, isolation, vmin, vmax, line_s, trafo_s, keep)
        if sol is None:
            break
        closed, energised = sol
        # switches nobody can operate now keep their position (dead, if their buses are)
        closed = np.where(operable, closed, state)
        ac = ac_check(feeder, closed, energised, op)
        if ac.ok:
            return _plan(feeder, op, state, operable, closed, energised, ac, solve, "optimal", cuts)
        cuts += ac.violations
        live = energised & np.isfinite(ac.vm_pu)
        if live.any() and np.nanmin(ac.vm_pu[live]) < study.voltage_min_pu:
            vmin += study.voltage_min_pu - float(np.nanmin(ac.vm_pu[live])) + 0.005
        over = ac.line_loading_percent > study.loading_max_percent
        line_s[over] *= study.loading_max_percent / ac.line_loading_percent[over] * 0.98
        over_t = ac.trafo_loading_percent > study.loading_max_percent
        trafo_s[over_t] *= study.loading_max_percent / ac.trafo_loading_percent[over_t] * 0.98
        if not ac.converged:
            line_s *= 0.9
    # no plan passed: reclose only what is still fed from its own source after isolation
    closed = state.copy()
    closed[isolation.lines] = False
    touches = np.isin(feeder.line_from, isolation.buses) | np.isin(feeder.line_to, isolation.buses)
    closed &= ~touches
    energised = np.zeros(feeder.n_bus, dtype=bool)
    energised[feeder.sources] = True
    for e in radial_paths(feeder, closed):
        energised[feeder.line_from[e]] = energised[feeder.line_to[e]] = True
    closed &= energised[feeder.line_from] & energised[feeder.line_to]
    ac = ac_check(feeder, closed, energised, op)
    return _plan(feeder, op, state, operable, closed, energised, ac, MAX_CUTS, "fallback", cuts)


def _plan(feeder, op, state, operable, closed, energised, ac, solves, status, cuts) -> RestorationPlan:
    ops = [(feeder.line_name[e], "close" if closed[e] else "open")
           for e in np.flatnonzero((closed != state) & operable)]
    before = np.zeros(feeder.n_bus, dtype=bool)
    before[feeder.sources] = True
    for e in radial_paths(feeder, state):
        before[feeder.line_from[e]] = before[feeder.line_to[e]] = True
    back = energised[feeder.load_bus] & ~before[feeder.load_bus]
    restored = float(op.load_p_mw[feeder.load_index][back].sum() * 1000.0)
    return RestorationPlan(closed, energised, restored, ops, ac, solves, status, cuts, back)
