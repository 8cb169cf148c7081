"""The dispatch LP over one horizon, built block by block from ``HorizonData``.

Variables (all kW unless named otherwise, one per asset and step where the asset can act):
battery charge/discharge and stored energy; EV charge/discharge and delivered energy per
plugged session-step; deferrable power per in-window step; heat-pump power and indoor
temperature with comfort slacks; PV curtailment per sunny step; net flexible power per bus
``z``; feeder-head import/export and the peak. Rows are the asset physics (the same
discretisations as ``gridsync.model.physics``), energy targets with unmet-energy slack, the
bus balance, the feeder-head balance, the peak, and optional linearised network limits.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gridsync.dispatch.degradation import AgeingCosts, add_battery_ageing, add_v2g_ageing
from gridsync.dispatch.horizon import HorizonData
from gridsync.dispatch.jobs import deferrable_jobs
from gridsync.dispatch.lp import INF, LinearProgram
from gridsync.dispatch.network_rows import NetworkRows, add_network_rows
from gridsync.dispatch.reactive import ReactiveLayout, add_reactive
from gridsync.dispatch.terminal import (
    add_battery_shortfall,
    add_thermal_deficit,
    battery_end_cost,
    ev_end_prices,
)


@dataclass(frozen=True)
class Weights:
    """Objective weights in EUR per unit named (see ``ObjectiveConfig``) plus penalties."""

    carbon_price_eur_per_kg: float = 0.08
    unmet_ev_eur_per_kwh: float = 1.0
    unmet_deferrable_eur_per_kwh: float = 1.0
    comfort_eur_per_degree_hour: float = 0.5
    curtailment_eur_per_kwh: float = 0.0
    voltage_violation_eur_per_pu_step: float = 2.0e4
    loading_violation_eur_per_pct_step: float = 20.0
    feeder_excess_eur_per_kwh: float = 1.0e3
    # a small price on inverter reactive energy: Q only where it relieves a voltage row
    reactive_eur_per_kvarh: float = 1.0e-3

    @classmethod
    def from_config(cls, objective, **penalties) -> Weights:
        return cls(
            carbon_price_eur_per_kg=objective.carbon_price_eur_per_kg,
            unmet_ev_eur_per_kwh=objective.unmet_ev_eur_per_kwh,
            unmet_deferrable_eur_per_kwh=objective.unmet_deferrable_eur_per_kwh,
            comfort_eur_per_degree_hour=objective.comfort_eur_per_degree_hour,
            curtailment_eur_per_kwh=objective.curtailment_eur_per_kwh,
            **penalties,
        )


@dataclass(frozen=True)
class Options:
    """Switches of the formulation. Hard targets have no unmet slack (used by diagnosis)."""

    hard_ev_deadlines: bool = False
    hard_deferrable: bool = False
    feeder_limit_kw: float | None = None
    elastic_feeder_limit: bool = False
    # ageing costs from the cell model instead of the constant wear (dispatch.degradation)
    ageing: AgeingCosts | None = None
    # PV inverter kVA per kWp, for the reactive-power columns (network rows with dv_dq)
    pv_kva_per_kwp: float = 1.0


@dataclass
class Layout:
    """Where each decision lives in the LP's column vector (for reading a solution)."""

    H: int
    bat_c: np.ndarray
    bat_d: np.ndarray
    bat_e: np.ndarray
    ev_t: np.ndarray  # per EV pair: horizon step
    ev_pair_sess: np.ndarray  # per EV pair: position in HorizonData.ev
    ev_c: np.ndarray
    ev_d: np.ndarray
    ev_x: np.ndarray
    ev_unmet: np.ndarray
    dfr_j: np.ndarray
    dfr_t: np.ndarray
    dfr_p: np.ndarray
    job_asset: np.ndarray
    job_day: np.ndarray
    job_need_kwh: np.ndarray
    dfr_unmet: np.ndarray
    th_p: np.ndarray
    th_temp: np.ndarray
    th_lo: np.ndarray
    th_hi: np.ndarray
    pv_i: np.ndarray
    pv_t: np.ndarray
    pv_q: np.ndarray
    flex_bus: np.ndarray
    z: np.ndarray  # (n_flex * H), flex-major
    imp: np.ndarray
    exp: np.ndarray
    peak: np.ndarray
    excess: np.ndarray
    v_slack: np.ndarray
    l_slack: np.ndarray
    reactive: ReactiveLayout | None = None


