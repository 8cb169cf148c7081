"""Which actions need a human, how long the human has, and what happens when nobody answers.

Thresholds are totals per request in kW. The fail-safe is never the proposed (risky) action:
``no_action`` keeps the affected assets where they would be without this action (PV keeps
producing, loads keep running, the feeder stays connected); ``idle`` puts them at 0 kW.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

ActionKind = Literal[
    "curtailment", "load_shedding", "islanding", "shield_clip", "customer_consent", "switching"
]
ACTION_KINDS: tuple[str, ...] = (
    "curtailment",
    "load_shedding",
    "islanding",
    "shield_clip",
    "customer_consent",
    "switching",
)
FailSafe = Literal["no_action", "idle"]


def _default_fail_safe() -> dict[str, FailSafe]:
    return {
        "curtailment": "no_action",
        "load_shedding": "no_action",
        "islanding": "no_action",
        "shield_clip": "idle",
        "customer_consent": "no_action",
        "switching": "no_action",
    }


class ApprovalPolicy(BaseModel):
    """Configurable approval thresholds (see the module docstring)."""

    model_config = ConfigDict(extra="forbid")

    timeout_s: float = Field(30.0, gt=0, le=3600, description="time a human has to answer")
    curtailment_kw: float = Field(
        20.0, ge=0, description="PV curtailment above this total needs approval"
    )
    load_shedding_kw: float = Field(
        10.0, ge=0, description="flexible load cut below its demand above this total needs approval"
    )
    shield_clip_kw: float = Field(
        5.0, ge=0, description="setpoints the shield moved by more than this need approval"
    )
    switching_kw: float = Field(
        0.0, ge=0, description="restoration switching plans re-energising more than this need approval"
    )
    ask_customers: list[str] = Field(
        default_factory=list, description="bus names of customers who asked to be asked first"
    )
    feeder_import_limit_kw: float | None = Field(
        None, gt=0, description="feeder-head import above which the guard proposes load shedding"
    )
    hold_steps: int = Field(4, ge=1, description="steps a decision stays in force")
    fail_safe: dict[ActionKind, FailSafe] = Field(default_factory=_default_fail_safe)

    def needs_approval(self, kind: str, magnitude_kw: float) -> bool:
        """Whether an action of ``kind`` moving ``magnitude_kw`` in total must be approved."""
        if kind in ("islanding", "customer_consent"):
            return True
        threshold = {
            "curtailment": self.curtailment_kw,
            "load_shedding": self.load_shedding_kw,
            "shield_clip": self.shield_clip_kw,
            "switching": self.switching_kw,
        }.get(kind)
        if threshold is None:
            msg = f"action kind {kind!r} is not one of {', '.join(ACTION_KINDS)}"
            raise ValueError(msg)
        return magnitude_kw > threshold

    def fail_safe_for(self, kind: str) -> FailSafe:
        return self.fail_safe.get(kind, "no_action")  # type: ignore[arg-type]
