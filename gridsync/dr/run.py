"""Run a DR week on the twin and account for it: events, predicted vs delivered reduction,
peak, rebound, incentive cost, comfort, opt-outs and baseline accuracy.

Two runs share one scenario: the base controller alone (the counterfactual, metered the same
way) and the base controller wrapped by ``DemandResponseController``. Both are deterministic
for a given seed, so the difference between them is exactly what DR did ("true" delivered
reduction); M&V baselines are judged against that truth and against non-event days.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from gridsync.dr.config import END_USES, DRConfig, load_dr_config
from gridsync.dr.mv import baseline_accuracy
from gridsync.dr.twin import DemandResponseController
from gridsync.sim.kpi import compute_kpis
from gridsync.sim.simulator import SimulationResult, simulate


@dataclass
class DRRun:
    """Everything ``run_dr_week`` produced: the JSON-ready summary and the raw runs."""

    summary: dict
    scenario: object
    no_dr: SimulationResult
    with_dr: SimulationResult
    controller: DemandResponseController
    reference: DemandResponseController


def fixed_program_config(cfg: DRConfig, name: str) -> DRConfig:
    """Only program ``name``, at its highest price/rebate level: a 'single fixed program'."""
    p = cfg.program(name)
    update = {}
    if p.price_levels_eur_per_kwh:
        update["price_levels_eur_per_kwh"] = [max(p.price_levels_eur_per_kwh)]
    if p.rebate_levels_eur_per_kwh:
        update["rebate_levels_eur_per_kwh"] = [max(p.rebate_levels_eur_per_kwh)]
    return cfg.model_copy(update={"programs": [p.model_copy(update=update)]})


def _make_base(name: str):
    from gridsync.sim.registry import make_controller

    return make_controller(name)


def _window_metrics(p_kw: np.ndarray, scenario, lo: int, hi: int) -> dict:
    dt_h = scenario.dt_h
    seg = p_kw[lo:hi]
    energy = scenario.tariff.energy_cost_eur(seg, dt_h, start=scenario.start_step + lo)
    peak = float(max(seg.max(initial=0.0), 0.0))
    demand = scenario.tariff.demand_charge_eur(peak, (hi - lo) * dt_h / 24)
    return {"peak_import_kw": peak, "energy_cost_eur": energy, "demand_charge_eur": demand}


def run_dr_week(
    scenario_path: str | None = "winter-electrified",
    dr_config: DRConfig | None = None,
    base: str = "uncontrolled",
    days: int = 7,
    warmup_days: int = 14,
    truth_seed: int | None = None,
    on_step: Callable[[str, int, int], None] | None = None,
    reuse: DRRun | None = None,
) -> DRRun:
    """Simulate ``warmup_days`` without events, then ``days`` with the DR agent, and compare
    with the base controller alone over the same period.

    ``reuse`` takes the scenario and the no-DR run of an earlier ``DRRun`` with the same
    scenario, base controller and days (to compare several DR configs cheaply)."""
    from gridsync.model.scenario_config import load_scenario_config
    from gridsync.sim.builder import load_scenario, resolve_scenario_path

    if days < 1 or warmup_days < 1:
        msg = f"days and warmup_days must be >= 1 (got days={days}, warmup_days={warmup_days})"
        raise ValueError(msg)
    cfg = dr_config or load_dr_config()
    cb = (lambda tag: lambda i, n: on_step(tag, i, n)) if on_step else (lambda tag: None)
    if reuse is not None:
        scenario, r0, ref = reuse.scenario, reuse.no_dr, reuse.reference
    else:
        scen_cfg = load_scenario_config(resolve_scenario_path(scenario_path))
        start = scen_cfg.time.start - dt.timedelta(days=warmup_days)
        # The warm-up days are the DR agent's history; a week before them is enough for the
        # customer segments and the base controllers (winter windows start near January 1st).
        scenario = load_scenario(
            scenario_path,
            start=start,
            days=warmup_days + days,
            history_days=min(scen_cfg.time.history_days, 7),
        )
        # The DR agent's customer meters are its own physics on the model (dr/twin.py), not
        # readings of the plant, so the DR run keeps the model as its plant until they are.
        scenario = replace(scenario, plant=None)
        ref = DemandResponseController(
            _make_base(base), cfg, warmup_days, enabled=False, truth_seed=truth_seed
        )
        r0 = simulate(scenario, ref, on_step=cb("no DR"))
    ctl = DemandResponseController(
        _make_base(base), cfg, warmup_days, enabled=True, truth_seed=truth_seed
    )
    r1 = simulate(scenario, ctl, on_step=cb("with DR"))
    events = ctl.finish()
    summary = _summarise(scenario, cfg, base, warmup_days, r0, r1, ref, ctl, events)
    return DRRun(summary, scenario, r0, r1, ctl, ref)


def _summarise(scenario, cfg, base, warmup_days, r0, r1, ref, ctl, events) -> dict:
    spd, dt_h = scenario.steps_per_day, scenario.dt_h
    lo, hi = warmup_days * spd, scenario.n_steps
    agent = ctl.agent
    programs = agent.programs
    rb = agent._rebound_steps()
    rows = []
    for ev in events:
        c = ev.customers
        true_each = (
            ref.agent.meter_kw[ev.start : ev.end, c] - agent.meter_kw[ev.start : ev.end, c]
        ).mean(0)
        after = slice(ev.end, min(ev.end + rb, scenario.n_steps))
        rows.append(
            {
                "id": ev.id,
                "reason": ev.reason,
                "start": str(scenario.index[scenario.start_step + ev.start]),
                "duration_h": (ev.end - ev.start) * dt_h,
                "programs": {
                    p.name: int((ev.programs == j).sum())
                    for j, p in enumerate(programs)
                    if (ev.programs == j).any()
                },
                "target_kw": ev.target_kw,
                "predicted_kw": ev.predicted_kw,
                "committed_kw": ev.results.get("committed_kw", float("nan")),
                "top_up_calls": ev.results.get("top_up_calls", 0),
                "released": ev.results.get("released", 0),
                "delivered_kw": float(true_each.sum()),
                "delivered_feeder_kw": float(
                    (r0.feeder_kw[ev.start : ev.end] - r1.feeder_kw[ev.start : ev.end]).mean()
                ),
                "delivered_mv_10of10_kw": float(np.nansum(ev.results["delivered_mv_kw_each"])),
                "delivered_mv_regression_kw": float(
                    np.nansum(ev.results["delivered_regression_kw_each"])
                ),
                "predicted_rebound_kw": ev.predicted_rebound_kw,
                "rebound_kw": float((r1.feeder_kw[after] - r0.feeder_kw[after]).mean())
                if rb
                else 0.0,
                "error_vs_target_pct": float(100 * (true_each.sum() / ev.target_kw - 1)),
                "customers_called": len(c),
                "customers_responding": int(ev.responding.sum()),
                "planned_cost_eur": ev.planned_cost_eur,
                "incentive_paid_eur": float(ev.results["incentive_paid_eur_each"].sum()),
                "_true_each": true_each,
            }
        )
    per_program = {}
    for j, p in enumerate(programs):
        calls = sum(int((ev.programs == j).sum()) for ev in events)
        if not calls:
            continue
        resp = sum(int(ev.responding[ev.programs == j].sum()) for ev in events)
        delivered = sum(
            float(r["_true_each"][ev.programs == j].sum())
            for r, ev in zip(rows, events, strict=True)
        )
        predicted = sum(float(ev.predicted_kw_each[ev.programs == j].sum()) for ev in events)
        paid = sum(
            float(ev.results["incentive_paid_eur_each"][ev.programs == j].sum()) for ev in events
        )
        per_program[p.name] = {
            "kind": p.kind,
            "enrolled": int(agent.enrolled[:, j].sum()),
            "events": sum(1 for ev in events if (ev.programs == j).any()),
            "customer_calls": calls,
            "opt_out_rate": 1 - resp / calls,
            "predicted_kw_sum": predicted,
            "delivered_kw_sum": delivered,
            "incentive_paid_eur": paid,
        }
    for r in rows:
        r.pop("_true_each")

    m0, m1 = (
        _window_metrics(r0.feeder_kw, scenario, lo, hi),
        _window_metrics(r1.feeder_kw, scenario, lo, hi),
    )
    paid = sum(r["incentive_paid_eur"] for r in rows)
    delivered = np.array([r["delivered_kw"] for r in rows])
    targets = np.array([r["target_kw"] for r in rows])
    predicted = np.array([r["predicted_kw"] for r in rows])
    comfort0 = float(r0.comfort_violation_degree_h[lo:hi].sum())
    comfort1 = float(r1.comfort_violation_degree_h[lo:hi].sum())
    calls = sum(len(ev.customers) for ev in events)
    responding = sum(int(ev.responding.sum()) for ev in events)

    # Baselines are judged on the whole feeder's customers (an aggregate of >= 50 meters on
    # the bundled feeders), not only on those enrolled.
    everyone = np.arange(agent.book.n)
    slots = sorted({(ev.start % spd, ev.start % spd + (ev.end - ev.start)) for ev in events}) or [
        (17 * spd // 24, 21 * spd // 24)
    ]
    slots = [(s, e) for s, e in slots if e <= spd] or [(17 * spd // 24, 21 * spd // 24)]
    acc = baseline_accuracy(
        agent.meter_kw,
        agent.excluded,
        agent.weekend,
        agent.temp_c,
        spd,
        slots,
        everyone,
        first_step=3 * spd,
    )
    k0, k1 = compute_kpis(r0, scenario), compute_kpis(r1, scenario)
    total0 = m0["energy_cost_eur"] + m0["demand_charge_eur"]
    total1 = m1["energy_cost_eur"] + m1["demand_charge_eur"] + paid
    return {
        "scenario": scenario.config.name,
        "base_controller": base,
        "dr_days": (hi - lo) / spd,
        "warmup_days": warmup_days,
        "dr_window_start": str(scenario.index[scenario.start_step + lo]),
        "customers": int(agent.book.n),
        "segments": np.bincount(agent.book.segment).tolist(),
        "programs": per_program,
        "shed_by_end_use_kw": _shed_by_end_use(ref.agent, agent, events),
        "events": rows,
        "overall": {
            "events_called": len(rows),
            "target_kw_mean": float(targets.mean()) if len(rows) else 0.0,
            "predicted_kw_mean": float(predicted.mean()) if len(rows) else 0.0,
            "delivered_kw_mean": float(delivered.mean()) if len(rows) else 0.0,
            "delivered_vs_target_pct": float(100 * (delivered.sum() / targets.sum() - 1))
            if len(rows)
            else 0.0,
            "delivered_vs_predicted_pct": float(100 * (delivered.sum() / predicted.sum() - 1))
            if len(rows)
            else 0.0,
            "event_abs_error_vs_target_pct": float(100 * np.mean(np.abs(delivered / targets - 1)))
            if len(rows)
            else 0.0,
            "incentive_cost_eur": paid,
            "cost_per_kw_delivered_eur": float(paid / delivered.sum())
            if delivered.sum() > 0
            else None,
            "peak_import_kw_no_dr": m0["peak_import_kw"],
            "peak_import_kw_dr": m1["peak_import_kw"],
            "peak_reduction_kw": m0["peak_import_kw"] - m1["peak_import_kw"],
            "energy_cost_eur_no_dr": m0["energy_cost_eur"],
            "energy_cost_eur_dr": m1["energy_cost_eur"],
            "total_cost_eur_no_dr": total0,
            "total_cost_eur_dr": total1,
            "rebound_kw_mean": float(np.mean([r["rebound_kw"] for r in rows])) if rows else 0.0,
            "comfort_degree_h_no_dr": comfort0,
            "comfort_degree_h_dr": comfort1,
            "opt_out_rate": 1 - responding / calls if calls else 0.0,
            "unmet_ev_kwh_no_dr": k0["unmet_ev_kwh"],
            "unmet_ev_kwh_dr": k1["unmet_ev_kwh"],
            "unmet_deferrable_kwh_no_dr": k0["unmet_deferrable_kwh"],
            "unmet_deferrable_kwh_dr": k1["unmet_deferrable_kwh"],
        },
        "baseline_accuracy": {
            k: {**v.as_dict(), "customers_aggregated": len(everyone)} for k, v in acc.items()
        },
    }


def _shed_by_end_use(ref_agent, agent, events) -> dict:
    """Sum over events of what the agent expected the opted-in customers to shed per end use
    when it called them, against the twin's true shed (device power without DR minus with)."""
    committed = np.zeros(len(END_USES))
    true = np.zeros(len(END_USES))
    for ev in events:
        c = ev.customers
        flex = agent._calibrated_flex_kw(ev.planned_at, ev.start, ev.end)[c]
        committed += (flex * agent.end_use_mask[ev.programs])[ev.responding].sum(axis=0)
        window = slice(ev.start, ev.end)
        true += (ref_agent.device_kw[window][:, c] - agent.device_kw[window][:, c]).mean(0).sum(0)
    return {
        eu: {"expected_kw": float(committed[k]), "true_kw": float(true[k])}
        for k, eu in enumerate(END_USES)
    }


def feeder_frame(run: DRRun) -> pd.DataFrame:
    """Feeder-head import with and without DR over the DR days (for plots)."""
    s = run.scenario
    lo = run.summary["warmup_days"] * s.steps_per_day
    idx = s.index[s.start_step + lo : s.end_step]
    return pd.DataFrame(
        {"no_dr_kw": run.no_dr.feeder_kw[lo:], "dr_kw": run.with_dr.feeder_kw[lo:]}, index=idx
    )
