"""The grid guard: turns the twin's numbers into proposed remedial actions with justifications.

* Over-voltage from PV: if the power flow of this step's setpoints puts a bus above the
  voltage limit, curtail the PV systems on the high-voltage buses by a common fraction of
  their available power, found by bisection on the AC power flow, so the highest voltage ends
  just under the limit.
* Feeder import above ``policy.feeder_import_limit_kw``: pause EV charging, cars with the most
  slack (time to departure minus time needed at full power) first, until the import fits.
* Customers who asked to be asked: any controller setpoint that differs from what their asset
  would do uncoordinated becomes a request.

Each proposal carries the no-action alternative (the controller's setpoints without the
remedy, or the uncoordinated behaviour) and the cost/risk of both, computed with the same
power flow and tariff.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from gridsync.dispatch.rules import ev_remaining_kwh
from gridsync.hitl.approvals import SETPOINT_FIELD, ProposedAction
from gridsync.hitl.assets import KIND_LABEL, asset_bounds, asset_labels
from gridsync.hitl.justification import Justification, Outcome, binding_from_plan, eur
from gridsync.hitl.policy import ApprovalPolicy
from gridsync.sim.controller import Observation, Setpoints
from gridsync.sim.forecasts import NaiveForecaster
from gridsync.sim.twin import SteppedTwin, bus_sum

VOLTAGE_MARGIN_PU = 0.002
CANDIDATE_BAND_PU = 0.01


@dataclass
class GuardContext:
    """Everything the guard reads for one step."""

    twin: SteppedTwin
    obs: Observation
    setpoints: Setpoints
    natural: Setpoints
    policy: ApprovalPolicy
    plan: object | None = None
    controller_name: str = "controller"


def _step_cost_eur(feeder_kw: float, obs: Observation) -> float:
    imp = max(feeder_kw, 0.0) * obs.import_price_eur_per_kwh
    exp = max(-feeder_kw, 0.0) * obs.export_price_eur_per_kwh
    return (imp - exp) * obs.dt_h


def _when(obs: Observation) -> str:
    return obs.time.strftime("%a %H:%M")


def _forecast_overvoltage(ctx: GuardContext, p_bus_kw: np.ndarray, steps: int) -> tuple[int, float]:
    """Over the next ``steps`` steps (seasonal-naive forecast of load and PV, today's flexible
    load held): how many steps have a bus above the limit, and the highest voltage."""
    sc, obs = ctx.twin.scenario, ctx.obs
    fc = NaiveForecaster().forecast(sc, obs.step + 1, steps)
    if fc.horizon == 0:
        return 0, float("nan")
    pv = sc.fleet.pv
    pv_now = bus_sum(pv.bus, sc.pv_available_kw(obs.step), sc.feeder.n_bus)
    flexible = p_bus_kw - sc.base_load_kw[obs.step] + pv_now
    weights = np.zeros((fc.pv_per_kwp.shape[-1], sc.feeder.n_bus))
    np.add.at(weights, (sc.pv_orientation, pv.bus), pv.peak_kw)
    p = fc.base_load_kw - fc.pv_per_kwp @ weights + flexible
    res = ctx.twin.pf.solve_batch(p, fc.base_load_kvar)
    vmax = np.nanmax(res.vm_pu, axis=1)
    limit = sc.config.limits.voltage_max_pu
    return int((vmax > limit).sum()), float(vmax.max())


def propose_curtailment(ctx: GuardContext) -> ProposedAction | None:
    """PV curtailment that brings this step's highest voltage under the limit, or None."""
    twin, obs, sp = ctx.twin, ctx.obs, ctx.setpoints
    sc = twin.scenario
    limit = sc.config.limits.voltage_max_pu
    p_bus = twin.bus_injection_kw(obs, sp)
    before = twin.solve(p_bus, obs.step)
    if not np.nanmax(before.vm_pu) > limit:
        return None
    pv = sc.fleet.pv
    curtail_now = np.clip(sp.pv_curtail_kw, 0.0, sc.pv_available_kw(obs.step))
    spare = sc.pv_available_kw(obs.step) - curtail_now
    cand = np.flatnonzero((before.vm_pu[pv.bus] > limit - CANDIDATE_BAND_PU) & (spare > 0.05))
    if len(cand) == 0:
        return None
    n_bus = sc.feeder.n_bus

    def after(frac: float):
        extra = bus_sum(pv.bus[cand], frac * spare[cand], n_bus)
        return twin.solve(p_bus + extra, obs.step)

    target = limit - VOLTAGE_MARGIN_PU
    lo, hi = 0.0, 1.0
    if np.nanmax(after(1.0).vm_pu) <= target:
        for _ in range(12):
            mid = 0.5 * (lo + hi)
            if np.nanmax(after(mid).vm_pu) <= target:
                hi = mid
            else:
                lo = mid
    frac = hi
    res = after(frac)
    proposed = curtail_now[cand] + frac * spare[cand]
    lower, upper = asset_bounds(sc.fleet, "pv")
    upper = np.minimum(upper[cand], sc.pv_available_kw(obs.step)[cand])

    names = sc.feeder.bus_names
    worst = int(np.nanargmax(before.vm_pu))
    n_high = int((before.vm_pu > limit).sum())
    hold = ctx.policy.hold_steps
    hold_h = hold * obs.dt_h
    n_fc, v_fc = _forecast_overvoltage(ctx, p_bus, hold)
    cost_act = (_step_cost_eur(res.p_slack_kw, obs) - _step_cost_eur(before.p_slack_kw, obs)) * hold
    curtailed_kw = float((proposed - curtail_now[cand]).sum())
    vmax_after = float(np.nanmax(res.vm_pu))
    still = int((res.vm_pu > limit).sum())
    buses = len(np.unique(pv.bus[cand]))
    summary = (
        f"Curtail {curtailed_kw:.1f} kW of rooftop PV ({len(cand)} systems on {buses} buses, "
        f"{100 * frac:.0f} % of their output) for {hold_h:g} h to bring the highest voltage from "
        f"{np.nanmax(before.vm_pu):.3f} to {vmax_after:.3f} p.u. (limit {limit:.2f} p.u.)."
    )
    drivers = [
        f"Twin power flow at {_when(obs)}: {n_high} buses above {limit:.2f} p.u., highest "
        f"{before.vm_pu[worst]:.3f} p.u. at {names[worst]}; PV output "
        f"{float(sc.pv_available_kw(obs.step).sum() - curtail_now.sum()):.0f} kW against "
        f"{float(sc.base_load_kw[obs.step].sum()):.0f} kW of household load; the feeder exports "
        f"{max(-before.p_slack_kw, 0.0):.0f} kW.",
        f"Forecast (same time yesterday, flexible load held) for the next {hold_h:g} h: a bus above "
        f"{limit:.2f} p.u. in {n_fc} of {hold} steps, highest {v_fc:.3f} p.u.",
    ]
    if frac >= 1.0 and vmax_after > target:
        drivers.append(
            f"Even curtailing all of these systems leaves {vmax_after:.3f} p.u.: the rest needs "
            "reactive power or storage."
        )
    just = Justification(
        summary=summary,
        drivers=drivers,
        binding=binding_from_plan(ctx.plan),
        acting=Outcome(
            label=f"{curtailed_kw:.1f} kW of PV spilled",
            cost_eur=cost_act,
            risk=(
                f"{still} buses above the limit afterwards; lost PV revenue at "
                f"{obs.export_price_eur_per_kwh:.2f} EUR/kWh export price"
            ),
            metrics={"max_voltage_pu": vmax_after, "buses_above": still},
        ),
        not_acting=Outcome(
            label="PV keeps producing",
            cost_eur=0.0,
            risk=(
                f"{n_high} buses stay above {limit:.2f} p.u. (highest "
                f"{np.nanmax(before.vm_pu):.3f}); inverters may disconnect on over-voltage "
                "and customers' equipment runs outside its rated band"
            ),
            metrics={"max_voltage_pu": float(np.nanmax(before.vm_pu)), "buses_above": n_high},
        ),
        source="grid guard: AC power flow on the twin",
    )
    return ProposedAction(
        kind="curtailment",
        title=f"Curtail {curtailed_kw:.0f} kW PV for over-voltage at {names[worst]}",
        asset_kind="pv",
        asset_index=cand,
        asset_labels=asset_labels(sc.fleet, names, "pv", cand),
        proposed_kw=proposed,
        no_action_kw=curtail_now[cand],
        lower_kw=lower[cand],
        upper_kw=upper,
        justification=just,
        step=obs.step,
        time_label=_when(obs),
    )


