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
from gridsync.resilience.flisr import Isolation, OperatingPoint, RestorationPlan


def justify(feeder: SwitchableFeeder, plan: RestorationPlan, located: list[int],
            isolation: Isolation, op: OperatingPoint, readings_tripped: int,
            wait_h: float) -> Justification:
    """Plain-language reasons for a switching plan, every number taken from the plan."""
    names = feeder.line_name
    customers = int(feeder.customers[plan.restored_loads].sum())
    where = ", ".join(names[e] for e in located)
    touches = np.isin(feeder.line_from, isolation.buses) | np.isin(feeder.line_to, isolation.buses)
    bounding = [names[e] for e in np.flatnonzero(feeder.remote & feeder.normally_closed)
                if touches[e] or e in isolation.lines]
    iso_text = f"opening the remote switches of {', '.join(bounding)}" if bounding else "the breaker"
    closes = [n for n, a in plan.switch_operations if a == "close"]
    opens = [n for n, a in plan.switch_operations if a == "open"]
    live = plan.energised & np.isfinite(plan.ac.vm_pu) & np.asarray(feeder.net.bus.vn_kv < 100)
    vmin = float(np.nanmin(plan.ac.vm_pu[live])) if live.any() else float("nan")
    max_line = float(np.nanmax(plan.ac.line_loading_percent)) if len(plan.ac.line_loading_percent) else 0.0
    drivers = [
        f"{readings_tripped} fault-current indicators saw fault current; the readings point to {where}",
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
        lower_kw=np.zeros(len(restored)),
        upper_kw=kw,
        justification=justification,
        step=step,
    )


def submit(manager: ApprovalManager, action: ProposedAction) -> ApprovalRequest | None:
    """Raise the request when the policy asks for approval; ``None`` means execute directly."""
    if manager.policy.needs_approval(action.kind, action.magnitude_kw):
        return manager.raise_request(action)
    return None
