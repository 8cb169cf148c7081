"""Gates for actions other agents already decided: the controller's own plan and the shield.

* ``propose_plan_curtailment``: PV curtailment in the controller's setpoints (e.g. the MPC's
  plan) becomes a request carrying the plan's binding constraints and shadow prices.
* ``shield_action``: the safety shield's voltage/loading corrections on one asset kind become a
  request to confirm them (the shield still checks every step whatever the answer).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from gridsync.hitl.approvals import SETPOINT_FIELD, ProposedAction
from gridsync.hitl.assets import (
    KIND_LABEL,
    SHIELD_REASON,
    asset_bounds,
    asset_labels,
    describe_change,
)
from gridsync.hitl.guard import GuardContext, _step_cost_eur, _when
from gridsync.hitl.justification import Justification, Outcome, binding_from_plan, eur
from gridsync.sim.controller import Setpoints


def propose_plan_curtailment(ctx: GuardContext) -> ProposedAction | None:
    """The controller's own PV curtailment (e.g. in the MPC's plan) as an action to gate:
    no action means the PV keeps producing."""
    twin, obs, sp = ctx.twin, ctx.obs, ctx.setpoints
    sc = twin.scenario
    curtail = np.clip(np.asarray(sp.pv_curtail_kw, dtype=float), 0.0, sc.pv_available_kw(obs.step))
    idx = np.flatnonzero(curtail > 0.05)
    if len(idx) == 0:
        return None
    limit = sc.config.limits.voltage_max_pu
    with_plan = twin.solve(twin.bus_injection_kw(obs, sp), obs.step)
    without = replace(sp, pv_curtail_kw=curtail.copy())
    without.pv_curtail_kw[idx] = 0.0
    without_res = twin.solve(twin.bus_injection_kw(obs, without), obs.step)
    hold = ctx.policy.hold_steps
    cost = (
        _step_cost_eur(with_plan.p_slack_kw, obs) - _step_cost_eur(without_res.p_slack_kw, obs)
    ) * hold
    kw = float(curtail[idx].sum())
    plan = ctx.plan
    drivers = [
        f"Twin power flow at {_when(obs)}: highest voltage {np.nanmax(without_res.vm_pu):.3f} p.u. "
        f"without the curtailment, {np.nanmax(with_plan.vm_pu):.3f} p.u. with it "
        f"(limit {limit:.2f} p.u.).",
    ]
    if plan is not None:
        status = getattr(plan, "status", "")
        reason = getattr(plan, "reason", "")
        drivers.append(
            f"The {ctx.controller_name} plan is {status or 'in force'}"
            + (f" ({reason})" if reason else "")
            + f"; its objective is {eur(float(getattr(plan, 'objective_eur', float('nan'))))} "
            "over the horizon on the seasonal-naive forecast."
        )
    lower, upper = asset_bounds(sc.fleet, "pv")
    names = sc.feeder.bus_names
    above_with = int((with_plan.vm_pu > limit).sum())
    above_without = int((without_res.vm_pu > limit).sum())
    just = Justification(
        summary=(
            f"The {ctx.controller_name} controller curtails {kw:.1f} kW of PV on {len(idx)} "
            f"systems at {_when(obs)}."
        ),
        drivers=drivers,
        binding=binding_from_plan(plan),
        acting=Outcome(
            label=f"{kw:.1f} kW of PV spilled as planned",
            cost_eur=cost,
            risk=f"{above_with} buses above {limit:.2f} p.u.",
            metrics={
                "max_voltage_pu": float(np.nanmax(with_plan.vm_pu)),
                "buses_above": above_with,
            },
        ),
        not_acting=Outcome(
            label="PV keeps producing",
            cost_eur=0.0,
            risk=f"{above_without} buses above {limit:.2f} p.u.; the plan's other setpoints stay",
            metrics={
                "max_voltage_pu": float(np.nanmax(without_res.vm_pu)),
                "buses_above": above_without,
            },
        ),
        source=f"{ctx.controller_name} plan",
    )
    return ProposedAction(
        kind="curtailment",
        title=f"{ctx.controller_name} plan curtails {kw:.0f} kW PV",
        asset_kind="pv",
        asset_index=idx,
        asset_labels=asset_labels(sc.fleet, names, "pv", idx),
        proposed_kw=curtail[idx],
        no_action_kw=np.zeros(len(idx)),
        lower_kw=lower[idx],
        upper_kw=np.minimum(upper[idx], sc.pv_available_kw(obs.step)[idx]),
        justification=just,
        step=obs.step,
        time_label=_when(obs),
    )


GRID_REASONS = {"voltage_high", "voltage_low", "overload"}
FIELD_KIND = {v: k for k, v in SETPOINT_FIELD.items()}


def shield_action(ctx: GuardContext, safe: Setpoints, decision, kind: str) -> ProposedAction | None:
    """The safety shield's grid corrections (voltage, loading) on one asset kind as a request
    to confirm: approving keeps the shield's setpoints, the no-action alternative idles the
    assets (0 kW; for PV: no curtailment). Clips to an asset's own rating are routine (the
    physics would clip too) and are not asked about. The shield checks every step whatever
    the answer, so neither choice can bypass it."""
    attr = SETPOINT_FIELD[kind]
    changes = [c for c in decision.changes if c.kind == attr and c.reason in GRID_REASONS]
    if not changes:
        return None
    twin, obs = ctx.twin, ctx.obs
    sc = twin.scenario
    lim = sc.config.limits
    idx = np.array(sorted({c.asset for c in changes}), dtype=np.int64)
    applied = np.asarray(getattr(safe, attr), dtype=float)[idx]
    idle = replace(safe, **{attr: np.array(getattr(safe, attr), dtype=float)})
    getattr(idle, attr)[idx] = 0.0
    res_safe = twin.solve(twin.bus_injection_kw(obs, safe), obs.step)
    res_idle = twin.solve(twin.bus_injection_kw(obs, idle), obs.step)
    hold = ctx.policy.hold_steps
    moved_kw = float(sum(abs(c.applied_kw - c.requested_kw) for c in changes))
    reasons = sorted({c.reason for c in changes})
    label = KIND_LABEL[kind]
    grid = [
        f"Shield check at {_when(obs)}: the controller's setpoints gave a highest voltage of "
        f"{decision.vm_max_before_pu:.3f} p.u., lowest {decision.vm_min_before_pu:.3f} p.u., "
        f"loading up to {decision.loading_max_before_pct:.0f} % (limits "
        f"{lim.voltage_min_pu:.2f}-{lim.voltage_max_pu:.2f} p.u., {lim.loading_max_pct:.0f} %); "
        f"after correction {decision.vm_max_pu:.3f} / {decision.vm_min_pu:.3f} p.u., "
        f"{decision.loading_max_pct:.0f} %.",
    ]
    shown = sorted(changes, key=lambda c: -abs(c.applied_kw - c.requested_kw))[:3]
    names = sc.feeder.bus_names
    grid.append(
        "Largest changes: " + "; ".join(describe_change(c, sc.fleet, names) for c in shown) + "."
    )
    lower, upper = asset_bounds(sc.fleet, kind)
    just = Justification(
        summary=(
            f"The safety shield moved {len(idx)} {label} setpoints by {moved_kw:.1f} kW in total "
            f"({'; '.join(SHIELD_REASON.get(r, r) for r in reasons)}); confirm or idle these "
            "assets."
        ),
        drivers=grid,
        binding=binding_from_plan(ctx.plan),
        acting=Outcome(
            label="keep the shield's setpoints",
            cost_eur=(
                _step_cost_eur(res_safe.p_slack_kw, obs) - _step_cost_eur(res_idle.p_slack_kw, obs)
            )
            * hold,
            risk=(
                f"highest voltage {np.nanmax(res_safe.vm_pu):.3f} p.u., loading up to "
                f"{np.nanmax(res_safe.branch_loading_pct):.0f} %"
            ),
            metrics={"max_voltage_pu": float(np.nanmax(res_safe.vm_pu))},
        ),
        not_acting=Outcome(
            label="PV produces fully (no curtailment)"
            if kind == "pv"
            else "these assets idle (0 kW)",
            cost_eur=0.0,
            risk=(
                f"highest voltage {np.nanmax(res_idle.vm_pu):.3f} p.u. before the shield's next "
                "check; the controller cannot use these assets meanwhile"
            ),
            metrics={"max_voltage_pu": float(np.nanmax(res_idle.vm_pu))},
        ),
        source="safety shield (gridsync.safety)",
    )
    return ProposedAction(
        kind="shield_clip",
        title=f"Shield moved {len(idx)} {label} setpoints ({moved_kw:.0f} kW): {reasons[0].replace('_', ' ')}",
        asset_kind=kind,
        asset_index=idx,
        asset_labels=asset_labels(sc.fleet, names, kind, idx),
        proposed_kw=applied,
        no_action_kw=np.zeros(len(idx)),
        lower_kw=lower[idx],
        upper_kw=upper[idx],
        justification=just,
        step=obs.step,
        time_label=_when(obs),
    )