def propose_load_shedding(ctx: GuardContext) -> ProposedAction | None:
    """Pause EV charging while the feeder import exceeds the policy's limit, or None."""
    limit_kw = ctx.policy.feeder_import_limit_kw
    if limit_kw is None:
        return None
    twin, obs, sp = ctx.twin, ctx.obs, ctx.setpoints
    sc = twin.scenario
    ev = sc.fleet.ev
    p_bus = twin.bus_injection_kw(obs, sp)
    before = twin.solve(p_bus, obs.step)
    excess = float(before.p_slack_kw) - limit_kw
    if excess <= 0:
        return None
    remaining, hours_left = ev_remaining_kwh(ev, obs)
    charging = np.flatnonzero((obs.ev_active_session >= 0) & (sp.ev_kw > 0.05) & (remaining > 0))
    if len(charging) == 0:
        return None
    rate = np.minimum(sp.ev_kw[charging], ev.max_power_kw[charging])
    slack_h = hours_left[charging] - remaining[charging] / (
        ev.max_power_kw[charging] * ev.efficiency[charging]
    )
    order = np.argsort(-slack_h)
    need = excess * 1.05
    take = order[: int(np.searchsorted(np.cumsum(rate[order]), need)) + 1]
    chosen = charging[take]
    proposed = np.zeros(len(chosen))
    sp_after = replace(sp, ev_kw=np.array(sp.ev_kw, dtype=float))
    sp_after.ev_kw[chosen] = 0.0
    res = twin.solve(twin.bus_injection_kw(obs, sp_after), obs.step)
    hold = ctx.policy.hold_steps
    hold_h = hold * obs.dt_h
    shed_kw = float(rate[take].sum())
    at_risk = int((slack_h[take] < hold_h).sum())
    trafo = sc.powerflow().branch_kind == "trafo"
    load_before = (
        float(np.nanmax(before.branch_loading_pct[trafo])) if trafo.any() else float("nan")
    )
    load_after = float(np.nanmax(res.branch_loading_pct[trafo])) if trafo.any() else float("nan")
    demand_rate = sc.tariff.demand_charge_eur_per_kw_month
    names = sc.feeder.bus_names
    just = Justification(
        summary=(
            f"Pause {len(chosen)} EV chargers ({shed_kw:.1f} kW) for {hold_h:g} h to bring the "
            f"feeder import from {before.p_slack_kw:.0f} kW to {res.p_slack_kw:.0f} kW "
            f"(limit {limit_kw:.0f} kW)."
        ),
        drivers=[
            f"Twin power flow at {_when(obs)}: import {before.p_slack_kw:.0f} kW, "
            f"{excess:.0f} kW over the limit; transformer at {load_before:.0f} % loading.",
            f"The cars chosen have the most slack: {np.min(slack_h[take]):.1f} h or more "
            "between their deadline and the time they need at full power.",
        ],
        binding=binding_from_plan(ctx.plan),
        acting=Outcome(
            label=f"{shed_kw * hold_h:.1f} kWh of EV charging postponed",
            cost_eur=0.0,
            risk=(
                f"{at_risk} of {len(chosen)} cars have less than {hold_h:g} h slack and may leave "
                f"short of their target; transformer at {load_after:.0f} %"
            ),
            metrics={"feeder_kw": float(res.p_slack_kw), "transformer_loading_pct": load_after},
        ),
        not_acting=Outcome(
            label=f"import stays at {before.p_slack_kw:.0f} kW",
            cost_eur=excess * demand_rate,
            risk=(
                f"transformer at {load_before:.0f} %; if this becomes the month's peak the demand "
                f"charge rises by {eur(excess * demand_rate)} ({demand_rate:.2f} EUR/kW-month)"
            ),
            metrics={"feeder_kw": float(before.p_slack_kw), "transformer_loading_pct": load_before},
        ),
        source="grid guard: AC power flow on the twin",
    )
    lower, upper = asset_bounds(sc.fleet, "ev")
    return ProposedAction(
        kind="load_shedding",
        title=f"Pause {len(chosen)} EV chargers: feeder import {before.p_slack_kw:.0f} kW > {limit_kw:.0f} kW",
        asset_kind="ev",
        asset_index=chosen,
        asset_labels=asset_labels(sc.fleet, names, "ev", chosen),
        proposed_kw=proposed,
        no_action_kw=np.asarray(sp.ev_kw, dtype=float)[chosen],
        lower_kw=lower[chosen],
        upper_kw=upper[chosen],
        justification=just,
        step=obs.step,
        time_label=_when(obs),
    )


