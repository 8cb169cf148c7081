"""Plain-language justifications built from the numbers of the plan that wants to act.

A justification says what drives the action (the measurement or forecast), which constraints
bind and what they are worth (shadow prices from the dispatch LP when a plan carries them),
and what acting and not acting are each expected to cost and risk. Every sentence is built
from numbers passed in; nothing here invents a value.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol


class BindingLike(Protocol):
    """What the console needs of a binding constraint (``gridsync.dispatch.plan`` provides it)."""

    kind: str
    description: str
    step: int
    shadow_price: float
    unit: str


@dataclass
class Outcome:
    """Expected consequence of one choice over the decision's window."""

    label: str
    cost_eur: float
    risk: str
    metrics: dict[str, float] = field(default_factory=dict)


@dataclass
class Justification:
    """Why an action is proposed, in sentences an operator can check against the numbers."""

    summary: str
    drivers: list[str]
    acting: Outcome
    not_acting: Outcome
    binding: list[dict[str, Any]] = field(default_factory=list)
    source: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def text(self) -> str:
        """The whole justification as plain text (logged with the request)."""
        lines = [self.summary]
        lines += [f"- {d}" for d in self.drivers]
        lines += [f"- {b['text']}" for b in self.binding]
        for prefix, o in (("If approved", self.acting), ("If not", self.not_acting)):
            lines.append(f"{prefix}: {o.label}; expected cost {eur(o.cost_eur)}; {o.risk}")
        return "\n".join(lines)


def eur(value: float) -> str:
    """Money with sign and two decimals (``-1.20 EUR``); ``n/a`` when unknown."""
    return "n/a" if not math.isfinite(value) else f"{value:.2f} EUR"


def describe_binding(b: BindingLike) -> dict[str, Any]:
    """One binding constraint as a dict with a sentence saying what relaxing it is worth.

    The LP's dual is the objective change per unit of relaxation; its sign depends on the
    constraint's direction, so the sentence uses the magnitude.
    """
    worth = abs(float(b.shadow_price))
    text = f"{b.description}; each extra {b.unit} of headroom is worth {worth:.2f} EUR"
    return {
        "kind": b.kind,
        "description": b.description,
        "step": int(b.step),
        "shadow_price": float(b.shadow_price),
        "unit": b.unit,
        "text": text,
    }


def binding_from_plan(plan: Any, limit: int = 3) -> list[dict[str, Any]]:
    """The ``limit`` most valuable binding constraints of a dispatch plan (none if it has none)."""
    found = list(getattr(plan, "binding", None) or [])
    found.sort(key=lambda b: abs(float(b.shadow_price)), reverse=True)
    return [describe_binding(b) for b in found[:limit]]
