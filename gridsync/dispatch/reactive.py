"""Inverter reactive power in the dispatch LP: Q per PV and battery inverter inside a polygonal
inner approximation of its kVA circle, summed per flexible bus into the voltage rows.

The circle ``P^2 + Q^2 <= S^2`` is replaced by the regular polygon inscribed in it with a
vertex at ``(S, 0)``: every vertex lies on the circle, so every point of the polygon is inside
it (the inverter can always deliver what the LP plans) and full active power at ``Q = 0``
stays allowed. PV inverters only produce (``P >= 0``); battery inverters charge and
discharge. Q columns exist only at the blocks ``q_steps`` (``NetworkLimits.rows``: where a
voltage row is near the upper limit) and only absorb (``Q <= 0``, the quadrants' facets with
``sin < 0``): the LP uses reactive power against over-voltage, where it is the alternative to
curtailment. Raising voltages by injecting Q loads the branches in a way the loading rows'
linearisation at unity power factor does not see (``d|I|/dQ = 0`` there), so that is left to
the shield's AC-checked correction. Elsewhere the inverters stay at unity power factor.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gridsync.dispatch.lp import INF, LinearProgram

PV_SIDES = 12  # vertices every 30 degrees: 3 facets in the quadrant P >= 0, Q <= 0
BATTERY_SIDES = 8  # vertices every 45 degrees: 4 facets in the half Q <= 0


def polygon_facets(
    n_sides: int, half: bool, absorbing: bool = False
) -> tuple[np.ndarray, np.ndarray, float]:
    """(cos, sin) of the outward facet normals of the regular ``n_sides``-gon inscribed in
    the unit circle with a vertex at angle 0, and the facets' distance from the origin
    (``cos(pi / n)``): ``cos_k P + sin_k Q <= S * dist`` for each facet k. ``half`` keeps the
    facets facing ``P > 0`` (with ``P >= 0`` they close the polygon when ``n_sides`` is a
    multiple of 4, its vertex at 90 degrees lying on ``P = 0``); ``absorbing`` keeps those
    facing ``Q < 0`` (with ``Q <= 0`` they close the lower half)."""
    if n_sides < 4 or n_sides % 4:
        msg = f"n_sides = {n_sides}: expected a multiple of 4 (>= 4)"
        raise ValueError(msg)
    angle = (2 * np.arange(n_sides) + 1) * np.pi / n_sides
    cos, sin = np.cos(angle), np.sin(angle)
    keep = np.ones(n_sides, bool)
    if half:
        keep &= cos > 1e-12
    if absorbing:
        keep &= sin < -1e-12
    cos, sin = cos[keep], sin[keep]
    return cos, sin, float(np.cos(np.pi / n_sides))


@dataclass
class ReactiveLayout:
    """Columns of the inverters' reactive power (kvar injected, generator convention) with
    the block and asset each belongs to, and ``qz``: net reactive consumption per flexible
    bus, ``qz_col[f, t]`` (-1 where block ``t`` has no Q)."""

    pv_x: np.ndarray
    pv_t: np.ndarray
    pv_i: np.ndarray
    bat_x: np.ndarray
    bat_t: np.ndarray
    bat_j: np.ndarray
    qz_col: np.ndarray

    @classmethod
    def empty(cls, n_flex: int, H: int) -> ReactiveLayout:
        none = np.zeros(0, int)
        return cls(none, none, none, none, none, none, np.full((n_flex, H), -1))


def add_reactive(
    lp: LinearProgram,
    hd,
    q_steps: np.ndarray,
    curtail: tuple[np.ndarray, np.ndarray, np.ndarray],
    bat_cd: tuple[np.ndarray, np.ndarray],
    fpos: np.ndarray,
    n_flex: int,
    pv_kva_per_kwp: float,
    cost_eur_per_kvarh: float,
) -> ReactiveLayout:
    """Q columns for every PV inverter with sun and every battery inverter at blocks
    ``q_steps``, their kVA polygons, and the per-bus sums ``qz``.

    ``curtail``: the LP's curtailment columns with their (block, PV) pairs, so PV output is
    ``available - curtailment``; ``bat_cd``: the battery charge and discharge columns
    (asset-major), so battery output is ``discharge - charge``."""
    H = hd.horizon
    f = hd.fleet
    dt = hd.step_h
    q_steps = np.unique(np.asarray(q_steps, dtype=int))
    out = ReactiveLayout.empty(n_flex, H)
    if not len(q_steps):
        return out
    in_q = np.zeros(H, bool)
    in_q[q_steps] = True

    cur_cols, cur_t, cur_i = curtail
    sel = np.flatnonzero(in_q[cur_t])
    t_pv, i_pv, c_pv = cur_t[sel], cur_i[sel], cur_cols[sel]
    s_pv = pv_kva_per_kwp * f.pv.peak_kw[i_pv]
    avail = hd.pv_available_kw[t_pv, i_pv]
    # beyond its rating an inverter has no Q to give at all (the twin clips Q to zero there)
    room = np.where(avail < s_pv, s_pv, 0.0)
    # Q <= 0: the price is on the kvar absorbed
    x_pv = lp.add_cols("pv_kvar", len(sel), -room, 0.0, -cost_eur_per_kvarh * dt[t_pv])
    cos, sin, dist = polygon_facets(PV_SIDES, half=True, absorbing=True)
    k = len(cos)
    ok = np.flatnonzero(room > 0)
    n = len(ok)
    r = np.arange(n * k)
    facet = np.tile(np.arange(k), n)
    pair = np.repeat(ok, k)
    # cos (avail - curtail) + sin Q <= S dist
    lp.add_rows(
        "pv_kva",
        n * k,
        np.r_[r, r],
        np.r_[c_pv[pair], x_pv[pair]],
        np.r_[-cos[facet], sin[facet]],
        -INF,
        s_pv[pair] * dist - cos[facet] * avail[pair],
    )

    c, d = bat_cd
    nb = len(f.battery)
    j_b = np.repeat(np.arange(nb), len(q_steps))
    t_b = np.tile(q_steps, nb)
    s_b = f.battery.power_kw[j_b]
    x_b = lp.add_cols("battery_kvar", len(j_b), -s_b, 0.0, -cost_eur_per_kvarh * dt[t_b])
    cos, sin, dist = polygon_facets(BATTERY_SIDES, half=False, absorbing=True)
    k = len(cos)
    r = np.arange(len(j_b) * k)
    facet = np.tile(np.arange(k), len(j_b))
    pair = np.repeat(np.arange(len(j_b)), k)
    col = j_b[pair] * H + t_b[pair]
    # cos (discharge - charge) + sin Q <= S dist
    lp.add_rows(
        "battery_kva",
        len(r),
        np.r_[r, r, r],
        np.r_[d[col], c[col], x_b[pair]],
        np.r_[cos[facet], -cos[facet], sin[facet]],
        -INF,
        s_b[pair] * dist,
    )

    # qz[f, t] + sum of the Q injected at bus f in block t = 0, only where an inverter can
    # give Q (the voltage rows are dense in qz: every column left out keeps the LP lighter)
    has_q = np.zeros((n_flex, H), bool)
    has_q[fpos[f.pv.bus[i_pv[ok]]], t_pv[ok]] = True
    has_q[fpos[f.battery.bus[j_b]], t_b] = True
    flex_f, flex_t = np.nonzero(has_q)
    qz = lp.add_cols("qz", len(flex_t), -INF, INF)
    qz_col = np.full((n_flex, H), -1)
    qz_col[flex_f, flex_t] = qz
    row_of = np.full((n_flex, H), -1)
    row_of[flex_f, flex_t] = np.arange(len(flex_t))
    pv_row = row_of[fpos[f.pv.bus[i_pv[ok]]], t_pv[ok]]
    bat_row = row_of[fpos[f.battery.bus[j_b]], t_b]
    lp.add_rows(
        "reactive_balance",
        len(flex_t),
        np.r_[np.arange(len(flex_t)), pv_row, bat_row],
        np.r_[qz, x_pv[ok], x_b],
        1.0,
        0.0,
        0.0,
    )
    out.pv_x, out.pv_t, out.pv_i = x_pv, t_pv, i_pv
    out.bat_x, out.bat_t, out.bat_j = x_b, t_b, j_b
    out.qz_col = qz_col
    return out


def kvar_arrays(hd, rl: ReactiveLayout, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(PV kvar (H, n_pv), battery kvar (H, n_bat), net reactive consumption per flexible bus
    (H, n_flex)) of an LP solution ``x``, per block."""
    f = hd.fleet
    H = hd.horizon
    pv = np.zeros((H, len(f.pv)))
    pv[rl.pv_t, rl.pv_i] = x[rl.pv_x]
    bat = np.zeros((H, len(f.battery)))
    bat[rl.bat_t, rl.bat_j] = x[rl.bat_x]
    has = rl.qz_col >= 0
    qz = np.zeros(rl.qz_col.shape)
    qz[has] = x[rl.qz_col[has]]
    return pv, bat, qz.T