def propose_consent(ctx: GuardContext, tol_kw: float = 0.1) -> list[ProposedAction]:
    """One request per asset kind where the controller moves a consenting customer's asset."""
    sc, obs = ctx.twin.scenario, ctx.obs
    names = sc.feeder.bus_names
    ask = set(ctx.policy.ask_customers)
    if not ask:
        return []
    unknown = ask - set(map(str, names))
    if unknown:
        msg = f"policy.ask_customers: unknown bus names {sorted(unknown)}"
        raise ValueError(msg)
    out = []
    for kind, attr in SETPOINT_FIELD.items():
        fleet = getattr(sc.fleet, kind)
        if len(fleet) == 0:
            continue
        mine = np.isin(names[fleet.bus], list(ask))
        want = np.asarray(getattr(ctx.setpoints, attr), dtype=float)
        natural = np.asarray(getattr(ctx.natural, attr), dtype=float)
        idx = np.flatnonzero(mine & (np.abs(want - natural) > tol_kw))
        if len(idx) == 0:
            continue
        lower, upper = asset_bounds(sc.fleet, kind)
        delta = float((want[idx] - natural[idx]).sum())
        label = KIND_LABEL[kind]
        just = Justification(
            summary=(
                f"The {ctx.controller_name} controller wants to move {len(idx)} {label}(s) of "
                f"customers who asked to be asked by {delta:+.1f} kW in total."
            ),
            drivers=[
                f"Import price now {obs.import_price_eur_per_kwh:.2f} EUR/kWh, export "
                f"{obs.export_price_eur_per_kwh:.2f} EUR/kWh at {_when(obs)}.",
            ],
            binding=binding_from_plan(ctx.plan),
            acting=Outcome(
                label="controller setpoints",
                cost_eur=delta * obs.import_price_eur_per_kwh * obs.dt_h * ctx.policy.hold_steps,
                risk="the customer's device follows the controller (energy bought at this price)",
            ),
            not_acting=Outcome(
                label="device runs as the customer set it",
                cost_eur=0.0,
                risk="no coordination for these assets: the flexibility is not used",
            ),
            source=f"{ctx.controller_name} controller",
        )
        out.append(
            ProposedAction(
                kind="customer_consent",
                title=f"{label} of consenting customers: {delta:+.1f} kW",
                asset_kind=kind,
                asset_index=idx,
                asset_labels=asset_labels(sc.fleet, names, kind, idx),
                proposed_kw=want[idx],
                no_action_kw=natural[idx],
                lower_kw=lower[idx],
                upper_kw=upper[idx],
                justification=just,
                step=obs.step,
                time_label=_when(obs),
            )
        )
    return out
