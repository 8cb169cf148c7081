"""A straightforward per-asset, per-step build of the dispatch LP (no network rows).

This is how the LP reads on paper, one variable and one coefficient at a time. It exists to
check the vectorised ``formulation.build_dispatch_lp`` (same optimum, tested) and as the
build-time baseline in ``bench/bench_dispatch.py``. Do not use it for dispatch.
"""

from __future__ import annotations

import math

import numpy as np

from gridsync.dispatch.formulation import Weights
from gridsync.dispatch.horizon import HorizonData
from gridsync.dispatch.lp import INF, LinearProgram


class _Builder:
    def __init__(self) -> None:
        self.lb: list[float] = []
        self.ub: list[float] = []
        self.cost: list[float] = []
        self.r: list[int] = []
        self.c: list[int] = []
        self.v: list[float] = []
        self.rlo: list[float] = []
        self.rhi: list[float] = []

    def var(self, lb: float, ub: float, cost: float = 0.0) -> int:
        self.lb.append(lb)
        self.ub.append(ub)
        self.cost.append(cost)
        return len(self.lb) - 1

    def row(self, terms: list[tuple[int, float]], lo: float, hi: float) -> None:
        i = len(self.rlo)
        for col, val in terms:
            self.r.append(i)
            self.c.append(col)
            self.v.append(val)
        self.rlo.append(lo)
        self.rhi.append(hi)

    def to_lp(self) -> LinearProgram:
        lp = LinearProgram()
        lp.add_cols("x", len(self.lb), np.array(self.lb), np.array(self.ub), np.array(self.cost))
        lp.add_rows(
            "rows",
            len(self.rlo),
            np.array(self.r, dtype=np.int64),
            np.array(self.c, dtype=np.int64),
            np.array(self.v),
            np.array(self.rlo),
            np.array(self.rhi),
        )
        return lp


