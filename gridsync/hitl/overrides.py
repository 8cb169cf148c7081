"""Operator overrides: pin an asset's setpoint, or take it out of control.

A pinned asset gets the operator's setpoint whatever the controller says; an asset taken out
of control behaves as it would with no coordination (the uncontrolled baseline's setpoint).
Overrides are still checked: values beyond the asset's rating are flagged (the physics will
clip them), and the console reports voltage/loading problems at the asset's bus after each
power flow. Every change is audited.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from gridsync.hitl.approvals import DECIDE_ROLES, SETPOINT_FIELD, ApprovalForbidden, AuditSink
from gridsync.hitl.assets import KIND_LABEL, asset_bounds, check_index
from gridsync.model.assets import Fleet
from gridsync.sim.controller import Setpoints


class OverrideError(ValueError):
    """A bad override request (the message names the field and value)."""


@dataclass
class Override:
    """``mode`` is ``pin`` (hold ``setpoint_kw``) or ``manual`` (out of control)."""

    asset_kind: str
    index: int
    mode: str
    setpoint_kw: float | None
    by: str
    role: str
    created_s: float
    reason: str = ""
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "asset_kind": self.asset_kind,
            "index": self.index,
            "label": f"{KIND_LABEL[self.asset_kind]} {self.index}",
            "mode": self.mode,
            "setpoint_kw": self.setpoint_kw,
            "by": self.by,
            "role": self.role,
            "created_s": self.created_s,
            "reason": self.reason,
            "warnings": list(self.warnings),
        }


class OverrideTable:
    """Current overrides keyed by (asset kind, index)."""

    def __init__(
        self, fleet: Fleet, audit: AuditSink | None = None, clock: Callable[[], float] = time.time
    ) -> None:
        self.fleet = fleet
        self.audit_sink = audit
        self.clock = clock
        self._by_key: dict[tuple[str, int], Override] = {}
        self._lock = threading.Lock()

    def _check_role(self, role: str) -> None:
        if role not in DECIDE_ROLES:
            msg = f"role {role!r} cannot override assets; needs one of {', '.join(DECIDE_ROLES)}"
            raise ApprovalForbidden(msg)

    def _audit(self, user: str, role: str, action: str, ov: Override) -> None:
        if self.audit_sink is not None:
            self.audit_sink.audit(user, role, action, f"{ov.asset_kind}:{ov.index}", ov.to_dict())

    def limit_warnings(self, kind: str, index: int, setpoint_kw: float) -> list[str]:
        """Why a pinned value cannot be delivered as asked (empty when it can)."""
        lo, hi = asset_bounds(self.fleet, kind)
        name = f"{KIND_LABEL[kind]} {index}"
        if setpoint_kw > hi[index] + 1e-9:
            return [
                f"{name}: pinned {setpoint_kw:.2f} kW exceeds its {hi[index]:.2f} kW limit; it will deliver at most that"
            ]
        if setpoint_kw < lo[index] - 1e-9:
            return [
                f"{name}: pinned {setpoint_kw:.2f} kW is below its {lo[index]:.2f} kW limit; it will deliver at least that"
            ]
        return []

    def pin(
        self, kind: str, index: int, setpoint_kw: float, user: str, role: str, reason: str = ""
    ) -> Override:
        self._check_role(role)
        try:
            index = check_index(self.fleet, kind, index)
        except ValueError as err:
            raise OverrideError(str(err)) from err
        if not isinstance(setpoint_kw, int | float) or not math.isfinite(setpoint_kw):
            msg = f"setpoint_kw must be a finite number of kW, got {setpoint_kw!r}"
            raise OverrideError(msg)
        ov = Override(kind, index, "pin", float(setpoint_kw), user, role, self.clock(), reason)
        ov.warnings = self.limit_warnings(kind, index, float(setpoint_kw))
        with self._lock:
            self._by_key[(kind, index)] = ov
        self._audit(user, role, "override.pin", ov)
        return ov

    def take_out_of_control(
        self, kind: str, index: int, user: str, role: str, reason: str = ""
    ) -> Override:
        self._check_role(role)
        try:
            index = check_index(self.fleet, kind, index)
        except ValueError as err:
            raise OverrideError(str(err)) from err
        ov = Override(kind, index, "manual", None, user, role, self.clock(), reason)
        with self._lock:
            self._by_key[(kind, index)] = ov
        self._audit(user, role, "override.manual", ov)
        return ov

    def clear(self, kind: str, index: int, user: str, role: str) -> Override:
        self._check_role(role)
        with self._lock:
            ov = self._by_key.pop((kind, int(index)), None)
        if ov is None:
            msg = f"no override on {kind} {index}"
            raise OverrideError(msg)
        self._audit(user, role, "override.clear", ov)
        return ov

    def list(self) -> list[Override]:
        with self._lock:
            return sorted(self._by_key.values(), key=lambda o: (o.asset_kind, o.index))

    def apply(self, setpoints: Setpoints, natural: Setpoints) -> Setpoints:
        """Setpoints with overrides applied (inputs are not modified)."""
        out = replace(
            setpoints,
            **{f: np.array(getattr(setpoints, f), dtype=float) for f in SETPOINT_FIELD.values()},
        )
        for ov in self.list():
            attr = SETPOINT_FIELD[ov.asset_kind]
            target = getattr(out, attr)
            target[ov.index] = (
                ov.setpoint_kw if ov.mode == "pin" else getattr(natural, attr)[ov.index]
            )
        return out

    def assets_by_bus(self) -> dict[int, list[Override]]:
        """Overrides grouped by the bus position of their asset."""
        out: dict[int, list[Override]] = {}
        for ov in self.list():
            bus = int(getattr(self.fleet, ov.asset_kind).bus[ov.index])
            out.setdefault(bus, []).append(ov)
        return out
