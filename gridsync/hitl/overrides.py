"""Operator overrides: pin an asset's setpoint, or take it out of control.

A pinned asset gets the operator's setpoint whatever the controller says; an asset taken out
of control behaves as it would with no coordination (the uncontrolled baseline's setpoint).
Overrides are still checked: a pin beyond the asset's rating is refused, the safety shield
still corrects every step, and the console reports voltage/loading problems at the asset's
bus after each power flow. Every change is audited and, with a ``store``, persisted, so the
overrides in force survive a restart (:meth:`OverrideTable.restore`).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import numpy as np

from gridsync.hitl.approvals import DECIDE_ROLES, SETPOINT_FIELD, ApprovalForbidden, AuditSink
from gridsync.hitl.assets import asset_bounds, asset_name, check_index
from gridsync.model.assets import Fleet
from gridsync.sim.controller import Setpoints

log = logging.getLogger(__name__)


class OverrideError(ValueError):
    """A bad override request (the message names the field and value)."""


class OverrideStore(Protocol):
    """Where overrides persist (``gridsync.store.base.Store`` has these methods)."""

    def put_override(self, asset_kind: str, index: int, override: dict[str, Any]) -> None: ...

    def delete_override(self, asset_kind: str, index: int) -> bool: ...

    def overrides(self) -> list[dict[str, Any]]: ...


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
    label: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "asset_kind": self.asset_kind,
            "index": self.index,
            "label": self.label,
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
        self,
        fleet: Fleet,
        audit: AuditSink | None = None,
        clock: Callable[[], float] = time.time,
        *,
        store: OverrideStore | None = None,
        bus_names=None,
    ) -> None:
        self.fleet = fleet
        self.audit_sink = audit
        self.clock = clock
        self.store = store
        self.bus_names = bus_names
        self._by_key: dict[tuple[str, int], Override] = {}
        self._lock = threading.Lock()

    def _check_role(self, role: str) -> None:
        if role not in DECIDE_ROLES:
            msg = f"role {role!r} cannot override assets; needs one of {', '.join(DECIDE_ROLES)}"
            raise ApprovalForbidden(msg)

    def _audit(self, user: str, role: str, action: str, ov: Override) -> None:
        if self.audit_sink is not None:
            self.audit_sink.audit(user, role, action, f"{ov.asset_kind}:{ov.index}", ov.to_dict())

    def _set(self, user: str, role: str, ov: Override) -> Override:
        """Persist, then hold in memory, then audit (a store failure changes nothing)."""
        if self.store is not None:
            self.store.put_override(ov.asset_kind, ov.index, ov.to_dict())
        with self._lock:
            self._by_key[(ov.asset_kind, ov.index)] = ov
        self._audit(user, role, f"override.{ov.mode}", ov)
        return ov

    def name(self, kind: str, index: int) -> str:
        return asset_name(self.fleet, self.bus_names, kind, index)

    def _pin_value(self, kind: str, index: int, setpoint_kw: Any) -> float:
        if not isinstance(setpoint_kw, int | float) or not math.isfinite(setpoint_kw):
            msg = f"setpoint_kw must be a finite number of kW, got {setpoint_kw!r}"
            raise OverrideError(msg)
        lo, hi = asset_bounds(self.fleet, kind)
        if not lo[index] - 1e-9 <= setpoint_kw <= hi[index] + 1e-9:
            msg = (
                f"setpoint_kw: {self.name(kind, index)} can take {lo[index]:.2f} to "
                f"{hi[index]:.2f} kW, got {setpoint_kw:.2f} kW"
            )
            raise OverrideError(msg)
        return float(setpoint_kw)

    def pin(
        self, kind: str, index: int, setpoint_kw: float, user: str, role: str, reason: str = ""
    ) -> Override:
        """Hold ``setpoint_kw`` on one asset; refused beyond the asset's rating."""
        self._check_role(role)
        try:
            index = check_index(self.fleet, kind, index)
        except ValueError as err:
            raise OverrideError(str(err)) from err
        value = self._pin_value(kind, index, setpoint_kw)
        ov = Override(kind, index, "pin", value, user, role, self.clock(), reason)
        ov.label = self.name(kind, index)
        return self._set(user, role, ov)

    def take_out_of_control(
        self, kind: str, index: int, user: str, role: str, reason: str = ""
    ) -> Override:
        self._check_role(role)
        try:
            index = check_index(self.fleet, kind, index)
        except ValueError as err:
            raise OverrideError(str(err)) from err
        ov = Override(kind, index, "manual", None, user, role, self.clock(), reason)
        ov.label = self.name(kind, index)
        return self._set(user, role, ov)

    def clear(self, kind: str, index: int, user: str, role: str) -> Override:
        self._check_role(role)
        with self._lock:
            ov = self._by_key.get((kind, int(index)))
        if ov is None:
            msg = f"no override on {kind} {index}"
            raise OverrideError(msg)
        if self.store is not None:
            self.store.delete_override(kind, int(index))
        with self._lock:
            self._by_key.pop((kind, int(index)), None)
        self._audit(user, role, "override.clear", ov)
        return ov

    def restore(self) -> list[str]:
        """Load the stored overrides (after a restart); returns why any was dropped (an
        asset the fleet no longer has, a pin beyond its rating)."""
        if self.store is None:
            return []
        dropped = []
        for d in self.store.overrides():
            try:
                kind, index, mode = str(d["asset_kind"]), int(d["index"]), str(d["mode"])
                index = check_index(self.fleet, kind, index)
                value = (
                    self._pin_value(kind, index, d.get("setpoint_kw")) if mode == "pin" else None
                )
                if mode not in ("pin", "manual"):
                    raise OverrideError(f"mode {mode!r} is not pin or manual")
            except (KeyError, TypeError, ValueError) as err:
                dropped.append(f"stored override {d!r} dropped: {err}")
                log.warning(dropped[-1])
                continue
            ov = Override(
                kind, index, mode, value, str(d.get("by", "")), str(d.get("role", "")),
                float(d.get("created_s") or self.clock()), str(d.get("reason", "")),
            )  # fmt: skip
            ov.label = self.name(kind, index)
            with self._lock:
                self._by_key[(kind, index)] = ov
        return dropped

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
