"""Approval requests: raised by agents, decided by operators, or failed safe on timeout.

An action above the policy's thresholds becomes an :class:`ApprovalRequest` holding the
proposed setpoints, the no-action alternative and a :class:`Justification`. Operators
(and admins) approve, reject or edit it; if nobody answers before ``deadline_s`` the policy's
fail-safe is applied. Every transition goes to the audit sink with who, when and what, and to
the listeners (the console pushes it to browsers).
"""

from __future__ import annotations

import itertools
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from gridsync.hitl.justification import Justification
from gridsync.hitl.policy import ApprovalPolicy

DECIDE_ROLES: tuple[str, ...] = ("operator", "admin")
SETPOINT_FIELD: dict[str, str] = {
    "pv": "pv_curtail_kw",
    "battery": "battery_kw",
    "ev": "ev_kw",
    "deferrable": "deferrable_kw",
    "thermal": "thermal_kw",
}


class AuditSink(Protocol):
    """Anything with the store's ``audit`` method (``gridsync.store.base.Store`` has it)."""

    def audit(
        self, actor: str, role: str, action: str, target: str = "", detail: dict | None = None
    ) -> int: ...


class ApprovalError(ValueError):
    """A decision could not be taken; ``status_code`` is the matching HTTP status."""

    status_code = 400


class ApprovalNotFound(ApprovalError):
    status_code = 404


class ApprovalConflict(ApprovalError):
    status_code = 409


class ApprovalForbidden(ApprovalError):
    status_code = 403


class ApprovalInvalid(ApprovalError):
    status_code = 422


@dataclass
class ProposedAction:
    """What an agent wants to do to some assets of one kind, and what not doing it means.

    ``asset_kind`` is one of :data:`SETPOINT_FIELD` (the setpoint it moves) or ``"feeder"``
    for islanding. Arrays have one element per asset in ``asset_index``; ``lower_kw`` and
    ``upper_kw`` bound what an operator may edit the setpoints to.
    """

    kind: str
    title: str
    asset_kind: str
    asset_index: np.ndarray
    asset_labels: list[str]
    proposed_kw: np.ndarray
    no_action_kw: np.ndarray
    lower_kw: np.ndarray
    upper_kw: np.ndarray
    justification: Justification
    step: int = 0
    time_label: str = ""

    def __post_init__(self) -> None:
        self.asset_index = np.asarray(self.asset_index, dtype=np.int64)
        n = len(self.asset_index)
        for name in ("proposed_kw", "no_action_kw", "lower_kw", "upper_kw"):
            arr = np.asarray(getattr(self, name), dtype=float)
            if arr.shape != (n,):
                msg = f"ProposedAction.{name} has shape {arr.shape}, expected ({n},)"
                raise ValueError(msg)
            setattr(self, name, arr)
        if len(self.asset_labels) != n:
            msg = f"ProposedAction.asset_labels has {len(self.asset_labels)} entries, expected {n}"
            raise ValueError(msg)

    @property
    def magnitude_kw(self) -> float:
        """Total setpoint change against the no-action alternative (kW)."""
        return float(np.abs(self.proposed_kw - self.no_action_kw).sum())

    @property
    def key(self) -> str:
        """Requests with the same key are not raised twice while one is pending or in force."""
        return f"{self.kind}:{self.asset_kind}"

    def fail_safe_kw(self, mode: str) -> np.ndarray:
        if mode == "idle":
            return np.zeros_like(self.no_action_kw)
        return self.no_action_kw.copy()


