"""Degradation-aware dispatch: cycle-depth and calendar ageing costs as extra LP columns/rows.

Replaces the constant EUR/kWh throughput wear when ``Options.ageing`` is set. The costs come from
the cell model and the cell price (``gridsync.storage.calibration``), not from a constant.

Cycle depth (Shi et al. 2018, "Optimal battery control under cycle aging mechanisms in
pay-for-performance settings"): each battery's energy range ``[e_lo, e_hi]`` is cut into ``J``
segments of equal width ``w``, each with its own energy ``e_j in [0, w]``, charge and discharge;
the battery's charge and discharge are the sums over segments. Discharging a kWh from segment
``j`` costs ``(C(j w) - C((j-1) w)) / w``, where ``C(depth)`` is the EUR of one cycle of that
depth: ``C`` is convex, so the LP empties the cheapest (shallowest) segments first and a cycle of
depth ``D`` pays ``C(D)``. At the horizon's start the stored energy fills the cheapest segments.

Calendar: the energy above ``e_lo`` is split into ``B`` SoC bands ``h_b in [0, e_hi - e_lo) / B]``
with holding cost slopes (EUR per kWh-hour) from the calendar-ageing rate at each band's SoC (the
greatest convex minorant, so bands fill bottom-up).

V2G: a car's cumulative V2G discharge in a session deepens the cycle its driving started
(``energy_need / car battery``); each session's discharge is split into ``J`` depth segments of
``v2g_floor / J`` (the last unbounded), priced by the same cycle-depth function of the car's cell.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gridsync.dispatch.lp import INF, LinearProgram
from gridsync.storage.ageing import AgeingState
from gridsync.storage.calibration import (
    AgeingEconomics,
    calendar_cost_eur_per_h,
    convex_slopes,
    cycle_cost_eur,
)
from gridsync.storage.cells import cell_for


@dataclass(frozen=True)
class AgeingCosts:
    """The cell models behind the LP's ageing costs. ``battery.capacity_kwh`` is per battery of
    the fleet; ``ev.capacity_kwh`` is the car battery per charger (NMC by default). ``weight``
    scales every ageing cost (1: the model's marginal cost at the cell price)."""

    battery: AgeingEconomics
    battery_state: AgeingState
    ev: AgeingEconomics | None = None
    ev_state: AgeingState | None = None
    segments: int = 3
    bands: int = 2
    weight: float = 1.0

    def depth_eur_per_kwh(self, width_kwh: np.ndarray) -> np.ndarray:
        """(n_batteries, J) EUR per kWh leaving the cells from each depth segment."""
        cap = np.asarray(self.battery.capacity_kwh, dtype=float)
        j = np.arange(self.segments + 1)
        depth = (width_kwh / cap)[:, None] * j[None, :]
        cost = self.weight * cycle_cost_eur(self.battery, self.battery_state, depth)
        return np.diff(cost, axis=1) / np.maximum(width_kwh, 1e-9)[:, None]

    def band_eur_per_kwh_h(self, e_lo: np.ndarray, e_hi: np.ndarray) -> np.ndarray:
        """(n_batteries, B) holding cost slopes of the calendar bands, non-decreasing."""
        cap = np.asarray(self.battery.capacity_kwh, dtype=float)
        k = np.arange(self.bands + 1)
        energy = e_lo[:, None] + (e_hi - e_lo)[:, None] * k[None, :] / self.bands
        soc = np.clip(energy / cap[:, None], 0.0, 1.0)
        rate = self.weight * calendar_cost_eur_per_h(self.battery, self.battery_state, soc)
        out = np.zeros((len(cap), self.bands))
        for i in range(len(cap)):
            if e_hi[i] - e_lo[i] > 1e-9:
                out[i] = convex_slopes(energy[i], rate[i])
        return out


def add_battery_ageing(
    lp: LinearProgram,
    costs: AgeingCosts,
    c: np.ndarray,
    d: np.ndarray,
    e: np.ndarray,
    dt_h: np.ndarray,
    e0_kwh: np.ndarray,
    e_lo_kwh: np.ndarray,
    e_hi_kwh: np.ndarray,
    eta_c: np.ndarray,
    eta_d: np.ndarray,
) -> dict[str, np.ndarray]:
    """Add depth segments and calendar bands for batteries whose charge ``c``, discharge ``d``
    and energy ``e`` columns are battery-major (n_bat x H); ``dt_h`` is (H,). Returns the new
    column blocks (segment energies are (n_bat, H, J) battery-, step-, segment-major)."""
    nb = len(e0_kwh)
    n_model = len(np.atleast_1d(costs.battery.capacity_kwh))
    if n_model != nb:
        msg = f"AgeingCosts.battery: {n_model} batteries modelled but the LP has {nb}"
        raise ValueError(msg)
    H = len(dt_h)
    J, B = costs.segments, costs.bands
    if nb == 0 or H == 0:
        return {}
    span = np.maximum(e_hi_kwh - e_lo_kwh, 0.0)
    w = span / J
    seg_cost = costs.depth_eur_per_kwh(np.maximum(w, 1e-9))  # (nb, J)
    n = nb * H * J
    bt = np.repeat(np.arange(nb * H), J)  # (battery, step) of each segment column
    b_of = bt // H
    t_of = bt % H
    j_of = np.tile(np.arange(J), nb * H)
    dt = dt_h[t_of]
    cj = lp.add_cols("age_seg_c", n, 0.0, INF)
    dj = lp.add_cols("age_seg_d", n, 0.0, INF, seg_cost[b_of, j_of] * dt / eta_d[b_of])
    ej = lp.add_cols("age_seg_e", n, 0.0, w[b_of])
    k = np.arange(nb * H)
    for name, seg, total in (("age_split_c", cj, c), ("age_split_d", dj, d)):
        lp.add_rows(
            name, nb * H, np.r_[bt, k], np.r_[seg, total], np.r_[np.ones(n), -np.ones(nb * H)], 0, 0
        )
    e0_seg = np.clip(e0_kwh[b_of] - e_lo_kwh[b_of] - j_of * w[b_of], 0.0, w[b_of])
    first = t_of == 0
    r = np.arange(n)
    prev = r[~first]
    rhs = np.where(first, e0_seg, 0.0)
    lp.add_rows(
        "age_seg_energy",
        n,
        np.r_[r, r, r, prev],
        np.r_[ej, cj, dj, ej[prev - J]],
        np.r_[np.ones(n), -eta_c[b_of] * dt, dt / eta_d[b_of], -np.ones(len(prev))],
        rhs,
        rhs,
    )
    slopes = costs.band_eur_per_kwh_h(e_lo_kwh, e_lo_kwh + span)  # (nb, B)
    nbb = nb * H * B
    bt_b = np.repeat(np.arange(nb * H), B)
    b_b, t_b, band = bt_b // H, bt_b % H, np.tile(np.arange(B), nb * H)
    h = lp.add_cols("age_band", nbb, 0.0, (span / B)[b_b], slopes[b_b, band] * dt_h[t_b])
    lp.add_rows(
        "age_bands",
        nb * H,
        np.r_[bt_b, k],
        np.r_[h, e],
        np.r_[np.ones(nbb), -np.ones(nb * H)],
        -np.repeat(e_lo_kwh, H),
        -np.repeat(e_lo_kwh, H),
    )
    return {"seg_c": cj, "seg_d": dj, "seg_e": ej, "band": h}


def costs_from_scenario(scenario) -> AgeingCosts:
    """Ageing costs of a scenario's batteries and EV chargers from its fleet config (chemistry,
    pack cost, warranty, cell temperature), for new batteries."""
    cfg = scenario.config.fleet
    f = scenario.fleet
    bc, ec = cfg.battery, cfg.ev
    battery = AgeingEconomics(
        cell_for(bc.chemistry),
        f.battery.capacity_kwh,
        bc.pack_cost_eur_per_kwh,
        warranty_years=bc.warranty_years,
        temp_c=bc.cell_temp_c,
    )
    ev = AgeingEconomics(
        cell_for(ec.chemistry),
        np.full(len(f.ev), ec.battery_kwh),
        ec.pack_cost_eur_per_kwh,
        warranty_years=ec.warranty_years,
    )
    return AgeingCosts(battery, AgeingState.fresh(len(f.battery)), ev, AgeingState.fresh(len(f.ev)))


def mpc_ageing():
    """The ``mpc`` controller with ageing costs from the cell model (registry entry). Its LP is
    about twice as large (1.1 s of CPU against 0.24 s per default-feeder solve), hence the
    longer time limit on a shared machine."""
    from gridsync.dispatch.mpc import MPCConfig, MPCController

    return MPCController(config=MPCConfig(ageing_costs=True, time_limit_s=30.0), name="mpc-ageing")


def v2g_depth_eur_per_kwh(
    costs: AgeingCosts, charger: np.ndarray, need_kwh: np.ndarray, width_kwh: np.ndarray
) -> np.ndarray:
    """(n_sessions, J) EUR per kWh a session's car gives back, by cumulative V2G depth: the
    marginal cost of deepening the cycle its driving (``need_kwh``) started."""
    ev = costs.ev
    cap = np.asarray(ev.capacity_kwh, dtype=float)[charger]
    j = np.arange(costs.segments + 1)
    depth = np.clip((need_kwh[:, None] + width_kwh[:, None] * j[None, :]) / cap[:, None], 0, 1)
    sub = AgeingEconomics(
        ev.cell,
        cap,
        ev.replacement_eur_per_kwh,
        ev.end_of_life_frac,
        ev.warranty_years,
        np.broadcast_to(np.asarray(ev.temp_c, dtype=float), (len(ev.capacity_kwh),))[charger],
        ev.efc_per_year,
        ev.c_rate_per_h,
    )
    st = costs.ev_state
    state = AgeingState(*(np.asarray(a)[charger] for a in vars(st).values()))
    cost = costs.weight * cycle_cost_eur(sub, state, depth)
    return np.diff(cost, axis=1) / np.maximum(width_kwh, 1e-9)[:, None]


def add_v2g_ageing(
    lp: LinearProgram,
    costs: AgeingCosts,
    evd: np.ndarray,
    pair_sess: np.ndarray,
    dt_pair_h: np.ndarray,
    eta_pair: np.ndarray,
    charger: np.ndarray,
    need_kwh: np.ndarray,
    floor_kwh: np.ndarray,
) -> np.ndarray:
    """Split each V2G discharge pair's ``evd`` into depth segments budgeted per session.
    ``charger``, ``need_kwh``, ``floor_kwh`` are per session; the rest per (session, step) pair.
    Returns the segment columns (pair-major, J per pair)."""
    J = costs.segments
    ok = floor_kwh[pair_sess] > 0
    pairs = np.flatnonzero(ok)
    if not len(pairs):
        return np.zeros(0, int)
    width = np.maximum(floor_kwh, 1e-6) / J
    price = v2g_depth_eur_per_kwh(costs, charger, need_kwh, width)  # (n_sess, J)
    s_of = np.repeat(pair_sess[pairs], J)
    p_of = np.repeat(pairs, J)
    j_of = np.tile(np.arange(J), len(pairs))
    out_kwh = dt_pair_h[p_of] / eta_pair[p_of]  # kWh out of the car per kW at the charger
    v = lp.add_cols("age_v2g_seg", len(p_of), 0.0, INF, price[s_of, j_of] * out_kwh)
    k = np.repeat(np.arange(len(pairs)), J)
    lp.add_rows(
        "age_v2g_split",
        len(pairs),
        np.r_[k, np.arange(len(pairs))],
        np.r_[v, evd[pairs]],
        np.r_[np.ones(len(v)), -np.ones(len(pairs))],
        0.0,
        0.0,
    )
    sessions = np.unique(pair_sess[pairs])
    spos = np.full(int(pair_sess.max()) + 1, -1)
    spos[sessions] = np.arange(len(sessions))
    budget = j_of < J - 1
    rows = spos[s_of[budget]] * (J - 1) + j_of[budget]
    n_rows = len(sessions) * (J - 1)
    lp.add_rows(
        "age_v2g_depth",
        n_rows,
        rows,
        v[budget],
        out_kwh[budget],
        -INF,
        np.repeat(width[sessions], J - 1),
    )
    return v
