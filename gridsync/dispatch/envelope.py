"""Energy envelopes: a bus's EV sessions (or deferrable jobs) as one virtual energy task.

A task ``k`` (an EV session or a deferrable job) can take at most ``up[k, t]`` kWh in step ``t``
(efficiency x charger limit x step length) and give back at most ``down[k, t]`` kWh (V2G:
discharge limit x step / efficiency); its energy ``y`` (relative to the start) stays inside
``[min_k, max_k]`` and must reach ``need_k`` by its last step. Every feasible trajectory lies
between two:

- upper ``U_k(t) = min(max_k, up summed to t)`` (as early as possible),
- lower ``L_k(t) = max(min_k, -down summed to t, need_k - up summed after t)`` (as late as
  possible).

The virtual task of a group gets the summed charge/discharge limits and the energy bounds
``sum L_k <= Y <= sum U_k``. That set contains every sum of individually feasible plans, so the
virtual optimum is a lower bound of the full one (equal e.g. for one task per group), but a
virtual plan need not split back exactly: energy counted towards one task's lower trajectory
may only fit into another's room. Groups are therefore (bus, efficiency, has a need, can give
back), so tasks with no need or with V2G cannot lend room to tasks that must charge; optional
classes of first/last plugged step tighten further at the price of more groups. Needs no
trajectory can reach
are cut to the reachable energy; the rest is unmet whatever the plan, a constant in the
objective (the full LP could also choose to leave reachable energy unmet; the envelope cannot).

Disaggregation walks forward in time, vectorised over tasks: each task first gets what keeps it
on or above its own lower trajectory, then the rest of the group's planned energy goes to the
tasks with the least laxity first (energy it can still take minus energy it still needs), each
up to its remaining need and then up to its own limit. So every task meets its own limits and reaches its (reachable) need; where
the virtual plan asks for less than that or more than the tasks can take, the tasks' limits win
and the difference is reported as ``deviation_kwh``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from gridsync.dispatch.formulation import Layout
from gridsync.dispatch.horizon import HorizonData
from gridsync.dispatch.jobs import deferrable_jobs
from gridsync.dispatch.lp import LinearProgram


@dataclass
class Tasks:
    """Energy tasks and their LP pairs (one per task and step it can act, in the full LP's
    column order: ``Layout.ev_c`` / ``Layout.dfr_p``)."""

    task_of_pair: np.ndarray  # (P,)
    pair_t: np.ndarray  # (P,)
    charge_kw: np.ndarray  # (P,) limit
    discharge_kw: np.ndarray  # (P,) limit (V2G)
    eta: np.ndarray  # (K,) energy in the task per kWh from the grid
    bus: np.ndarray  # (K,)
    need_kwh: np.ndarray  # (K,) relative to the start
    min_kwh: np.ndarray  # (K,) <= 0
    max_kwh: np.ndarray  # (K,) >= 0

    def __len__(self) -> int:
        return len(self.eta)


def ev_tasks(hd: HorizonData) -> tuple[Tasks, np.ndarray]:
    """One task per EV session plugged in during the horizon, and those sessions' positions in
    ``hd.ev`` (sessions without a plugged step have no LP column and no task)."""
    ev, f = hd.ev, hd.fleet.ev
    lens = np.maximum(ev.end_t - ev.first_t, 0)
    with_pairs = np.flatnonzero(lens > 0)
    k_of_sess = np.full(len(ev), -1)
    k_of_sess[with_pairs] = np.arange(len(with_pairs))
    pair_sess = np.repeat(np.arange(len(ev)), lens)
    start_of = np.r_[0, np.cumsum(lens)[:-1]] if len(ev) else np.zeros(0, int)
    pair_t = ev.first_t[pair_sess] + (np.arange(len(pair_sess)) - start_of[pair_sess])
    ch_pair = ev.charger[pair_sess]
    v2g = f.v2g[ch_pair] & (ev.v2g_floor_kwh[pair_sess] > 0)
    ch = ev.charger[with_pairs]
    x0 = ev.delivered0_kwh[with_pairs]
    tasks = Tasks(
        task_of_pair=k_of_sess[pair_sess],
        pair_t=pair_t,
        charge_kw=f.max_power_kw[ch_pair],
        discharge_kw=np.where(v2g, f.max_power_kw[ch_pair], 0.0),
        eta=f.efficiency[ch],
        bus=f.bus[ch],
        need_kwh=ev.need_kwh[with_pairs] - x0,
        min_kwh=np.minimum(-ev.v2g_floor_kwh[with_pairs] - x0, 0.0),
        max_kwh=np.maximum(ev.headroom_kwh[with_pairs] - x0, 0.0),
    )
    return tasks, with_pairs


def deferrable_tasks(hd: HorizonData) -> Tasks:
    """One task per deferrable (asset, day) job the horizon touches."""
    d = hd.fleet.deferrable
    j, t, frac, job_of_pair, job_asset, _, need, remaining = deferrable_jobs(hd)
    n_job = len(job_asset)
    return Tasks(
        task_of_pair=job_of_pair,
        pair_t=t,
        charge_kw=d.power_kw[j] * frac,
        discharge_kw=np.zeros(len(j)),
        eta=np.ones(n_job),
        bus=d.bus[job_asset],
        need_kwh=need,
        min_kwh=np.zeros(n_job),
        max_kwh=np.maximum(remaining, need),
    )


@dataclass
class Envelope:
    """Per-task trajectories (K, H) and per-group virtual limits (G, H) of one kind of task."""

    tasks: Tasks
    group: np.ndarray  # (K,)
    group_bus: np.ndarray  # (G,)
    group_eta: np.ndarray  # (G,)
    up_kwh: np.ndarray  # (K, H) most energy a task can take in a step
    down_kwh: np.ndarray  # (K, H) most energy it can give back
    lower_kwh: np.ndarray  # (K, H) cumulative, end of step
    upper_kwh: np.ndarray
    need_kwh: np.ndarray  # (K,) reachable need
    fixed_unmet_kwh: np.ndarray  # (K,) need no plan can deliver
    charge_kw: np.ndarray  # (G, H) summed limits
    discharge_kw: np.ndarray
    lower_sum_kwh: np.ndarray  # (G, H)
    upper_sum_kwh: np.ndarray

    @property
    def n_group(self) -> int:
        return len(self.group_bus)


def _group_sum(group: np.ndarray, n_group: int, values: np.ndarray) -> np.ndarray:
    k = len(group)
    s = sp.csr_matrix((np.ones(k), (group, np.arange(k))), shape=(n_group, k))
    return np.asarray(s @ values)


def build_envelope(
    tasks: Tasks,
    hd: HorizonData,
    class_steps: int | None = None,
    need_classes: int = 1,
) -> Envelope:
    """Trajectories of each task and their sums per group: (bus, efficiency, need > 0, V2G)
    and, with ``class_steps``, the first and last plugged step in classes of that many steps;
    with ``need_classes`` > 1 also the share of its reachable energy a task needs, in that
    many equal classes."""
    H, dt = hd.horizon, hd.step_h
    K = len(tasks)
    k, t = tasks.task_of_pair, tasks.pair_t
    v2g = np.zeros(K, bool)
    v2g[k[tasks.discharge_kw > 0]] = True
    if K:
        key = [tasks.bus, tasks.eta, tasks.need_kwh > 1e-9, v2g]
        if class_steps:
            first = np.full(K, H)
            last = np.zeros(K, int)
            np.minimum.at(first, k, t)
            np.maximum.at(last, k, t)
            key += [first // class_steps, last // class_steps]
        if need_classes > 1:
            room = np.bincount(k, weights=tasks.eta[k] * tasks.charge_kw * dt[t], minlength=K)
            share = np.clip(tasks.need_kwh / np.where(room > 0, room, 1.0), 0.0, 1.0)
            key.append(np.minimum((share * need_classes).astype(int), need_classes - 1))
        _, group = np.unique(np.column_stack(key), axis=0, return_inverse=True)
        group = group.ravel()
    else:
        group = np.zeros(0, int)
    G = int(group.max()) + 1 if K else 0
    first = np.zeros(G, int)
    first[group[::-1]] = np.arange(K)[::-1]
    charge = np.zeros((K, H))
    discharge = np.zeros((K, H))
    charge[k, t] = tasks.charge_kw
    discharge[k, t] = tasks.discharge_kw
    up = tasks.eta[:, None] * charge * dt
    down = discharge * dt / tasks.eta[:, None]
    cum_up = np.cumsum(up, axis=1)
    total_up = cum_up[:, -1] if H else np.zeros(K)
    upper = np.minimum(tasks.max_kwh[:, None], cum_up)
    reach = upper[:, -1] if H else np.zeros(K)
    need = np.minimum(tasks.need_kwh, reach)
    floor = np.maximum(tasks.min_kwh[:, None], -np.cumsum(down, axis=1))
    lower = np.maximum(floor, need[:, None] - (total_up[:, None] - cum_up))
    return Envelope(
        tasks=tasks,
        group=group,
        group_bus=tasks.bus[first].astype(int),
        group_eta=tasks.eta[first],
        up_kwh=up,
        down_kwh=down,
        lower_kwh=lower,
        upper_kwh=upper,
        need_kwh=need,
        fixed_unmet_kwh=np.maximum(tasks.need_kwh - reach, 0.0),
        charge_kw=_group_sum(group, G, charge),
        discharge_kw=_group_sum(group, G, discharge),
        lower_sum_kwh=_group_sum(group, G, lower),
        upper_sum_kwh=_group_sum(group, G, upper),
    )


@dataclass
class EnvelopeColumns:
    """LP columns of the virtual tasks: energy for every (group, step), group-major (G * H);
    charge and discharge only where the group can act, at flat positions ``*_at``."""

    charge: np.ndarray
    discharge: np.ndarray
    energy: np.ndarray
    charge_at: np.ndarray
    discharge_at: np.ndarray


def add_envelope(
    lp: LinearProgram, lay: Layout, env: Envelope, dt_h: np.ndarray, name: str
) -> EnvelopeColumns:
    """Virtual task columns and energy rows ``Y_t = Y_{t-1} + eta c dt - d dt / eta``, with
    their power entered in the bus balance rows of an LP from ``build_dispatch_lp``."""
    G, H = env.n_group, lay.H
    n = G * H
    dt = np.tile(dt_h, G)
    eta = np.repeat(env.group_eta, H)
    c_at = np.flatnonzero(env.charge_kw.ravel() > 0)
    d_at = np.flatnonzero(env.discharge_kw.ravel() > 0)
    c = lp.add_cols(f"{name}_c", len(c_at), 0.0, env.charge_kw.ravel()[c_at])
    d = lp.add_cols(f"{name}_d", len(d_at), 0.0, env.discharge_kw.ravel()[d_at])
    y = lp.add_cols(f"{name}_energy", n, env.lower_sum_kwh.ravel(), env.upper_sum_kwh.ravel())
    r = np.arange(n)
    prev = r % H != 0
    lp.add_rows(
        f"{name}_energy",
        n,
        np.r_[r, c_at, d_at, r[prev]],
        np.r_[y, c, d, y[r[prev] - 1]],
        np.r_[np.ones(n), -eta[c_at] * dt[c_at], dt[d_at] / eta[d_at], -np.ones(int(prev.sum()))],
        0.0,
        0.0,
    )
    fpos = np.full(int(max(lay.flex_bus.max(initial=0), env.group_bus.max(initial=0))) + 1, -1)
    fpos[lay.flex_bus] = np.arange(len(lay.flex_bus))
    if G and np.any(fpos[env.group_bus] < 0):
        msg = f"{name}: buses {env.group_bus[fpos[env.group_bus] < 0].tolist()} have no z column"
        raise ValueError(msg)
    bal = lp.row_blocks["bus_balance"].start + fpos[np.repeat(env.group_bus, H)] * H + r % H
    lp.add_entries(
        np.r_[bal[c_at], bal[d_at]], np.r_[c, d], np.r_[-np.ones(len(c)), np.ones(len(d))]
    )
    return EnvelopeColumns(c, d, y, c_at, d_at)


@dataclass
class TaskPlan:
    """Disaggregated per-pair setpoints (kW) and the energy the tasks could not follow."""

    charge_kw: np.ndarray  # (P,)
    discharge_kw: np.ndarray  # (P,)
    energy_kwh: np.ndarray  # (K, H) cumulative per task
    deviation_kwh: float


def _fill(group: np.ndarray, room: np.ndarray, order_key: np.ndarray, amount: np.ndarray):
    """Per group, hand ``amount[g]`` out over its tasks' ``room`` in ascending ``order_key``."""
    order = np.lexsort((order_key, group))
    g_o, room_o = group[order], room[order]
    before = np.cumsum(room_o) - room_o
    base = np.zeros(len(amount))
    base[g_o[::-1]] = before[::-1]  # cumulative room before each group's first task
    give = np.empty(len(group))
    give[order] = np.clip(amount[g_o] - (before - base[g_o]), 0.0, room_o)
    return give