@dataclass
class ApprovalRequest:
    """One request and its fate. ``status``: pending, approved, rejected, edited or expired."""

    id: str
    seq: int
    action: ProposedAction
    created_s: float
    deadline_s: float
    fail_safe: str
    status: str = "pending"
    decided_s: float | None = None
    decided_by: str = ""
    decided_role: str = ""
    decided_step: int | None = None
    note: str = ""
    applied_kw: np.ndarray | None = None
    history: list[dict[str, Any]] = field(default_factory=list)

    @property
    def pending(self) -> bool:
        return self.status == "pending"

    def to_dict(self, now_s: float | None = None) -> dict[str, Any]:
        a = self.action
        now_s = time.time() if now_s is None else now_s
        return {
            "id": self.id,
            "seq": self.seq,
            "kind": a.kind,
            "title": a.title,
            "status": self.status,
            "step": a.step,
            "time": a.time_label,
            "created_s": self.created_s,
            "deadline_s": self.deadline_s,
            "seconds_left": max(self.deadline_s - now_s, 0.0) if self.pending else 0.0,
            "fail_safe": self.fail_safe,
            "asset_kind": a.asset_kind,
            "assets": [
                {
                    "index": int(i),
                    "label": lbl,
                    "proposed_kw": round(float(p), 3),
                    "no_action_kw": round(float(n), 3),
                    "lower_kw": round(float(lo), 3),
                    "upper_kw": round(float(hi), 3),
                    "applied_kw": None
                    if self.applied_kw is None
                    else round(float(self.applied_kw[k]), 3),
                }
                for k, (i, lbl, p, n, lo, hi) in enumerate(
                    zip(
                        a.asset_index,
                        a.asset_labels,
                        a.proposed_kw,
                        a.no_action_kw,
                        a.lower_kw,
                        a.upper_kw,
                        strict=True,
                    )
                )
            ],
            "magnitude_kw": round(a.magnitude_kw, 2),
            "justification": a.justification.to_dict(),
            "decided_s": self.decided_s,
            "decided_by": self.decided_by,
            "decided_role": self.decided_role,
            "note": self.note,
        }


Listener = Callable[[str, ApprovalRequest], None]


