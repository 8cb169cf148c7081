"""Why a dispatch problem is infeasible, in sentences a user can act on.

Two passes: a physical check of each hard target on its own (can this EV take this much
energy before it leaves, at its charger's power, in the time it is plugged in?), then an
elastic re-solve in which every hard target gets a penalised slack; targets left with slack
are the ones that conflict with the rest of the problem (typically the feeder limit).
"""

from __future__ import annotations

import numpy as np

from gridsync.dispatch.formulation import NetworkRows, Options, Weights, build_dispatch_lp
from gridsync.dispatch.horizon import HorizonData

ELASTIC_EUR_PER_UNIT = 1.0e4


def _when(hd: HorizonData, t: int) -> str:
    t = int(min(max(t, 0), hd.horizon - 1))
    return hd.times[t].strftime("%a %H:%M") if hd.times is not None else f"step +{t}"


def ev_physical_shortfalls(hd: HorizonData) -> dict[int, str]:
    """EV targets no schedule can meet, by session: need above what the charger can deliver
    while the car is plugged in (or above the room in its battery)."""
    ev, f = hd.ev, hd.fleet.ev
    eta = f.efficiency[ev.charger]
    p = f.max_power_kw[ev.charger]
    hours = np.maximum(ev.end_t - ev.first_t, 0) * hd.dt_h
    reachable = np.minimum(ev.delivered0_kwh + eta * p * hours, ev.headroom_kwh)
    out = {}
    for k in np.flatnonzero(ev.need_kwh > reachable + 1e-6):
        limit = (
            f"the car's battery has room for only {ev.headroom_kwh[k]:.1f} kWh"
            if ev.headroom_kwh[k] < ev.delivered0_kwh[k] + eta[k] * p[k] * hours[k]
            else f"{p[k]:.1f} kW for {hours[k]:.2f} h at {eta[k]:.0%} efficiency"
        )
        out[int(ev.session[k])] = (
            f"EV {int(ev.charger[k])} (session {int(ev.session[k])}) needs "
            f"{ev.need_kwh[k]:.1f} kWh by {_when(hd, ev.end_t[k])} but can take at most "
            f"{reachable[k]:.1f} kWh ({limit}; {ev.delivered0_kwh[k]:.1f} kWh delivered so far)"
        )
    return out


def diagnose(
    hd: HorizonData,
    w: Weights,
    opts: Options,
    network: NetworkRows | None = None,
    time_limit_s: float = 10.0,
) -> list[str]:
    """Plain-language reasons why the problem with ``opts`` has no feasible plan."""
    physical = ev_physical_shortfalls(hd) if opts.hard_ev_deadlines else {}
    messages = list(physical.values())
    elastic_w = Weights(
        **{
            **w.__dict__,
            "unmet_ev_eur_per_kwh": ELASTIC_EUR_PER_UNIT
            if opts.hard_ev_deadlines
            else w.unmet_ev_eur_per_kwh,
            "unmet_deferrable_eur_per_kwh": ELASTIC_EUR_PER_UNIT
            if opts.hard_deferrable
            else w.unmet_deferrable_eur_per_kwh,
            "feeder_excess_eur_per_kwh": ELASTIC_EUR_PER_UNIT,
        }
    )
    elastic = Options(feeder_limit_kw=opts.feeder_limit_kw, elastic_feeder_limit=True)
    lp, lay = build_dispatch_lp(hd, elastic_w, network, elastic)
    sol = lp.solve(time_limit_s)
    if not sol.ok:
        messages.append(f"the relaxed problem could not be solved either ({sol.message})")
        return messages
    x = sol.x
    if len(lay.excess):
        over = x[lay.excess]
        bad = np.flatnonzero(over > 1e-3)
        if len(bad):
            t = int(bad[np.argmax(over[bad])])
            inflex = float(hd.inflexible_kw[t].sum())
            messages.append(
                f"feeder import must stay below {opts.feeder_limit_kw:.1f} kW, but at "
                f"{_when(hd, t)} the plan needs {opts.feeder_limit_kw + over[t]:.1f} kW "
                f"(inflexible load minus PV alone is {inflex:.1f} kW); the limit is exceeded "
                f"in {len(bad)} step(s)"
            )
    if opts.hard_ev_deadlines:
        unmet = x[lay.ev_unmet]
        sess_of_row = np.flatnonzero(np.maximum(hd.ev.end_t - hd.ev.first_t, 0) > 0)
        for r in np.flatnonzero(unmet > 1e-3):
            k = sess_of_row[r]
            if int(hd.ev.session[k]) in physical:
                continue
            messages.append(
                f"EV {int(hd.ev.charger[k])} (session {int(hd.ev.session[k])}) needs "
                f"{hd.ev.need_kwh[k]:.1f} kWh by {_when(hd, hd.ev.end_t[k])} but can get only "
                f"{hd.ev.need_kwh[k] - unmet[r]:.1f} kWh within the other limits"
            )
    if opts.hard_deferrable:
        unmet = x[lay.dfr_unmet]
        for r in np.flatnonzero(unmet > 1e-3):
            j = int(lay.job_asset[r])
            messages.append(
                f"appliance {j} needs {lay.job_need_kwh[r]:.2f} kWh in its window "
                f"({hd.fleet.deferrable.window_start_h[j]:.2f}-"
                f"{hd.fleet.deferrable.window_end_h[j]:.2f} h) but can get only "
                f"{lay.job_need_kwh[r] - unmet[r]:.2f} kWh"
            )
    if not messages:
        messages.append("no single hard target explains the infeasibility (numerical trouble?)")
    return messages
