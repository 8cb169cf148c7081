"""FLISR switching plans as operator-console approval requests, with their justification.

A restoration plan becomes a ``ProposedAction`` of kind ``switching``: one entry per feeder
load the plan re-energises (proposed kW = its demand, no action = 0 kW, it stays off). Whether a
human must approve it is the policy's call (``ApprovalPolicy.switching_kw``); the justification
says where the fault was located and from which readings, which switches isolate it, which
operations restore whom, what the AC power flow of the plan shows, and what not acting means
(customers off until the crew has switched manually, or until the repair).
"""

from __future__ import annotations

import numpy as np

from gridsync.hitl.approvals import ApprovalManager, ApprovalRequest, ProposedAction
from gridsync.hitl.justification import Justification, Outcome
from gridsync.resilience.feeder import SwitchableFeeder
from gridsync.resilience.flisr import (
    Isolation,
    OperatingPoint,
    RestorationPlan,
    isolating_switches,
)


def justify(feeder: SwitchableFeeder, plan: RestorationPlan, located: list[int],
            isolation: Isolation, op: OperatingPoint, readings_tripped: int,
            wait_h: float, lost_voltage: str = "") -> Justification:
    """Plain-language reasons for a switching plan, every number taken from the plan."""
    names = feeder.line_name
    customers = int(feeder.customers[plan.restored_loads].sum())
    where = ", ".join(names[e] for e in located)
    bounding = [names[e] for e in isolating_switches(feeder, isolation)]
    iso_text = f"opening the remote switches of {', '.join(bounding)}" if bounding else "the breaker"
    closes = [n for n, a in plan.switch_operations if a == "close"]
    opens = [n for n, a in plan.switch_operations if a == "open"]
    live = plan.energised & np.isfinite(plan.ac.vm_pu) & np.asarray(feeder.net.bus.vn_kv < 100)
    vmin = float(np.nanmin(plan.ac.vm_pu[live])) if live.any() else float("nan")
    max_line = float(np.nanmax(plan.ac.line_loading_percent)) if len(plan.ac.line_loading_percent) else 0.0
    drivers = [
        f"{readings_tripped} fault-current indicators saw fault current; the readings point to {where}",
        *([lost_voltage] if lost_voltage else []),
        f"the fault is isolated by {iso_text}",
        (f"close {', '.join(closes)}" if closes else "close nothing")
        + (f" and open {', '.join(opens)}" if opens else "")
        + f" to restore {plan.restored_kw:.0f} kW to {customers} customers",
        f"AC power flow of the plan: lowest voltage {vmin:.3f} p.u. (limit "
        f"{feeder.study.voltage_min_pu:.2f}), highest line loading {max_line:.0f} % (limit "
        f"{feeder.study.loading_max_percent:.0f} %), every energised part radial with one source",
    ]
    if plan.cuts:
        drivers.append(f"{len(plan.cuts)} AC violation(s) of earlier MILP plans were cut: {plan.cuts[0]}")
    drivers += _left_out(feeder, plan, located, isolation, op)
    drivers += _islanding(feeder, plan, isolation)
    return Justification(
        summary=f"Fault on {where}: restore {customers} customers ({plan.restored_kw:.0f} kW) by switching",
        drivers=drivers,
        acting=Outcome(label="switch now", cost_eur=float("nan"),
                       risk="no limit violated in the AC check of the switched network",
                       metrics={"restored_kw": plan.restored_kw, "customers": float(customers)}),
        not_acting=Outcome(label="wait for the crew", cost_eur=float("nan"),
                           risk=f"{customers} customers stay off for about {wait_h:.1f} h more",
                           metrics={"energy_not_supplied_kwh": plan.restored_kw * wait_h}),
        source="gridsync.resilience.flisr",
    )


def _left_out(feeder: SwitchableFeeder, plan: RestorationPlan, located: list[int],
              isolation: Isolation, op: OperatingPoint) -> list[str]:
    """Who stays off after the plan: the faulted section until the repair, and anyone else."""
    names = feeder.net.bus.name.to_numpy()
    off = ~plan.energised[feeder.load_bus]
    in_zone = np.isin(feeder.load_bus, isolation.buses)
    kw = op.load_p_mw[feeder.load_index] * 1000.0
    repair_h = float(feeder.repair_time_h[located].max())
    out = []
    if isolation.buses:
        out.append(f"faulted section {', '.join(names[b] for b in isolation.buses)}: "
                   f"{int(feeder.customers[in_zone].sum())} customers ({kw[in_zone].sum():.0f} kW) "
                   f"stay off until the repair (about {repair_h:.0f} h)")
    else:
        out.append(f"the faulted section is {', '.join(feeder.line_name[e] for e in located)} "
                   "itself (remote switches at both ends): no customer is inside it")
    rest = off & ~in_zone
    if rest.any():
        out.append(f"{int(feeder.customers[rest].sum())} more customers ({kw[rest].sum():.0f} kW) "
                   "outside the faulted section cannot be restored within the limits and wait "
                   "for the crew")
    return out


def _islanding(feeder: SwitchableFeeder, plan: RestorationPlan, isolation: Isolation) -> list[str]:
    """Why each microgrid section is or is not islanded."""
    out = []
    for mg in feeder.study.microgrids:
        where = f"{mg.name} (buses {', '.join(map(str, mg.buses))}, {mg.battery})"
        if plan.energised[mg.buses].all():
            out.append(f"no islanding for {where}: the grid supplies it after switching")
        elif np.isin(mg.buses, isolation.buses).any():
            out.append(f"no islanding for {where}: the fault is inside it, so it stays "
                       "de-energised until the crew has cut the faulted line out")
        else:
            out.append(f"{where} stays off after switching: this plan does not island it "
                       "(islanding is a separate decision)")
    return out


def switching_action(feeder: SwitchableFeeder, plan: RestorationPlan, op: OperatingPoint,
                     justification: Justification, step: int = 0) -> ProposedAction:
    restored = np.flatnonzero(plan.restored_loads)
    kw = op.load_p_mw[feeder.load_index[restored]] * 1000.0
    labels = [str(feeder.net.load.name.iloc[feeder.load_index[i]]) for i in restored]
    return ProposedAction(
        kind="switching",
        title=justification.summary,
        asset_kind="feeder",
        asset_index=restored,
        asset_labels=labels,
        proposed_kw=kw,
        no_action_kw=np.zeros(len(restored)),
        lower_kw=kw,  # a switching plan is all or nothing: an edit may not change it
        upper_kw=kw,
        justification=justification,
        step=step,
    )


def submit(manager: ApprovalManager, action: ProposedAction) -> ApprovalRequest | None:
    """Raise the request when the policy asks for approval; ``None`` means execute directly."""
    if manager.policy.needs_approval(action.kind, action.magnitude_kw):
        return manager.raise_request(action)
    return None