def build_reference_lp(hd: HorizonData, w: Weights) -> LinearProgram:
    """The dispatch LP of ``build_dispatch_lp(hd, w)`` (soft targets, no network rows)."""
    f = hd.fleet
    H, dt = hd.horizon, hd.dt_h
    m = _Builder()
    flex: dict[int, list[tuple[int, float]]] = {}  # step -> flexible consumption terms

    def inject(t: int, col: int, sign: float) -> None:
        flex.setdefault(t, []).append((col, sign))

    b = f.battery
    terminal = min(hd.import_eur_per_kwh[:H])
    for i in range(len(b)):
        e0 = float(hd.state.battery_energy_kwh[i])
        lo = min(b.energy_min_kwh[i], e0)
        hi = max(b.energy_max_kwh[i], e0)
        prev = None
        for t in range(H):
            deg = b.degradation_eur_per_kwh[i] * dt
            c = m.var(0.0, b.power_kw[i], deg)
            d = m.var(0.0, b.power_kw[i], deg)
            e = m.var(lo, hi, -terminal if t == H - 1 else 0.0)
            terms = [
                (e, 1.0),
                (c, -b.efficiency_charge[i] * dt),
                (d, dt / b.efficiency_discharge[i]),
            ]
            if prev is None:
                m.row(terms, e0, e0)
            else:
                m.row([*terms, (prev, -1.0)], 0.0, 0.0)
            prev = e
            inject(t, c, 1.0)
            inject(t, d, -1.0)

    ev = hd.ev
    for k in range(len(ev)):
        ch = int(ev.charger[k])
        eta, p = f.ev.efficiency[ch], f.ev.max_power_kw[ch]
        v2g = bool(f.ev.v2g[ch]) and ev.v2g_floor_kwh[k] > 0
        x0 = float(ev.delivered0_kwh[k])
        prev = None
        for t in range(int(ev.first_t[k]), int(ev.end_t[k])):
            c = m.var(0.0, p)
            d = m.var(0.0, p if v2g else 0.0, f.ev.v2g_degradation_eur_per_kwh[ch] * dt)
            x = m.var(min(-ev.v2g_floor_kwh[k], x0), max(ev.headroom_kwh[k], x0))
            terms = [(x, 1.0), (c, -eta * dt), (d, dt / eta)]
            if prev is None:
                m.row(terms, x0, x0)
            else:
                m.row([*terms, (prev, -1.0)], 0.0, 0.0)
            prev = x
            inject(t, c, 1.0)
            inject(t, d, -1.0)
        if prev is not None:
            u = m.var(0.0, INF, w.unmet_ev_eur_per_kwh)
            m.row([(prev, 1.0), (u, 1.0)], ev.need_kwh[k], INF)

    dfr = f.deferrable
    for j in range(len(dfr)):
        jobs: dict[int, dict] = {}
        for t in range(H + hd.steps_per_day):
            abs_h = hd.hour_of_day[0] + dt * t
            day = math.floor(abs_h / 24.0 + 1e-9)
            hour = abs_h - 24.0 * day
            if not (dfr.window_start_h[j] <= hour + 1e-9 < dfr.window_end_h[j]):
                continue
            job = jobs.setdefault(day, {"cols": [], "after": 0, "first_t": t})
            if t < H:
                col = m.var(0.0, dfr.power_kw[j])
                job["cols"].append(col)
                inject(t, col, 1.0)
            else:
                job["after"] += 1
        for day, job in jobs.items():
            if not job["cols"]:
                continue
            current = day == 0 and job["first_t"] == 0
            done = hd.state.deferrable_done_kwh[j] if current else 0.0
            remaining = max(dfr.energy_kwh[j] - done, 0.0)
            need = max(remaining - dfr.power_kw[j] * dt * job["after"], 0.0)
            u = m.var(0.0, INF, w.unmet_deferrable_eur_per_kwh)
            m.row([(col, dt) for col in job["cols"]] + [(u, 1.0)], need, max(remaining, need))

    th = f.thermal
    comfort = w.comfort_eur_per_degree_hour * dt
    for k in range(len(th)):
        a = math.exp(-dt / (th.resistance_c_per_kw[k] * th.capacitance_kwh_per_c[k]))
        prev = None
        for t in range(H):
            p = m.var(0.0, th.max_power_kw[k])
            temp = m.var(-INF, INF)
            lo = m.var(0.0, INF, comfort)
            hi = m.var(0.0, INF, comfort)
            gain = (1 - a) * th.resistance_c_per_kw[k] * th.cop[k] * hd.hvac_mode[t]
            rhs = (1 - a) * hd.outdoor_temp_c[t]
            if prev is None:
                rhs += a * hd.state.thermal_temp_c[k]
                m.row([(temp, 1.0), (p, -gain)], rhs, rhs)
            else:
                m.row([(temp, 1.0), (p, -gain), (prev, -a)], rhs, rhs)
            m.row([(temp, 1.0), (lo, 1.0)], th.comfort_min_c[k], INF)
            m.row([(temp, 1.0), (hi, -1.0)], -INF, th.comfort_max_c[k])
            prev = temp
            inject(t, p, 1.0)

    pv = f.pv
    for i in range(len(pv)):
        for t in range(H):
            avail = hd.pv_available_kw[t, i]
            if avail > 1e-9:
                q = m.var(0.0, avail, w.curtailment_eur_per_kwh * dt)
                inject(t, q, 1.0)

    peak = m.var(max(hd.peak_floor_kw, 0.0), INF, hd.demand_eur_per_kw)
    losses = np.zeros(H) if hd.losses_kw is None else hd.losses_kw
    for t in range(H):
        carbon = w.carbon_price_eur_per_kg * hd.carbon_g_per_kwh[t] / 1000.0
        imp = m.var(0.0, INF, (hd.import_eur_per_kwh[t] + carbon) * dt)
        export_price = min(hd.export_eur_per_kwh[t], hd.import_eur_per_kwh[t])
        exp = m.var(0.0, INF, -export_price * dt)
        terms = [(imp, 1.0), (exp, -1.0)] + [(col, -sign) for col, sign in flex.get(t, [])]
        rhs = float(hd.inflexible_kw[t].sum() + losses[t])
        m.row(terms, rhs, rhs)
        m.row([(peak, 1.0), (imp, -1.0)], 0.0, INF)
    return m.to_lp()
