"""Dispatch at scale by aggregation: one virtual asset per bus and kind, then disaggregation.

The full LP has a column per asset and step; at 10k assets it no longer solves in seconds.
Here each bus's batteries (of equal efficiencies and degradation cost), heat pumps and PV
systems become one virtual asset, the existing LP (``build_dispatch_lp``) is solved on that
smaller fleet, and the virtual setpoints are split back onto the assets:

- batteries: summed power and energy bounds, the group's common efficiencies. The sum of the
  assets' feasible sets is contained in the virtual one (a relaxation), exact when the assets
  are identical and start at the same state of charge. Disaggregation: per step, charge or
  discharge in proportion to each asset's own headroom (power limit and the energy it can still
  take or give), which never exceeds an asset's limits; what no asset can absorb is dropped.
- heat pumps: a virtual building in parallel (capacitance summed, conductance 1/R summed,
  COP weighted by max power, comfort band and start temperature weighted by capacitance). Exact
  for identical houses; otherwise an approximation whose comfort cost shows up when the plan is
  priced. Disaggregation: per step, each house first gets the power that keeps it inside its own
  comfort band (so the total can exceed the virtual plan), then the rest of the virtual power in
  proportion to the houses' remaining headroom.
- PV curtailment: summed availability per bus, split in proportion to availability (exact).
- EV sessions and deferrable jobs stay per asset by default; with ``envelopes=True`` each bus's
  sessions (and jobs) become one virtual energy task with time-varying power limits and
  cumulative-energy bounds, disaggregated least-laxity-first (``gridsync.dispatch.envelope``).
  Where the sessions cannot follow the virtual plan exactly, ``solve_aggregated`` fixes the
  virtual EV and deferrable power to what the sessions and jobs actually take and re-solves the
  virtual LP once, so batteries, heat pumps and PV re-optimise around it.

The disaggregated plan is priced with the full LP's objective, either directly
(``pricing.plan_cost``, vectorised, with every asset limit measured) or by ``evaluate_plan``,
the full LP with every asset column pinned (any broken limit shows as infeasibility).
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from gridsync.dispatch.envelope import (
    Envelope,
    EnvelopeColumns,
    add_envelope,
    build_envelope,
    deferrable_tasks,
    disaggregate_envelope,
    envelope_targets,
    ev_tasks,
    group_kw,
)
from gridsync.dispatch.formulation import (
    Layout,
    NetworkRows,
    Options,
    Weights,
    build_dispatch_lp,
    flexible_buses,
)
from gridsync.dispatch.horizon import FleetState, HorizonData
from gridsync.dispatch.lp import LinearProgram, LPResult
from gridsync.dispatch.pricing import AssetPlan, PlanCost, plan_cost
from gridsync.dispatch.split import split_batteries, split_thermal
from gridsync.model.assets import BatteryFleet, Fleet, PVFleet, ThermalFleet
from gridsync.sim.twin import bus_sum

if TYPE_CHECKING:
    from gridsync.dispatch.cluster import BusClusters


@dataclass
class Aggregation:
    """The virtual-fleet horizon and, per original asset, the index of its virtual asset."""

    hd: HorizonData
    battery_group: np.ndarray
    thermal_group: np.ndarray
    pv_group: np.ndarray
    flex_bus: np.ndarray  # the full fleet's flexible buses (z columns of the virtual LP)
    ev_envelope: Envelope | None = None  # with envelopes: EV sessions per (bus, efficiency)
    deferrable_envelope: Envelope | None = None


@dataclass
class AggregatedSolution:
    """Outcome of ``solve_aggregated``: virtual LP objective, the true objective of the
    disaggregated plan (NaN when it could not be priced) and timings in seconds."""

    status: str
    message: str
    virtual_objective_eur: float
    objective_eur: float
    plan: AssetPlan | None
    virtual_columns: int
    build_s: float
    solve_s: float
    disaggregate_s: float
    evaluate_s: float
    evaluation: LPResult | None = None
    cost: PlanCost | None = None  # direct pricing: terms and measured limit violations
    resolve_s: float = 0.0  # envelopes: the re-solve around what the sessions and jobs take
    resolved_objective_eur: float = float("nan")


def _groups(*keys: np.ndarray) -> tuple[np.ndarray, int]:
    if len(keys[0]) == 0:
        return np.zeros(0, int), 0
    _, inv = np.unique(np.column_stack(keys), axis=0, return_inverse=True)
    inv = inv.ravel()
    return inv, int(inv.max()) + 1


def _first(values: np.ndarray, group: np.ndarray, n: int) -> np.ndarray:
    out = np.zeros(n, dtype=values.dtype)
    out[group[::-1]] = values[::-1]
    return out


def _empty(obj):
    """A copy of an array dataclass with no elements."""
    return dataclasses.replace(
        obj, **{fl.name: getattr(obj, fl.name)[:0] for fl in dataclasses.fields(obj)}
    )


@dataclass(frozen=True)
class Grouping:
    """Which assets share a virtual asset. Envelope groups are split by first/last plugged
    step in classes of ``*_class_steps`` and by ``need_classes`` classes of the share of its
    reachable energy a task needs (``build_envelope``); the defaults (4-hour classes for EV
    sessions, 2-hour classes for appliance windows, 4 need classes) were tighter for fewer
    columns than one group per bus on the bench fleet. Without ``by_bus`` the virtual assets pool the whole
    feeder at its first flexible bus: only for LPs without network rows, where the bus of a kW
    does not matter, and far fewer columns."""

    ev_class_steps: int | None = 16
    deferrable_class_steps: int | None = 8
    need_classes: int = 4
    by_bus: bool = True


def aggregate_horizon(
    hd: HorizonData,
    envelopes: bool = False,
    grouping: Grouping | None = None,
    clusters: BusClusters | None = None,
) -> Aggregation:
    """Replace batteries, heat pumps and PV by one virtual asset per bus (and battery type);
    with ``envelopes`` also EV sessions and deferrable jobs (their envelopes are added to the
    LP by ``build_aggregated_lp``; the virtual horizon then has none of them). With
    ``clusters`` the virtual assets pool each cluster of buses at its site bus
    (``gridsync.dispatch.cluster``) and the virtual LP has one ``z`` column per cluster."""
    gr = grouping or Grouping()
    f = hd.fleet
    flex_bus = flexible_buses(f)
    if clusters is not None:
        site_of = clusters.site_of_bus(hd.n_bus)
        site = lambda bus: site_of[bus.astype(int)]  # noqa: E731
        flex_bus = clusters.site_bus
    elif gr.by_bus:
        site = lambda bus: bus  # noqa: E731
    else:
        site = lambda bus: np.full(len(bus), flex_bus[0])  # noqa: E731
    b = f.battery
    bg, nbg = _groups(
        site(b.bus), b.efficiency_charge, b.efficiency_discharge, b.degradation_eur_per_kwh
    )
    cap = bus_sum(bg, b.capacity_kwh, nbg)
    safe_cap = np.where(cap > 0, cap, 1.0)
    e0 = bus_sum(bg, hd.state.battery_energy_kwh, nbg)
    battery = BatteryFleet(
        bus=_first(site(b.bus), bg, nbg),
        capacity_kwh=cap,
        power_kw=bus_sum(bg, b.power_kw, nbg),
        efficiency_charge=_first(b.efficiency_charge, bg, nbg),
        efficiency_discharge=_first(b.efficiency_discharge, bg, nbg),
        soc_min_frac=bus_sum(bg, b.energy_min_kwh, nbg) / safe_cap,
        soc_max_frac=bus_sum(bg, b.energy_max_kwh, nbg) / safe_cap,
        soc_initial_frac=e0 / safe_cap,
        degradation_eur_per_kwh=_first(b.degradation_eur_per_kwh, bg, nbg),
    )

    th = f.thermal
    tg, ntg = _groups(site(th.bus))
    c_sum = bus_sum(tg, th.capacitance_kwh_per_c, ntg)
    pmax = bus_sum(tg, th.max_power_kw, ntg)
    c_w = lambda v: bus_sum(tg, v * th.capacitance_kwh_per_c, ntg) / c_sum  # noqa: E731
    thermal = ThermalFleet(
        bus=_first(site(th.bus), tg, ntg),
        max_power_kw=pmax,
        cop=bus_sum(tg, th.cop * th.max_power_kw, ntg) / np.where(pmax > 0, pmax, 1.0),
        resistance_c_per_kw=1.0 / bus_sum(tg, 1.0 / th.resistance_c_per_kw, ntg),
        capacitance_kwh_per_c=c_sum,
        comfort_min_c=c_w(th.comfort_min_c),
        comfort_max_c=c_w(th.comfort_max_c),
        initial_temp_c=c_w(th.initial_temp_c.astype(float)),
    )
    temp0 = c_w(np.asarray(hd.state.thermal_temp_c, float))

    pv = f.pv
    pg, npg = _groups(site(pv.bus))
    pv_v = PVFleet(
        bus=_first(site(pv.bus), pg, npg),
        peak_kw=bus_sum(pg, pv.peak_kw, npg),
        tilt_deg=_first(pv.tilt_deg, pg, npg),
        azimuth_deg=_first(pv.azimuth_deg, pg, npg),
    )
    pv_av = np.zeros((hd.pv_available_kw.shape[0], npg))
    np.add.at(pv_av.T, pg, hd.pv_available_kw.T)

    ev_env = dfr_env = None
    deferrable, ev_h, done = f.deferrable, hd.ev, hd.state.deferrable_done_kwh
    if envelopes:
        ev_t, dfr_t = ev_tasks(hd)[0], deferrable_tasks(hd)
        ev_t.bus, dfr_t.bus = site(ev_t.bus), site(dfr_t.bus)
        ev_env = build_envelope(ev_t, hd, gr.ev_class_steps, gr.need_classes)
        dfr_env = build_envelope(dfr_t, hd, gr.deferrable_class_steps, gr.need_classes)
        deferrable, ev_h, done = _empty(f.deferrable), _empty(hd.ev), done[:0]
    ev_fleet = dataclasses.replace(f.ev, bus=site(f.ev.bus))
    deferrable = dataclasses.replace(deferrable, bus=site(deferrable.bus))
    fleet = Fleet(pv=pv_v, battery=battery, ev=ev_fleet, deferrable=deferrable, thermal=thermal)
    state = FleetState(
        battery_energy_kwh=e0,
        ev_delivered_kwh=hd.state.ev_delivered_kwh,
        deferrable_done_kwh=done,
        thermal_temp_c=temp0,
    )
    # end-state references are per real asset; the virtual assets settle against their state
    terminal = hd.terminal and dataclasses.replace(
        hd.terminal, battery_start_kwh=None, thermal_start_c=None
    )
    virtual = dataclasses.replace(
        hd, fleet=fleet, state=state, pv_available_kw=pv_av, ev=ev_h, terminal=terminal
    )
    return Aggregation(virtual, bg, tg, pg, flex_bus, ev_env, dfr_env)


def build_aggregated_lp(
    hd: HorizonData,
    w: Weights,
    network: NetworkRows | None = None,
    opts: Options | None = None,
    envelopes: bool = False,
    grouping: Grouping | None = None,
    clusters: BusClusters | None = None,
) -> tuple[Aggregation, LinearProgram, Layout, dict[str, EnvelopeColumns]]:
    """The virtual LP: ``build_dispatch_lp`` on the aggregated horizon plus, with
    ``envelopes``, the virtual EV and deferrable tasks (needs no plan can reach are a constant
    unmet-energy cost in ``lp.offset``). With ``clusters``, ``network`` must be in cluster
    columns (``cluster.clustered_rows``)."""
    pooled = grouping is not None and not grouping.by_bus and clusters is None
    if network is not None and pooled:
        msg = "Grouping.by_bus=False pools assets across buses, which network rows cannot price"
        raise ValueError(msg)
    n_col = None if network is None else network.dv_dz.shape[1]
    if clusters is not None and n_col is not None and n_col != clusters.n_clusters:
        msg = (
            f"network rows have {n_col} columns, expected one per cluster "
            f"({clusters.n_clusters}): build them with cluster.clustered_rows"
        )
        raise ValueError(msg)
    agg = aggregate_horizon(hd, envelopes, grouping, clusters)
    lp, lay = build_dispatch_lp(agg.hd, w, network, opts, flex_bus=agg.flex_bus)
    cols: dict[str, EnvelopeColumns] = {}
    if envelopes:
        dt = hd.step_h
        cols["ev"] = add_envelope(lp, lay, agg.ev_envelope, dt, "ev_envelope")
        cols["deferrable"] = add_envelope(lp, lay, agg.deferrable_envelope, dt, "dfr_envelope")
        lp.offset += w.unmet_ev_eur_per_kwh * float(agg.ev_envelope.fixed_unmet_kwh.sum())
        lp.offset += w.unmet_deferrable_eur_per_kwh * float(
            agg.deferrable_envelope.fixed_unmet_kwh.sum()
        )
    return agg, lp, lay, cols


def disaggregate(
    hd: HorizonData,
    agg: Aggregation,
    x: np.ndarray,
    lay: Layout,
    cols: dict[str, EnvelopeColumns] | None = None,
) -> AssetPlan:
    """Per-asset setpoints from the virtual LP solution ``x`` (see module docstring);
    ``cols`` are the envelope columns from ``build_aggregated_lp``."""
    H = hd.horizon
    nbv = len(agg.hd.fleet.battery)
    net = (x[lay.bat_c] - x[lay.bat_d]).reshape(nbv, H) if nbv else np.zeros((0, H))
    c, d, e_path, short = split_batteries(hd, agg.battery_group, net)

    ntv = len(agg.hd.fleet.thermal)
    p_v = x[lay.th_p].reshape(ntv, H) if ntv else np.zeros((0, H))
    th_kw = split_thermal(hd, agg.thermal_group, p_v)

    q_v = np.zeros((H, len(agg.hd.fleet.pv)))
    q_v[lay.pv_t, lay.pv_i] = x[lay.pv_q]
    av_v = agg.hd.pv_available_kw[:H]
    ratio = np.where(av_v > 1e-9, q_v / np.where(av_v > 1e-9, av_v, 1.0), 0.0)
    pv_q = np.clip(ratio[:, agg.pv_group], 0.0, 1.0) * hd.pv_available_kw[:H]

    plan = AssetPlan(
        battery_charge_kw=c,
        battery_discharge_kw=d,
        battery_energy_kwh=e_path,
        thermal_kw=th_kw,
        pv_curtail_kw=pv_q,
        ev_charge_kw=x[lay.ev_c],
        ev_discharge_kw=x[lay.ev_d],
        deferrable_kw=x[lay.dfr_p],
        battery_shortfall_kwh=short,
    )
    if agg.ev_envelope is not None and cols:
        dt = hd.step_h
        ev = disaggregate_envelope(
            agg.ev_envelope, envelope_targets(agg.ev_envelope, cols["ev"], x, dt), dt
        )
        dfr_env = agg.deferrable_envelope
        job = disaggregate_envelope(
            dfr_env, envelope_targets(dfr_env, cols["deferrable"], x, dt), dt
        )
        plan.ev_charge_kw, plan.ev_discharge_kw = ev.charge_kw, ev.discharge_kw
        plan.deferrable_kw = job.charge_kw
        plan.ev_deviation_kwh, plan.deferrable_deviation_kwh = ev.deviation_kwh, job.deviation_kwh
    return plan


def evaluate_plan(
    hd: HorizonData,
    plan: AssetPlan,
    w: Weights,
    network: NetworkRows | None = None,
    opts: Options | None = None,
    time_limit_s: float = 30.0,
) -> tuple[LPResult, Layout]:
    """Price a per-asset plan with the full LP's objective: every asset column is pinned, only
    states, slacks (unmet energy, comfort, network) and the feeder-head terms stay free. An
    ``infeasible`` status means the plan breaks an asset limit (e.g. a state of charge)."""
    _, sol, lay = _pinned(hd, plan, w, network, opts, time_limit_s)
    return sol, lay


def solve_aggregated_lp(
    hd: HorizonData,
    w: Weights,
    network: NetworkRows | None = None,
    opts: Options | None = None,
    time_limit_s: float = 30.0,
    envelopes: bool = False,
) -> tuple[LinearProgram, Layout, LPResult]:
    """Drop-in for ``build_dispatch_lp`` + ``solve`` (used by ``MPCConfig.aggregate``): the
    returned LP, layout and solution are the full LP's with the disaggregated plan pinned, so
    ``extract_plan`` reads per-asset setpoints from them. When the virtual LP fails, its own
    LP, layout and (non-optimal) result are returned."""
    t0 = time.perf_counter()
    agg, lp, lay, cols = build_aggregated_lp(hd, w, network, opts, envelopes)
    sol = lp.solve(time_limit_s)
    if not sol.ok:
        return lp, lay, sol
    plan = disaggregate(hd, agg, sol.x, lay, cols)
    left_s = max(time_limit_s - (time.perf_counter() - t0), 0.0)
    full, priced, full_lay = _pinned(hd, plan, w, network, opts, left_s)
    return full, full_lay, priced


def resolve_around_tasks(
    hd: HorizonData,
    agg: Aggregation,
    lp: LinearProgram,
    lay: Layout,
    cols: dict[str, EnvelopeColumns],
    plan: AssetPlan,
    time_limit_s: float,
    solver: str = "choose",
    solver_options: dict | None = None,
) -> tuple[LPResult, AssetPlan]:
    """Fix the virtual EV and deferrable power to what the sessions and jobs take in ``plan``,
    re-solve the virtual LP and split its batteries, heat pumps and PV again (the sessions and
    jobs keep their setpoints). On failure the plan is returned unchanged."""
    fix_cols, fix_vals = [], []
    zero = np.zeros_like(plan.deferrable_kw)
    for key, env, kw in (
        ("ev", agg.ev_envelope, (plan.ev_charge_kw, plan.ev_discharge_kw)),
        ("deferrable", agg.deferrable_envelope, (plan.deferrable_kw, zero)),
    ):
        c, d = group_kw(env, *kw)
        fix_cols += [cols[key].charge, cols[key].discharge]
        fix_vals += [c.ravel()[cols[key].charge_at], d.ravel()[cols[key].discharge_at]]
        # the tasks' own sums lie inside the envelope up to rounding
        lp.set_col_bounds(
            cols[key].energy, env.lower_sum_kwh.ravel() - 1e-6, env.upper_sum_kwh.ravel() + 1e-6
        )
    lp.fix(np.concatenate(fix_cols), np.concatenate(fix_vals))
    sol = lp.solve(time_limit_s, solver, solver_options)
    if not sol.ok:
        return sol, plan
    new = disaggregate(hd, agg, sol.x, lay)
    return sol, dataclasses.replace(
        plan,
        battery_charge_kw=new.battery_charge_kw,
        battery_discharge_kw=new.battery_discharge_kw,
        battery_energy_kwh=new.battery_energy_kwh,
        thermal_kw=new.thermal_kw,
        pv_curtail_kw=new.pv_curtail_kw,
        battery_shortfall_kwh=new.battery_shortfall_kwh,
    )


def _pinned(hd, plan, w, network, opts, time_limit_s):
    lp, lay = build_dispatch_lp(hd, w, network, opts)
    cols = np.r_[lay.bat_c, lay.bat_d, lay.th_p, lay.pv_q, lay.ev_c, lay.ev_d, lay.dfr_p]
    vals = np.r_[
        plan.battery_charge_kw.ravel(),
        plan.battery_discharge_kw.ravel(),
        plan.thermal_kw.ravel(),
        plan.pv_curtail_kw[lay.pv_t, lay.pv_i],
        plan.ev_charge_kw,
        plan.ev_discharge_kw,
        plan.deferrable_kw,
    ]
    lp.fix(cols, vals)
    return lp, lp.solve(time_limit_s), lay


def solve_aggregated(
    hd: HorizonData,
    w: Weights,
    network: NetworkRows | None = None,
    opts: Options | None = None,
    time_limit_s: float = 30.0,
    pricing: str = "direct",
    envelopes: bool = False,
    grouping: Grouping | None = None,
    resolve: bool = True,
    solver: str = "choose",
    solver_options: dict | None = None,
    clusters: BusClusters | None = None,
) -> AggregatedSolution:
    """Aggregate, solve the virtual LP, disaggregate and price the per-asset plan.

    ``pricing``: ``direct`` (``plan_cost``; status ``infeasible`` when a limit is broken),
    ``lp`` (the full LP with the plan pinned) or ``none``. With ``envelopes`` (grouped as
    ``grouping`` says) EV sessions and deferrable jobs are aggregated
    too and, with ``resolve``, the virtual LP is re-solved once around what they actually take
    when that differs from the virtual plan. ``solver``/``solver_options`` go to HiGHS for the
    first solve (an interior point without crossover spreads energy over equally good steps,
    which the sessions follow more closely than a simplex vertex). With ``clusters`` the
    virtual assets pool clusters of buses and ``network`` is in cluster columns; the plan is
    priced against those rows (its per-bus network effect is for an AC check to measure)."""
    if pricing not in ("direct", "lp", "none"):
        msg = f"pricing={pricing!r}: expected 'direct', 'lp' or 'none'"
        raise ValueError(msg)
    t0 = time.perf_counter()
    agg, lp, lay, cols = build_aggregated_lp(hd, w, network, opts, envelopes, grouping, clusters)
    build_s = time.perf_counter() - t0
    sol = lp.solve(time_limit_s, solver, solver_options)
    res = AggregatedSolution(
        sol.status,
        f"virtual LP: {sol.message}",
        sol.objective,
        float("nan"),
        None,
        lp.n_col,
        build_s,
        sol.solve_s,
        0.0,
        0.0,
    )
    if not sol.ok:
        return res
    t0 = time.perf_counter()
    res.plan = disaggregate(hd, agg, sol.x, lay, cols)
    res.disaggregate_s = time.perf_counter() - t0
    deviation = res.plan.ev_deviation_kwh + res.plan.deferrable_deviation_kwh
    if envelopes and resolve and deviation > 1e-6:
        # HiGHS's default (simplex) here: the batteries and heat pumps split well from a vertex
        again, res.plan = resolve_around_tasks(hd, agg, lp, lay, cols, res.plan, time_limit_s)
        res.resolve_s, res.resolved_objective_eur = again.solve_s, again.objective
    t0 = time.perf_counter()
    if pricing == "direct":
        z_pool = None if clusters is None else clusters.label
        res.cost = plan_cost(hd, res.plan, w, network, opts, z_pool)
        res.objective_eur = res.cost.objective_eur
        if not res.cost.feasible():
            broken = {k: v for k, v in res.cost.violation.items() if v > 1e-6}
            res.status, res.message = "infeasible", f"disaggregated plan breaks limits: {broken}"
        else:
            res.message = "priced directly"
    elif pricing == "lp":
        ev, _ = evaluate_plan(hd, res.plan, w, network, opts, time_limit_s)
        res.evaluation, res.objective_eur, res.status = ev, ev.objective, ev.status
        res.message = (
            "priced in the full LP"
            if ev.ok
            else f"disaggregated plan could not be priced: {ev.status} ({ev.message})"
        )
    else:
        res.message = "not priced"
    res.evaluate_s = time.perf_counter() - t0
    return res


def mpc_agg():
    """``gridsync simulate --controller mpc-agg``: the MPC on per-bus aggregated assets."""
    from gridsync.dispatch.mpc import MPCConfig, MPCController

    return MPCController(config=MPCConfig(aggregate=True), name="mpc-agg")
