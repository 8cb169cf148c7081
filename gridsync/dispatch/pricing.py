"""Per-asset plans and their cost under the dispatch LP's objective, evaluated directly.

``plan_cost`` computes what ``build_dispatch_lp``'s objective would be with every asset column
pinned to the plan, without an LP: the states follow from the setpoints, every slack takes its
smallest feasible value (unmet energy, comfort, network and feeder-limit violations), the
feeder-head import is the net load where positive and the export where negative (never both:
export is priced at most at the import price), and the peak is the largest import. Broken
asset limits are measured rather than priced: ``violation`` holds the largest excess per limit.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from gridsync.dispatch.formulation import (
    Layout,
    NetworkRows,
    Options,
    Weights,
    flexible_buses,
)
from gridsync.dispatch.horizon import HorizonData
from gridsync.dispatch.jobs import deferrable_jobs
from gridsync.dispatch.terminal import battery_end_cost, ev_end_prices
from gridsync.sim.accounting import thermal_kwh_per_c, thermal_reference_c


@dataclass
class AssetPlan:
    """Per-asset setpoints over the horizon (kW; battery/thermal (n, H), PV (H, n_pv),
    EV and deferrable values per LP pair as in ``Layout``)."""

    battery_charge_kw: np.ndarray
    battery_discharge_kw: np.ndarray
    battery_energy_kwh: np.ndarray  # (n, H) at the end of each step
    thermal_kw: np.ndarray
    pv_curtail_kw: np.ndarray
    ev_charge_kw: np.ndarray
    ev_discharge_kw: np.ndarray
    deferrable_kw: np.ndarray
    battery_shortfall_kwh: float = 0.0  # virtual battery energy no asset could take or give
    ev_deviation_kwh: float = 0.0  # virtual EV energy the sessions could not follow
    deferrable_deviation_kwh: float = 0.0


def plan_from_solution(hd: HorizonData, x: np.ndarray, lay: Layout) -> AssetPlan:
    """The per-asset plan in a solution ``x`` of the full LP (``build_dispatch_lp(hd, ...)``)."""
    H = hd.horizon
    nb, nt = len(hd.fleet.battery), len(hd.fleet.thermal)
    q = np.zeros((H, len(hd.fleet.pv)))
    q[lay.pv_t, lay.pv_i] = x[lay.pv_q]
    return AssetPlan(
        battery_charge_kw=x[lay.bat_c].reshape(nb, H),
        battery_discharge_kw=x[lay.bat_d].reshape(nb, H),
        battery_energy_kwh=x[lay.bat_e].reshape(nb, H),
        thermal_kw=x[lay.th_p].reshape(nt, H),
        pv_curtail_kw=q,
        ev_charge_kw=x[lay.ev_c],
        ev_discharge_kw=x[lay.ev_d],
        deferrable_kw=x[lay.dfr_p],
    )


@dataclass
class PlanCost:
    """Objective of a plan (EUR) with its terms, and the largest excess per asset or feeder
    limit (0 when the plan respects it; units of the limit)."""

    objective_eur: float
    terms_eur: dict[str, float] = field(default_factory=dict)
    violation: dict[str, float] = field(default_factory=dict)
    z_kw: np.ndarray | None = None  # (n_flex, H) net flexible consumption per flexible bus

    def feasible(self, tol: float = 1e-6) -> bool:
        return all(v <= tol for v in self.violation.values())


def _excess(x: np.ndarray, lo, hi) -> float:
    if np.size(x) == 0:
        return 0.0
    return float(max(np.max(lo - x, initial=0.0), np.max(x - hi, initial=0.0)))


def _segment_cumsum(values: np.ndarray, lens: np.ndarray) -> np.ndarray:
    """Cumulative sums restarting at each segment of consecutive ``lens`` entries."""
    cs = np.cumsum(values)
    before = np.r_[0.0, cs][np.cumsum(lens) - lens]
    return cs - np.repeat(before, lens)


def plan_cost(
    hd: HorizonData,
    plan: AssetPlan,
    w: Weights,
    network: NetworkRows | None = None,
    opts: Options | None = None,
    z_pool: np.ndarray | None = None,
) -> PlanCost:
    """The full dispatch LP's objective for ``plan`` (see module docstring), vectorised.

    ``z_pool`` (n_flex,) maps each flexible bus to its column in ``network`` when the rows
    are in pooled columns (``gridsync.dispatch.cluster``); default: one column per bus."""
    opts = opts or Options()
    f, H, dt = hd.fleet, hd.horizon, hd.step_h
    terms: dict[str, float] = {}
    viol: dict[str, float] = {}
    flex_bus = flexible_buses(f)
    fpos = np.full(hd.n_bus, -1)
    fpos[flex_bus] = np.arange(len(flex_bus))
    z = np.zeros((len(flex_bus), H))

    def to_bus(bus: np.ndarray, t: np.ndarray, kw: np.ndarray) -> None:
        np.add.at(z, (fpos[bus.astype(int)], t), kw)

    # batteries
    b = f.battery
    c, d = plan.battery_charge_kw, plan.battery_discharge_kw
    flow = b.efficiency_charge[:, None] * c - d / b.efficiency_discharge[:, None]
    e0 = hd.state.battery_energy_kwh
    e = e0[:, None] + np.cumsum(flow * dt, axis=1)
    viol["battery_power_kw"] = max(
        _excess(c, 0.0, b.power_kw[:, None]), _excess(d, 0.0, b.power_kw[:, None])
    )
    e_lo = np.minimum(b.energy_min_kwh, e0)[:, None]
    viol["battery_energy_kwh"] = _excess(e, e_lo, np.maximum(b.energy_max_kwh, e0)[:, None])
    terms["battery_degradation"] = float(((c + d) * dt * b.degradation_eur_per_kwh[:, None]).sum())
    tv = hd.terminal
    if H:
        e_end = e[:, -1]
        end_cost = battery_end_cost(tv, hd.import_eur_per_kwh[:H])
        terms["battery_terminal_credit"] = end_cost * float(e_end.sum())
        if tv is not None and tv.start_level:
            short = np.maximum(tv.battery_ref_kwh(e0) - e_end, 0.0).sum()
            terms["battery_end_shortfall"] = tv.shortfall_eur_per_kwh * float(short)
    grid_t = np.tile(np.arange(H), len(b))
    to_bus(np.repeat(b.bus, H), grid_t, (c - d).ravel())

    # EVs (pairs in the LP's order: per session, consecutive plugged steps)
    ev = hd.ev
    lens = np.maximum(ev.end_t - ev.first_t, 0)
    sess = np.repeat(np.arange(len(ev)), lens)
    start = np.r_[0, np.cumsum(lens)[:-1]] if len(ev) else np.zeros(0, int)
    pt = ev.first_t[sess] + (np.arange(len(sess)) - start[sess])
    ch = ev.charger[sess]
    eta, pev = f.ev.efficiency[ch], f.ev.max_power_kw[ch]
    v2g = f.ev.v2g[ch] & (ev.v2g_floor_kwh[sess] > 0)
    ec, ed = plan.ev_charge_kw, plan.ev_discharge_kw
    viol["ev_power_kw"] = max(_excess(ec, 0.0, pev), _excess(ed, 0.0, np.where(v2g, pev, 0.0)))
    x0 = ev.delivered0_kwh[sess]
    x = x0 + _segment_cumsum((eta * ec - ed / eta) * dt[pt], lens)
    x_lo = np.minimum(-ev.v2g_floor_kwh[sess], x0)
    viol["ev_energy_kwh"] = _excess(x, x_lo, np.maximum(ev.headroom_kwh[sess], x0))
    has = lens > 0
    x_end = x[(start + lens - 1)[has]]
    unmet_ev = np.maximum(ev.need_kwh[has] - x_end, 0.0)
    if opts.hard_ev_deadlines:
        viol["ev_unmet_kwh"] = float(unmet_ev.max(initial=0.0))
    crossing = ~ev.departs_in_horizon[has]
    short_eur, credit_eur = ev_end_prices(tv, crossing, w.unmet_ev_eur_per_kwh)
    terms["unmet_ev"] = float(short_eur @ unmet_ev)
    full_need = f.ev.sessions.energy_need_kwh[ev.session[has]]
    room = np.where(crossing, np.maximum(full_need - ev.need_kwh[has], 0.0), 0.0)
    extra = np.clip(x_end - ev.need_kwh[has], 0.0, room)
    terms["ev_end_credit"] = -credit_eur * float(extra.sum())
    terms["v2g_degradation"] = float((f.ev.v2g_degradation_eur_per_kwh[ch] * ed * dt[pt]).sum())
    to_bus(f.ev.bus[ch], pt, ec - ed)

    # deferrable jobs
    j, dtt, frac, job_of_pair, _, _, need, remaining = deferrable_jobs(hd)
    p = plan.deferrable_kw
    viol["deferrable_power_kw"] = _excess(p, 0.0, f.deferrable.power_kw[j] * frac)
    done = np.bincount(job_of_pair, weights=p * dt[dtt], minlength=len(need))
    unmet_d = np.maximum(need - done, 0.0)
    viol["deferrable_energy_kwh"] = _excess(done + unmet_d, -np.inf, np.maximum(remaining, need))
    if opts.hard_deferrable:
        viol["deferrable_unmet_kwh"] = float(unmet_d.max(initial=0.0))
    terms["unmet_deferrable"] = w.unmet_deferrable_eur_per_kwh * float(unmet_d.sum())
    to_bus(f.deferrable.bus[j], dtt, p)

    # heat pumps: exact RC steps from the start temperature
    th = f.thermal
    tp = plan.thermal_kw
    viol["thermal_power_kw"] = _excess(tp, 0.0, th.max_power_kw[:, None])
    a = np.exp(-dt[None, :] / (th.resistance_c_per_kw * th.capacitance_kwh_per_c)[:, None])
    gain = (1.0 - a) * (th.resistance_c_per_kw * th.cop)[:, None] * hd.hvac_mode[None, :H]
    drive = (1.0 - a) * hd.outdoor_temp_c[None, :H] + gain * tp
    temp = np.zeros((len(th), H))
    prev = np.asarray(hd.state.thermal_temp_c, float)
    for t in range(H):  # the recursion is sequential in time, vectorised over houses
        prev = a[:, t] * prev + drive[:, t]
        temp[:, t] = prev
    too_cold = np.maximum(th.comfort_min_c[:, None] - temp, 0.0)
    too_warm = np.maximum(temp - th.comfort_max_c[:, None], 0.0)
    terms["comfort"] = w.comfort_eur_per_degree_hour * float(((too_cold + too_warm) * dt).sum())
    if tv is not None and H and len(th):
        mode_end = float(hd.hvac_mode[H - 1])
        ref = thermal_reference_c(th, tv.thermal_ref_c(hd.state.thermal_temp_c))
        deficit_c = np.maximum(mode_end * (ref - temp[:, -1]), 0.0)
        terms["thermal_end_deficit"] = tv.shortfall_eur_per_kwh * float(
            thermal_kwh_per_c(th) @ deficit_c
        )
    to_bus(np.repeat(th.bus, H), np.tile(np.arange(H), len(th)), tp.ravel())

    # PV curtailment
    avail = hd.pv_available_kw[:H]
    q = plan.pv_curtail_kw
    viol["pv_curtail_kw"] = _excess(q, 0.0, np.where(avail > 1e-9, avail, 0.0))
    terms["curtailment"] = w.curtailment_eur_per_kwh * float((q * dt[:, None]).sum())
    pv_t, pv_i = np.indices(q.shape).reshape(2, -1)
    to_bus(f.pv.bus[pv_i], pv_t, q.ravel())

    z_kw = z.copy()

    # feeder head: the cheapest import/export split, excess only beyond an elastic limit
    losses = np.zeros(H) if hd.losses_kw is None else hd.losses_kw[:H]
    net = hd.inflexible_kw[:H].sum(axis=1) + losses + z.sum(axis=0)
    limit = np.inf if opts.feeder_limit_kw is None else opts.feeder_limit_kw
    imp = np.clip(net, 0.0, None)
    exp = np.clip(-net, 0.0, None)
    excess = np.clip(imp - limit, 0.0, None) if opts.elastic_feeder_limit else np.zeros(H)
    imp = imp - excess
    viol["feeder_limit_kw"] = max(_excess(imp, 0.0, limit), _excess(exp, 0.0, limit))
    carbon = w.carbon_price_eur_per_kg * hd.carbon_g_per_kwh[:H] / 1000.0
    export_price = np.minimum(hd.export_eur_per_kwh[:H], hd.import_eur_per_kwh[:H])
    terms["energy"] = float((hd.import_eur_per_kwh[:H] * imp * dt - export_price * exp * dt).sum())
    terms["emissions"] = float((carbon * imp * dt).sum())
    terms["feeder_excess"] = w.feeder_excess_eur_per_kwh * float((excess * dt).sum())
    peak = max(float(imp.max(initial=0.0)), hd.peak_floor_kw, 0.0)
    terms["demand_charge"] = hd.demand_eur_per_kw * peak

    if network is not None:
        if z_pool is not None:
            pooled = np.zeros((network.dv_dz.shape[1], H))
            np.add.at(pooled, z_pool, z)
            z = pooled
        v = network.v_offset + np.einsum("rf,rf->r", network.dv_dz, z[:, network.v_t].T)
        loading = network.l_offset + np.einsum("rf,rf->r", network.dl_dz, z[:, network.l_t].T)
        v_out = np.clip(network.v_lo - v, 0.0, None) + np.clip(v - network.v_hi, 0.0, None)
        terms["voltage"] = w.voltage_violation_eur_per_pu_step * float(v_out.sum())
        terms["loading"] = w.loading_violation_eur_per_pct_step * float(
            np.clip(loading - network.l_hi, 0.0, None).sum()
        )
    return PlanCost(float(sum(terms.values())), terms, viol, z_kw)