def disaggregate_envelope(env: Envelope, target_kwh: np.ndarray, dt_h: np.ndarray) -> TaskPlan:
    """Split each group's planned energy per step ``target_kwh`` (G, H) onto its tasks:
    mandatory energy first, then more charge to the least laxity first or, when the group gives
    energy back, discharge from the most laxity first (see module docstring)."""
    tk = env.tasks
    K, H = env.up_kwh.shape
    G = env.n_group
    y = np.zeros(K)
    inc = np.zeros((K, H))
    from_t = np.cumsum(env.up_kwh[:, ::-1], axis=1)[:, ::-1]  # energy it can take from t on
    deviation = 0.0
    for t in range(H):  # sequential in time, vectorised over tasks
        idx = np.flatnonzero((env.up_kwh[:, t] > 0) | (env.down_kwh[:, t] > 0))
        g = env.group[idx]
        lo = np.maximum(env.lower_kwh[idx, t] - y[idx], -env.down_kwh[idx, t])
        hi = np.maximum(np.minimum(tk.max_kwh[idx] - y[idx], env.up_kwh[idx, t]), lo)
        base = np.clip(0.0, lo, hi)
        rest = target_kwh[:, t] - np.bincount(g, weights=base, minlength=G)
        laxity = from_t[idx, t] - (env.need_kwh[idx] - y[idx])
        # more charge: first up to each task's remaining need, then beyond it
        needed = np.clip(np.minimum(hi, env.need_kwh[idx] - y[idx]) - base, 0.0, None)
        more = _fill(g, needed, laxity, np.clip(rest, 0.0, None))
        left = rest - np.bincount(g, weights=more, minlength=G)
        more += _fill(g, hi - base - more, laxity, np.clip(left, 0.0, None))
        less = _fill(g, base - lo, -laxity, np.clip(-rest, 0.0, None))
        step = base + more - less
        inc[idx, t] = step
        y[idx] += step
        deviation += float(
            np.abs(target_kwh[:, t] - np.bincount(g, weights=step, minlength=G)).sum()
        )
    e = inc[tk.task_of_pair, tk.pair_t]
    eta = tk.eta[tk.task_of_pair]
    dt = dt_h[tk.pair_t]
    return TaskPlan(
        charge_kw=np.minimum(np.clip(e, 0.0, None) / (eta * dt), tk.charge_kw),
        discharge_kw=np.minimum(np.clip(-e, 0.0, None) * eta / dt, tk.discharge_kw),
        energy_kwh=np.cumsum(inc, axis=1),
        deviation_kwh=deviation,
    )


def envelope_targets(env: Envelope, cols: EnvelopeColumns, x: np.ndarray, dt_h: np.ndarray):
    """Each group's net energy per step (G, H) in the virtual LP solution ``x``."""
    G, H = env.n_group, len(dt_h)
    c = np.zeros(G * H)
    d = np.zeros(G * H)
    c[cols.charge_at] = x[cols.charge]
    d[cols.discharge_at] = x[cols.discharge]
    c, d = c.reshape(G, H), d.reshape(G, H)
    eta = env.group_eta[:, None]
    return eta * c * dt_h - d * dt_h / eta


def group_kw(env: Envelope, charge_kw: np.ndarray, discharge_kw: np.ndarray):
    """Per-pair setpoints summed per group and step: (charge, discharge), (G, H) each."""
    tk = env.tasks
    H = env.up_kwh.shape[1]
    at = (env.group[tk.task_of_pair], tk.pair_t)
    c = np.zeros((env.n_group, H))
    d = np.zeros((env.n_group, H))
    np.add.at(c, at, charge_kw)
    np.add.at(d, at, discharge_kw)
    return c, d
