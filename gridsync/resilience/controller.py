"""Self-healing loop that steps with a twin and asks the operator console before switching.

``on_fault`` does what protection and FLISR do without waiting for anyone: the breaker trips, the
FCI readings locate the fault, the remote switches isolate it, and the MILP plans the
restoration. The plan is raised to the console's ``ApprovalManager`` when the policy asks
(``ApprovalPolicy.switching_kw``), with its plain-language justification; otherwise it is applied
at once. ``step`` is called once per twin step: an approved (or edited) plan is applied in that
step; a rejected or expired one falls back to the policy's fail-safe (``no_action``: the
isolated, de-energised zone stays as it is until the crew arrives).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from gridsync.hitl.approvals import ApprovalManager
from gridsync.resilience import flisr as F
from gridsync.resilience.approval import justify, submit, switching_action
from gridsync.resilience.feeder import SwitchableFeeder
from gridsync.resilience.study import energised_by, trip_state


@dataclass
class SwitchingState:
    closed: np.ndarray
    energised: np.ndarray
    events: list[str] = field(default_factory=list)


class FlisrController:
    def __init__(self, feeder: SwitchableFeeder, manager: ApprovalManager) -> None:
        self.feeder = feeder
        self.manager = manager
        live = np.ones(feeder.n_bus, dtype=bool)
        self.state = SwitchingState(feeder.normally_closed.copy(), live)
        self.pending: dict[str, F.RestorationPlan] = {}
        self.located: list[int] = []
        self.isolation: F.Isolation | None = None

    def served(self) -> np.ndarray:
        """Per feeder load: is it supplied now?"""
        return self.state.energised[self.feeder.load_bus]

    def on_fault(self, line: int, op: F.OperatingPoint, step: int) -> str | None:
        """A fault on ``line`` as the field reports it (breaker trip, FCI readings); see
        :meth:`respond`."""
        closed = trip_state(self.feeder, line)
        readings = F.fci_signature(self.feeder, F.radial_paths(self.feeder, self.feeder.normally_closed), line)
        return self.respond(closed, readings, op, step)

    def respond(self, tripped: np.ndarray, readings: np.ndarray, op: F.OperatingPoint,
                step: int, lost_voltage: str = "") -> str | None:
        """Locate from the FCI readings, isolate, plan; returns the approval request id, or
        None if applied. ``tripped`` is the switch state after protection acted;
        ``lost_voltage`` says what the voltage measurements showed (for the justification)."""
        feeder = self.feeder
        located = F.locate(feeder, feeder.normally_closed, readings)
        iso = F.isolate_remote(feeder, feeder.normally_closed, located)
        isolated = tripped.copy()
        isolated[F.isolating_switches(feeder, iso)] = False
        self.state.closed = isolated
        self.state.energised = energised_by(feeder, isolated)
        self.located, self.isolation = located, iso
        self.state.events.append(f"step {step}: fault located on "
                                 f"{', '.join(feeder.line_name[e] for e in located)} and isolated")
        plan = F.restore(feeder, op, isolated, feeder.remote, iso)
        why = justify(feeder, plan, located, iso, op, int(readings.sum()),
                      feeder.study.manual_switching_time_h, lost_voltage)
        request = submit(self.manager, switching_action(feeder, plan, op, why, step))
        if request is None:
            self._apply(plan, step, "applied without approval (policy)")
            return None
        self.pending[request.id] = plan
        return request.id

    def _apply(self, plan: F.RestorationPlan, step: int, how: str) -> None:
        self.state.closed = plan.closed.copy()
        self.state.energised = plan.energised.copy()
        self.state.events.append(f"step {step}: switching plan {how}: "
                                 + ", ".join(f"{a} {n}" for n, a in plan.switch_operations))

    def step(self, step: int) -> None:
        """Apply plans decided since the last step; drop the rejected and expired ones."""
        self.manager.expire_due()
        for rid in list(self.pending):
            req = self.manager.get(rid)
            if req.status in ("approved", "edited"):
                self._apply(self.pending.pop(rid), step, f"{req.status} by {req.decided_by}")
            elif req.status in ("rejected", "expired"):
                self.pending.pop(rid)
                self.state.events.append(f"step {step}: switching plan {req.status}; fail-safe "
                                         f"{req.fail_safe}: the isolated zone waits for the crew")
