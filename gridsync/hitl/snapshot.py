"""The dashboard's view of a console session: one JSON-ready dict per step, plus geometry."""

from __future__ import annotations

from typing import Any

import numpy as np

from gridsync.sim.twin import StepRecord


def _r(a, nd: int = 4) -> list:
    return [None if not np.isfinite(x) else round(float(x), nd) for x in np.asarray(a, float)]


def build_snapshot(session, rec: StepRecord, obs) -> dict[str, Any]:
    """What the dashboard shows after a step (``session`` is a ConsoleSession)."""
    sc, f = session.scenario, session.scenario.fleet
    t = sc.index[rec.step]
    soc = np.divide(
        session.twin.energy_kwh,
        f.battery.capacity_kwh,
        out=np.zeros(len(f.battery)),
        where=f.battery.capacity_kwh > 0,
    )
    plugged = obs.ev_active_session >= 0
    d = f.deferrable
    hour = obs.hour_of_day
    in_window = (d.window_start_h <= hour) & (hour < d.window_end_h)
    k = dict(session.kpi)
    days = max(k["steps"] * sc.dt_h / 24.0, 1e-9)
    k["demand_charge_eur"] = sc.tariff.demand_charge_eur(k["peak_import_kw"], days)
    k["total_cost_eur"] = k["energy_cost_eur"] + k["demand_charge_eur"] + k["degradation_eur"]
    ol = session.last_outlook
    return {
        "step": rec.step,
        "sim_time": t.isoformat(),
        "wall_s": session.clock(),
        "feeder_kw": round(rec.feeder_kw, 2),
        "losses_kw": round(rec.losses_kw, 3) if np.isfinite(rec.losses_kw) else None,
        "price_eur_per_kwh": obs.import_price_eur_per_kwh,
        "vm_pu": _r(rec.vm_pu),
        "loading_pct": _r(rec.branch_loading_pct, 1),
        "vm_max_pu": float(np.nanmax(rec.vm_pu)) if not rec.pf_failed else None,
        "vm_min_pu": float(np.nanmin(rec.vm_pu)) if not rec.pf_failed else None,
        "loading_max_pct": float(np.nanmax(rec.branch_loading_pct)) if not rec.pf_failed else None,
        "history": {
            "t": [h[0] for h in session.history],
            "feeder_kw": [round(h[1], 2) for h in session.history],
        },
        "outlook": None
        if ol is None
        else {
            "t": ol.times,
            "feeder_kw": _r(ol.feeder_kw, 2),
            "low_kw": _r(ol.band_low_kw, 2),
            "high_kw": _r(ol.band_high_kw, 2),
            "planned_flexible_kw": _r(ol.planned_flexible_kw, 2),
        },
        "fleet": {
            "battery_soc_mean": float(soc.mean()) if len(soc) else None,
            "battery_soc": _r(soc, 3),
            "battery_kw": round(float(rec.battery_kw.sum()), 2),
            "ev_plugged": int(plugged.sum()),
            "ev_charging": int((rec.ev_kw > 0.05).sum()),
            "ev_kw": round(float(rec.ev_kw.sum()), 2),
            "ev_total": len(f.ev),
            "deferrable_running": int((rec.deferrable_kw > 0.05).sum()),
            "deferrable_waiting": int(
                (
                    in_window
                    & (session.twin.done_kwh < d.energy_kwh - 1e-6)
                    & (rec.deferrable_kw <= 0.05)
                ).sum()
            ),
            "deferrable_total": len(d),
            "thermal_on": int((rec.thermal_kw > 0.05).sum()),
            "thermal_mean_temp_c": round(float(session.twin.temp_c.mean()), 2)
            if len(session.twin.temp_c)
            else None,
            "thermal_kw": round(float(rec.thermal_kw.sum()), 2),
            "pv_kw": round(float(rec.pv_kw.sum()), 2),
            "curtailed_kw": round(float(rec.curtailed_kw.sum()), 2),
        },
        "kpi": {key: (round(v, 3) if isinstance(v, float) else v) for key, v in k.items()},
        "alerts": list(session.alerts)[:15],
        "approvals": {
            "pending": [r.to_dict(session.clock()) for r in session.approvals.pending()],
            "recent": [r.to_dict(session.clock()) for r in session.approvals.recent(8)],
        },
        "overrides": [o.to_dict() for o in session.overrides.list()],
    }


def topology(scenario, pf) -> dict[str, Any]:
    """Static feeder geometry for the one-line diagram."""
    fd = scenario.feeder
    xy = np.asarray(fd.bus_xy, dtype=float)
    return {
        "bus_names": [str(n) for n in fd.bus_names],
        "x": _r(xy[:, 0], 6),
        "y": _r(xy[:, 1], 6),
        "slack": int(fd.slack_pos),
        "branch_from": [int(i) for i in pf.branch_from_pos],
        "branch_to": [int(i) for i in pf.branch_to_pos],
        "branch_names": [str(n) for n in pf.branch_names],
        "limits": scenario.config.limits.model_dump(),
        "fleet": scenario.fleet.counts(),
    }
