"""Approval life cycle: decisions by role, edits within bounds, fail-safe on timeout, audit."""

from __future__ import annotations

import numpy as np
import pytest

from gridsync.hitl.approvals import (
    ApprovalConflict,
    ApprovalForbidden,
    ApprovalInvalid,
    ApprovalManager,
    ApprovalNotFound,
)
from gridsync.hitl.policy import ApprovalPolicy
from tests.hitl.conftest import make_action


def manager(clock, audit, **policy):
    return ApprovalManager(ApprovalPolicy(**policy), audit=audit, clock=clock)


def test_approve_applies_proposal_and_logs_who_and_when(clock, audit):
    mgr = manager(clock, audit)
    mgr.current_step = 7
    req = mgr.raise_request(make_action())
    assert req.pending and req.deadline_s == clock.t + 30.0
    clock.t += 4.0
    mgr.approve(req.id, "alice", "operator", "looks right")
    assert req.status == "approved"
    np.testing.assert_allclose(req.applied_kw, [5.0, 5.0])
    assert (req.decided_by, req.decided_role, req.decided_s, req.decided_step) == (
        "alice",
        "operator",
        clock.t,
        7,
    )
    assert audit.actions() == ["approval.raised", "approval.approved"]
    assert audit.rows[1][:2] == ("alice", "operator")
    assert "test action" in audit.rows[0][4]["justification"]


def test_reject_applies_no_action(clock, audit):
    mgr = manager(clock, audit)
    req = mgr.raise_request(make_action(no_action=1.5))
    mgr.reject(req.id, "bob", "admin")
    np.testing.assert_allclose(req.applied_kw, [1.5, 1.5])


def test_viewer_cannot_decide(clock, audit):
    mgr = manager(clock, audit)
    req = mgr.raise_request(make_action())
    with pytest.raises(ApprovalForbidden, match="viewer"):
        mgr.approve(req.id, "vic", "viewer")
    assert req.pending


def test_decided_request_cannot_be_decided_again(clock, audit):
    mgr = manager(clock, audit)
    req = mgr.raise_request(make_action())
    mgr.approve(req.id, "a", "operator")
    with pytest.raises(ApprovalConflict, match="already approved"):
        mgr.reject(req.id, "b", "operator")
    with pytest.raises(ApprovalNotFound):
        mgr.approve("nope", "a", "operator")


def test_edit_checks_bounds_and_names_the_asset(clock, audit):
    mgr = manager(clock, audit)
    req = mgr.raise_request(make_action())
    with pytest.raises(ApprovalInvalid, match=r"PV 1: 9\.5 kW is outside \[0\.00, 8\.00\]"):
        mgr.edit(req.id, "a", "operator", [1.0, 9.5])
    with pytest.raises(ApprovalInvalid, match="needs 2 setpoints"):
        mgr.edit(req.id, "a", "operator", [1.0])
    with pytest.raises(ApprovalInvalid, match="'x'"):
        mgr.edit(req.id, "a", "operator", [1.0, "x"])
    mgr.edit(req.id, "a", "operator", [1.0, 2.0])
    assert req.status == "edited"
    np.testing.assert_allclose(req.applied_kw, [1.0, 2.0])


def test_timeout_applies_fail_safe_never_the_proposal(clock, audit):
    mgr = manager(clock, audit, timeout_s=10)
    req = mgr.raise_request(make_action(proposed=6.0, no_action=0.5))
    clock.t += 9.99
    assert mgr.expire_due() == [] and req.pending
    clock.t += 0.02
    assert mgr.expire_due() == [req]
    assert req.status == "expired" and req.decided_by == "system"
    np.testing.assert_allclose(req.applied_kw, [0.5, 0.5])
    assert audit.actions()[-1] == "approval.expired"
    assert audit.rows[-1][4]["fail_safe"] == "no_action"
    with pytest.raises(ApprovalConflict):
        mgr.approve(req.id, "late", "operator")


def test_idle_fail_safe_puts_assets_at_zero(clock, audit):
    mgr = manager(clock, audit, timeout_s=1)
    req = mgr.raise_request(make_action(kind="shield_clip", proposed=4.0, no_action=3.0))
    assert req.fail_safe == "idle"
    clock.t += 2
    mgr.expire_due()
    np.testing.assert_allclose(req.applied_kw, [0.0, 0.0])


def test_decisions_hold_for_hold_steps_and_block_duplicates(clock, audit):
    mgr = manager(clock, audit, hold_steps=3)
    action = make_action()
    mgr.current_step = 10
    req = mgr.raise_request(action)
    assert mgr.blocks(action.key, 10)
    mgr.approve(req.id, "a", "operator")
    assert [r.id for r in mgr.in_force(12)] == [req.id]
    assert mgr.in_force(13) == [] and not mgr.blocks(action.key, 13)


def test_listeners_see_every_transition(clock, audit):
    mgr = manager(clock, audit, timeout_s=1)
    seen = []
    mgr.subscribe(lambda event, req: seen.append((event, req.status)))
    a = mgr.raise_request(make_action())
    mgr.raise_request(make_action())
    mgr.approve(a.id, "x", "operator")
    clock.t += 5
    mgr.expire_due()
    assert seen == [
        ("raised", "pending"),
        ("raised", "pending"),
        ("approved", "approved"),
        ("expired", "expired"),
    ]


def test_policy_thresholds_and_validation():
    p = ApprovalPolicy(curtailment_kw=20, load_shedding_kw=10)
    assert not p.needs_approval("curtailment", 20.0) and p.needs_approval("curtailment", 20.1)
    assert p.needs_approval("islanding", 0.0) and p.needs_approval("customer_consent", 0.0)
    with pytest.raises(ValueError, match="'bogus' is not one of"):
        p.needs_approval("bogus", 1.0)
    with pytest.raises(ValueError, match="timeout_s"):
        ApprovalPolicy(timeout_s=0)
    with pytest.raises(ValueError, match="fail_safe"):
        ApprovalPolicy(fail_safe={"curtailment": "approve"})