class ApprovalManager:
    """Thread-safe queue of approval requests with deadlines, decisions and an audit trail."""

    def __init__(
        self,
        policy: ApprovalPolicy | None = None,
        audit: AuditSink | None = None,
        clock: Callable[[], float] = time.time,
        keep: int = 200,
    ) -> None:
        self.policy = policy or ApprovalPolicy()
        self.audit_sink = audit
        self.clock = clock
        self.keep = keep
        self.current_step = 0
        self._requests: dict[str, ApprovalRequest] = {}
        self._seq = itertools.count(1)
        self._lock = threading.RLock()
        self._listeners: list[Listener] = []

    def subscribe(self, listener: Listener) -> None:
        """Call ``listener(event, request)`` on raised/approved/rejected/edited/expired."""
        self._listeners.append(listener)

    def _emit(self, event: str, req: ApprovalRequest, actor: str, role: str, **detail) -> None:
        self._audit(event, req, actor, role, **detail)
        self._notify(event, req, actor, role)

    def _audit(self, event: str, req: ApprovalRequest, actor: str, role: str, **detail) -> None:
        if self.audit_sink is not None:
            self.audit_sink.audit(actor, role, f"approval.{event}", req.id, detail)

    def _notify(self, event: str, req: ApprovalRequest, actor: str, role: str) -> None:
        req.history.append({"event": event, "by": actor, "role": role, "at_s": self.clock()})
        for listener in list(self._listeners):
            listener(event, req)

    def raise_request(self, action: ProposedAction) -> ApprovalRequest:
        """Queue ``action`` for a human; its fail-safe comes from the policy."""
        now = self.clock()
        with self._lock:
            req = ApprovalRequest(
                id=uuid.uuid4().hex[:12],
                seq=next(self._seq),
                action=action,
                created_s=now,
                deadline_s=now + self.policy.timeout_s,
                fail_safe=self.policy.fail_safe_for(action.kind),
            )
            self._requests[req.id] = req
            self._trim()
        self._emit(
            "raised",
            req,
            "system",
            "system",
            kind=action.kind,
            title=action.title,
            magnitude_kw=action.magnitude_kw,
            justification=action.justification.text(),
        )
        return req

    def _trim(self) -> None:
        done = [r for r in self._requests.values() if not r.pending]
        for r in sorted(done, key=lambda r: r.seq)[: max(len(self._requests) - self.keep, 0)]:
            del self._requests[r.id]

    def get(self, request_id: str) -> ApprovalRequest:
        with self._lock:
            req = self._requests.get(request_id)
        if req is None:
            msg = f"approval request {request_id!r} does not exist"
            raise ApprovalNotFound(msg)
        return req

    def pending(self) -> list[ApprovalRequest]:
        with self._lock:
            return sorted((r for r in self._requests.values() if r.pending), key=lambda r: r.seq)

    def recent(self, limit: int = 20) -> list[ApprovalRequest]:
        """Decided requests, newest first."""
        with self._lock:
            done = [r for r in self._requests.values() if not r.pending]
        return sorted(done, key=lambda r: r.decided_s or 0.0, reverse=True)[:limit]

    def all(self) -> list[ApprovalRequest]:
        with self._lock:
            return sorted(self._requests.values(), key=lambda r: r.seq)

    def _decide(
        self, request_id: str, user: str, role: str, status: str, applied: np.ndarray, note: str
    ) -> ApprovalRequest:
        if role not in DECIDE_ROLES:
            msg = f"role {role!r} cannot decide approvals; needs one of {', '.join(DECIDE_ROLES)}"
            raise ApprovalForbidden(msg)
        if "\x00" in note:
            msg = "note: NUL characters are not allowed"
            raise ApprovalInvalid(msg)
        with self._lock:
            req = self.get(request_id)
            if not req.pending:
                msg = f"approval request {request_id} is already {req.status}"
                raise ApprovalConflict(msg)
            step = self.current_step
            # the audit row first: if it cannot be written, the request stays pending
            self._audit(
                status, req, user, role, note=note, applied_kw=applied.round(3).tolist(), step=step
            )
            req.status = status
            req.decided_s = self.clock()
            req.decided_by, req.decided_role, req.note = user, role, note
            req.decided_step = step
            req.applied_kw = applied
        self._notify(status, req, user, role)
        return req

    def approve(self, request_id: str, user: str, role: str, note: str = "") -> ApprovalRequest:
        req = self.get(request_id)
        return self._decide(request_id, user, role, "approved", req.action.proposed_kw.copy(), note)

    def reject(self, request_id: str, user: str, role: str, note: str = "") -> ApprovalRequest:
        """Reject: the no-action alternative applies."""
        req = self.get(request_id)
        return self._decide(
            request_id, user, role, "rejected", req.action.no_action_kw.copy(), note
        )

    def edit(
        self, request_id: str, user: str, role: str, values_kw: list[float], note: str = ""
    ) -> ApprovalRequest:
        """Approve with operator-chosen setpoints, each within the asset's bounds."""
        a = self.get(request_id).action
        if len(values_kw) != len(a.asset_index):
            msg = f"edit needs {len(a.asset_index)} setpoints (one per asset), got {len(values_kw)}"
            raise ApprovalInvalid(msg)
        values = np.empty(len(values_kw))
        for k, raw in enumerate(values_kw):
            try:
                v = float(raw)
            except (TypeError, ValueError):
                v = float("nan")
            if not (np.isfinite(v) and a.lower_kw[k] - 1e-9 <= v <= a.upper_kw[k] + 1e-9):
                msg = (
                    f"setpoint for {a.asset_labels[k]}: {raw!r} kW is outside "
                    f"[{a.lower_kw[k]:.2f}, {a.upper_kw[k]:.2f}] kW"
                )
                raise ApprovalInvalid(msg)
            values[k] = v
        return self._decide(request_id, user, role, "edited", values, note)

    def expire_due(self) -> list[ApprovalRequest]:
        """Apply the fail-safe to every pending request past its deadline."""
        now = self.clock()
        expired = []
        with self._lock:
            for req in self._requests.values():
                if req.pending and now >= req.deadline_s:
                    req.status = "expired"
                    req.decided_s = now
                    req.decided_by, req.decided_role = "system", "system"
                    req.decided_step = self.current_step
                    req.applied_kw = req.action.fail_safe_kw(req.fail_safe)
                    req.note = (
                        f"no answer within {self.policy.timeout_s:g} s: fail-safe {req.fail_safe}"
                    )
                    expired.append(req)
        for req in expired:
            self._emit(
                "expired",
                req,
                "system",
                "system",
                fail_safe=req.fail_safe,
                applied_kw=req.applied_kw.round(3).tolist(),
                step=req.decided_step,
            )
        return expired

    def in_force(self, step: int) -> list[ApprovalRequest]:
        """Decided requests whose decision still applies at ``step`` (``hold_steps`` long)."""
        hold = self.policy.hold_steps
        with self._lock:
            return [
                r
                for r in self._requests.values()
                if r.decided_step is not None and r.decided_step <= step < r.decided_step + hold
            ]

    def blocks(self, key: str, step: int) -> bool:
        """Whether a request with ``key`` is pending or in force (so a new one is not raised)."""
        with self._lock:
            busy = [r for r in self._requests.values() if r.action.key == key and r.pending]
        return bool(busy) or any(r.action.key == key for r in self.in_force(step))