def flexible_buses(fleet) -> np.ndarray:
    """Buses with at least one controllable asset (the columns of the network sensitivities)."""
    return np.unique(
        np.r_[
            fleet.battery.bus, fleet.ev.bus, fleet.deferrable.bus, fleet.thermal.bus, fleet.pv.bus
        ]
    ).astype(int)


def _chain(n_assets: int, H: int) -> tuple[np.ndarray, np.ndarray]:
    """Row ids and 'has a previous step' mask for asset-major (asset, step) grids."""
    n = n_assets * H
    rows = np.arange(n)
    has_prev = (rows % H) != 0 if H else np.zeros(0, bool)
    return rows, has_prev


def build_dispatch_lp(
    hd: HorizonData,
    w: Weights,
    network: NetworkRows | None = None,
    opts: Options | None = None,
    flex_bus: np.ndarray | None = None,
) -> tuple[LinearProgram, Layout]:
    """Build the dispatch LP for one horizon (vectorised; no per-asset Python loops).

    ``flex_bus`` overrides the buses that get a net-power column ``z`` (default: every bus with
    a controllable asset); it must cover the buses of ``hd.fleet``'s assets.
    """
    opts = opts or Options()
    f = hd.fleet
    H = hd.horizon
    dt = hd.step_h  # (H,) block lengths in hours
    lp = LinearProgram()
    if flex_bus is None:
        flex_bus = flexible_buses(f)
    flex_bus = np.asarray(flex_bus, dtype=int)
    missing = np.setdiff1d(flexible_buses(f), flex_bus)
    if len(missing):
        msg = f"flex_bus: buses {missing.tolist()} have assets but no net-power column"
        raise ValueError(msg)
    fpos = np.full(hd.n_bus, -1)
    fpos[flex_bus] = np.arange(len(flex_bus))
    t_grid = lambda n: np.tile(np.arange(H), n)  # noqa: E731  (asset-major step index)
    bal_r, bal_c, bal_v = [], [], []  # bus balance contributions: z = sum(asset power)

    def to_balance(bus: np.ndarray, t: np.ndarray, cols: np.ndarray, sign: float) -> None:
        bal_r.append(fpos[bus.astype(int)] * H + t)
        bal_c.append(cols)
        bal_v.append(np.full(len(cols), sign))

    # Batteries: e_t = e_{t-1} + eta_c c dt - d dt / eta_d
    b = f.battery
    nb = len(b)
    dt_b = np.tile(dt, nb)
    deg = np.repeat(b.degradation_eur_per_kwh, H) * dt_b * (opts.ageing is None)
    pmax = np.repeat(b.power_kw, H)
    c = lp.add_cols("bat_c", nb * H, 0.0, pmax, deg)
    d_ = lp.add_cols("bat_d", nb * H, 0.0, pmax, deg)
    e0 = hd.state.battery_energy_kwh
    e_lo = np.repeat(np.minimum(b.energy_min_kwh, e0), H)
    e_hi = np.repeat(np.maximum(b.energy_max_kwh, e0), H)
    e_cost = np.zeros(nb * H)
    if H:
        e_cost[H - 1 :: H] = battery_end_cost(hd.terminal, hd.import_eur_per_kwh[:H])
    e = lp.add_cols("bat_e", nb * H, e_lo, e_hi, e_cost)
    if H:
        add_battery_shortfall(lp, hd.terminal, e[H - 1 :: H], e0)
    rows, has_prev = _chain(nb, H)
    rhs = np.where(has_prev, 0.0, np.repeat(e0, H))
    lp.add_rows(
        "battery_energy",
        nb * H,
        np.r_[rows, rows, rows, rows[has_prev]],
        np.r_[e, c, d_, e[rows[has_prev] - 1]],
        np.r_[
            np.ones(nb * H),
            -np.repeat(b.efficiency_charge, H) * dt_b,
            dt_b / np.repeat(b.efficiency_discharge, H),
            -np.ones(int(has_prev.sum())),
        ],
        rhs,
        rhs,
    )
    if opts.ageing is not None:
        add_battery_ageing(
            lp,
            opts.ageing,
            c,
            d_,
            e,
            dt,
            e0,
            np.minimum(b.energy_min_kwh, e0),
            np.maximum(b.energy_max_kwh, e0),
            b.efficiency_charge,
            b.efficiency_discharge,
        )
    bus_b = np.repeat(b.bus, H)
    to_balance(bus_b, t_grid(nb), c, 1.0)
    to_balance(bus_b, t_grid(nb), d_, -1.0)

    # EVs: one pair per plugged (session, step); x = energy delivered since arrival
    ev = hd.ev
    lens = np.maximum(ev.end_t - ev.first_t, 0)
    pair_sess = np.repeat(np.arange(len(ev)), lens)
    start_of = np.r_[0, np.cumsum(lens)[:-1]] if len(ev) else np.zeros(0, int)
    pair_t = ev.first_t[pair_sess] + (np.arange(len(pair_sess)) - start_of[pair_sess])
    ch = ev.charger[pair_sess]
    eta = f.ev.efficiency[ch]
    pev = f.ev.max_power_kw[ch]
    v2g_ok = f.ev.v2g[ch] & (ev.v2g_floor_kwh[pair_sess] > 0)
    n_pair = len(pair_sess)
    evc = lp.add_cols("ev_c", n_pair, 0.0, pev)
    v2g_aware = opts.ageing is not None and opts.ageing.ev is not None
    v2g_wear = f.ev.v2g_degradation_eur_per_kwh[ch] * dt[pair_t] * (not v2g_aware)
    evd = lp.add_cols("ev_d", n_pair, 0.0, np.where(v2g_ok, pev, 0.0), v2g_wear)
    x0 = ev.delivered0_kwh[pair_sess]
    x = lp.add_cols(
        "ev_x",
        n_pair,
        np.minimum(-ev.v2g_floor_kwh[pair_sess], x0),
        np.maximum(ev.headroom_kwh[pair_sess], x0),
    )
    if v2g_aware and n_pair:
        add_v2g_ageing(
            lp,
            opts.ageing,
            evd,
            pair_sess,
            dt[pair_t],
            eta,
            ev.charger,
            f.ev.sessions.energy_need_kwh[ev.session],
            np.where(f.ev.v2g[ev.charger], ev.v2g_floor_kwh, 0.0),
        )
    first = np.zeros(n_pair, bool)
    first[start_of[lens > 0]] = True
    r = np.arange(n_pair)
    rhs = np.where(first, x0, 0.0)
    lp.add_rows(
        "ev_energy",
        n_pair,
        np.r_[r, r, r, r[~first]],
        np.r_[x, evc, evd, x[r[~first] - 1]],
        np.r_[
            np.ones(n_pair),
            -eta * dt[pair_t],
            dt[pair_t] / eta,
            -np.ones(int((~first).sum())),
        ],
        rhs,
        rhs,
    )
    to_balance(f.ev.bus[ch], pair_t, evc, 1.0)
    to_balance(f.ev.bus[ch], pair_t, evd, -1.0)
    has_pairs = lens > 0
    last_pair = (start_of + lens - 1)[has_pairs]
    ev_with = np.flatnonzero(has_pairs)
    unmet_ub = 0.0 if opts.hard_ev_deadlines else INF
    crossing = ~ev.departs_in_horizon[ev_with]
    short_eur, credit_eur = ev_end_prices(hd.terminal, crossing, w.unmet_ev_eur_per_kwh)
    ev_unmet = lp.add_cols("ev_unmet", len(ev_with), 0.0, unmet_ub, short_eur)
    # energy beyond the target of a car still plugged in at the end, up to its whole need
    full_need = f.ev.sessions.energy_need_kwh[ev.session[ev_with]]
    room = np.where(crossing, np.maximum(full_need - ev.need_kwh[ev_with], 0.0), 0.0)
    k_cr = np.flatnonzero(room > 0) if credit_eur > 0 else np.zeros(0, int)
    ev_extra = lp.add_cols("ev_end_extra", len(k_cr), 0.0, room[k_cr], -credit_eur)
    k = np.arange(len(ev_with))
    lp.add_rows(
        "ev_deadline",
        len(ev_with),
        np.r_[k, k, k_cr],
        np.r_[x[last_pair], ev_unmet, ev_extra],
        np.r_[np.ones(2 * len(k)), -np.ones(len(k_cr))],
        ev.need_kwh[ev_with],
        INF,
        meta=ev_with[:, None],
    )

    # Deferrable loads: energy per (asset, day) job, inside the daily window
    dj, dtt, frac, job_of_pair, job_asset, job_day, need, remaining = deferrable_jobs(hd)
    dp = lp.add_cols("dfr_p", len(dj), 0.0, f.deferrable.power_kw[dj] * frac)
    n_job = len(job_asset)
    unmet_ub = 0.0 if opts.hard_deferrable else INF
    dfr_unmet = lp.add_cols("dfr_unmet", n_job, 0.0, unmet_ub, w.unmet_deferrable_eur_per_kwh)
    jr = np.arange(n_job)
    lp.add_rows(
        "deferrable_job",
        n_job,
        np.r_[job_of_pair, jr],
        np.r_[dp, dfr_unmet],
        np.r_[dt[dtt], np.ones(n_job)],
        need,
        np.maximum(remaining, need),
        meta=np.c_[job_asset, job_day],
    )
    to_balance(f.deferrable.bus[dj], dtt, dp, 1.0)

    # Heat pumps: exact RC step T_t = a T_{t-1} + (1-a)(T_out + R mode cop p)
    th = f.thermal
    nt = len(th)
    tp = lp.add_cols("th_p", nt * H, 0.0, np.repeat(th.max_power_kw, H))
    temp = lp.add_cols("th_temp", nt * H, -INF, INF)
    dt_th = np.tile(dt, nt)
    comfort = w.comfort_eur_per_degree_hour * dt_th
    lo = lp.add_cols("th_lo", nt * H, 0.0, INF, comfort)
    hi = lp.add_cols("th_hi", nt * H, 0.0, INF, comfort)
    a = np.exp(-dt_th / np.repeat(th.resistance_c_per_kw * th.capacitance_kwh_per_c, H))
    gain = (1.0 - a) * np.repeat(th.resistance_c_per_kw * th.cop, H) * np.tile(hd.hvac_mode[:H], nt)
    rows, has_prev = _chain(nt, H)
    rhs = (1.0 - a) * np.tile(hd.outdoor_temp_c[:H], nt)
    rhs = rhs + np.where(has_prev, 0.0, a * np.repeat(hd.state.thermal_temp_c, H))
    lp.add_rows(
        "thermal_dynamics",
        nt * H,
        np.r_[rows, rows, rows[has_prev]],
        np.r_[temp, tp, temp[rows[has_prev] - 1]],
        np.r_[np.ones(nt * H), -gain, -a[has_prev]],
        rhs,
        rhs,
    )
    lp.add_rows(
        "comfort_min",
        nt * H,
        np.r_[rows, rows],
        np.r_[temp, lo],
        1.0,
        np.repeat(th.comfort_min_c, H),
        INF,
    )
    lp.add_rows(
        "comfort_max",
        nt * H,
        np.r_[rows, rows],
        np.r_[temp, hi],
        np.r_[np.ones(nt * H), -np.ones(nt * H)],
        -INF,
        np.repeat(th.comfort_max_c, H),
    )
    to_balance(np.repeat(th.bus, H), t_grid(nt), tp, 1.0)
    if H:
        mode_end = float(hd.hvac_mode[H - 1])
        add_thermal_deficit(
            lp, hd.terminal, th, temp[H - 1 :: H], hd.state.thermal_temp_c, mode_end
        )

    # PV curtailment where there is sun
    pv_t, pv_i = np.nonzero(hd.pv_available_kw[:H] > 1e-9)
    q = lp.add_cols(
        "pv_q",
        len(pv_i),
        0.0,
        hd.pv_available_kw[pv_t, pv_i],
        w.curtailment_eur_per_kwh * dt[pv_t],
    )
    to_balance(f.pv.bus[pv_i], pv_t, q, 1.0)

    # Bus balance: z[f, t] = sum of flexible consumption at bus f
    nf = len(flex_bus)
    z = lp.add_cols("z", nf * H, -INF, INF)
    br = np.concatenate(bal_r) if bal_r else np.zeros(0, int)
    lp.add_rows(
        "bus_balance",
        nf * H,
        np.r_[np.arange(nf * H), br],
        np.r_[z, np.concatenate(bal_c) if bal_c else np.zeros(0, int)],
        np.r_[np.ones(nf * H), -np.concatenate(bal_v) if bal_v else np.zeros(0)],
        0.0,
        0.0,
    )

    # Feeder head: import - export = inflexible + losses + sum z; peak >= import
    carbon = w.carbon_price_eur_per_kg * hd.carbon_g_per_kwh[:H] / 1000.0
    limit = INF if opts.feeder_limit_kw is None else opts.feeder_limit_kw
    imp = lp.add_cols("import", H, 0.0, limit, (hd.import_eur_per_kwh[:H] + carbon) * dt)
    # Exporting for more than importing costs would make simultaneous import and export an
    # unbounded arbitrage in an LP; such steps are priced with export = import (conservative).
    export_price = np.minimum(hd.export_eur_per_kwh[:H], hd.import_eur_per_kwh[:H])
    exp = lp.add_cols("export", H, 0.0, limit, -export_price * dt)
    n_excess = H if opts.elastic_feeder_limit else 0
    excess = lp.add_cols(
        "feeder_excess", n_excess, 0.0, INF, w.feeder_excess_eur_per_kwh * dt[:n_excess]
    )
    losses = np.zeros(H) if hd.losses_kw is None else hd.losses_kw[:H]
    head_rhs = hd.inflexible_kw[:H].sum(axis=1) + losses
    ht = np.arange(H)
    z_t = np.tile(np.arange(H), nf)
    lp.add_rows(
        "feeder_balance",
        H,
        np.r_[ht, ht, z_t, ht[:n_excess]],
        np.r_[imp, exp, z, excess],
        np.r_[np.ones(H), -np.ones(H), -np.ones(nf * H), np.ones(n_excess)],
        head_rhs,
        head_rhs,
        meta=ht[:, None],
    )
    peak = lp.add_cols("peak", 1, max(hd.peak_floor_kw, 0.0), INF, hd.demand_eur_per_kw)
    lp.add_rows(
        "feeder_peak",
        H,
        np.r_[ht, ht],
        np.r_[np.full(H, peak[0]), imp],
        np.r_[np.ones(H), -np.ones(H)],
        0.0,
        INF,
        meta=ht[:, None],
    )

    v_slack = l_slack = np.zeros(0, int)
    reactive = None
    if network is not None:
        if network.dv_dq is not None:
            reactive = add_reactive(
                lp,
                hd,
                network.q_steps,
                (q, pv_t, pv_i),
                (c, d_),
                fpos,
                nf,
                opts.pv_kva_per_kwp,
                w.reactive_eur_per_kvarh,
            )
        qz_col = None if reactive is None else reactive.qz_col
        v_slack, l_slack = add_network_rows(lp, network, z, H, w, qz_col)
    layout = Layout(
        H=H,
        bat_c=c,
        bat_d=d_,
        bat_e=e,
        ev_t=pair_t,
        ev_pair_sess=pair_sess,
        ev_c=evc,
        ev_d=evd,
        ev_x=x,
        ev_unmet=ev_unmet,
        dfr_j=dj,
        dfr_t=dtt,
        dfr_p=dp,
        job_asset=job_asset,
        job_day=job_day,
        job_need_kwh=need,
        dfr_unmet=dfr_unmet,
        th_p=tp,
        th_temp=temp,
        th_lo=lo,
        th_hi=hi,
        pv_i=pv_i,
        pv_t=pv_t,
        pv_q=q,
        flex_bus=flex_bus,
        z=z,
        imp=imp,
        exp=exp,
        peak=peak,
        excess=excess,
        v_slack=v_slack,
        l_slack=l_slack,
        reactive=reactive,
    )
    return lp, layout
