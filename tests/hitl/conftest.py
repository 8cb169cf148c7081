"""Helpers for the approval tests: a manual clock and an in-memory audit log."""

from __future__ import annotations

import numpy as np
import pytest

from gridsync.hitl.approvals import ProposedAction
from gridsync.hitl.justification import Justification, Outcome


class ManualClock:
    def __init__(self, t: float = 1000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


class AuditList:
    def __init__(self) -> None:
        self.rows: list[tuple] = []

    def audit(self, actor, role, action, target="", detail=None) -> int:
        self.rows.append((actor, role, action, target, detail or {}))
        return len(self.rows)

    def actions(self) -> list[str]:
        return [r[2] for r in self.rows]


@pytest.fixture
def clock():
    return ManualClock()


@pytest.fixture
def audit():
    return AuditList()


def make_action(kind: str = "curtailment", n: int = 2, proposed=5.0, no_action=0.0):
    just = Justification(
        summary="test action",
        drivers=["a driver"],
        acting=Outcome("act", 1.0, "some risk"),
        not_acting=Outcome("wait", 0.0, "other risk"),
    )
    return ProposedAction(
        kind=kind,
        title=f"{kind} test",
        asset_kind="pv",
        asset_index=np.arange(n),
        asset_labels=[f"PV {i}" for i in range(n)],
        proposed_kw=np.full(n, proposed),
        no_action_kw=np.full(n, no_action),
        lower_kw=np.zeros(n),
        upper_kw=np.full(n, 8.0),
        justification=just,
    )
