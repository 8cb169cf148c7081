"""The anomaly alert an operator sees: which checks fired (score against threshold) and the
measurements and devices most likely at fault, with their normalised residuals."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class DetectorEvidence:
    """A check that fired: its score on this step and its calibrated threshold."""

    detector: str
    score: float
    threshold: float


@dataclass
class Suspect:
    """A measurement named as likely at fault.

    ``checks`` maps each check that points at it to its score there (``lnr_identification``
    is the normalised residual at which the estimator removed it). ``redundant`` is False for
    measurements the snapshot estimator cannot check (critical: no other measurement sees an
    error there); they can only be named by the temporal checks against their own forecast.
    """

    row: int
    measurement: str
    device: str
    normalized_residual: float | None
    redundant: bool
    checks: dict[str, float] = field(default_factory=dict)

    @property
    def status(self) -> str:
        """How the reading was found: by the estimator, or (critical readings) only by its own
        history and forecast."""
        if self.redundant:
            return "identifiable by estimation"
        return "detected, not identifiable by estimation (critical reading)"

    def describe(self) -> str:
        if not self.redundant:
            return f"{self.measurement} ({self.status})"
        if self.normalized_residual:
            return f"{self.measurement} (normalised residual {self.normalized_residual:.1f})"
        return self.measurement

    def to_dict(self) -> dict[str, Any]:
        return {
            "measurement": self.measurement,
            "device": self.device,
            "normalized_residual": self.normalized_residual,
            "redundant": self.redundant,
            "status": self.status,
            "checks": {k: round(v, 3) for k, v in self.checks.items()},
        }


@dataclass
class AnomalyAlert:
    """Alarm on reference step ``step`` (the instant the readings describe), raised at
    ``raised_step`` once the delayed readings and any look-ahead had arrived."""

    step: int
    raised_step: int
    evidence: list[DetectorEvidence]
    suspects: list[Suspect]
    silent_devices: list[str] = field(default_factory=list)
    pmu_gaps: dict[str, float] = field(default_factory=dict)

    @property
    def detectors(self) -> list[str]:
        return [e.detector for e in self.evidence]

    @property
    def named_rows(self) -> set[int]:
        return {s.row for s in self.suspects}

    def message(self) -> str:
        fired = ", ".join(f"{e.detector} {e.score:.1f} > {e.threshold:.1f}" for e in self.evidence)
        parts = [f"anomaly: {fired}"]
        if self.suspects:
            parts.append(f"suspect {'; '.join(s.describe() for s in self.suspects[:3])}")
        if self.silent_devices:
            parts.append(f"{len(self.silent_devices)} devices silent")
        if self.pmu_gaps:
            worst = max(self.pmu_gaps, key=self.pmu_gaps.get)
            parts.append(f"{worst} disagrees by {self.pmu_gaps[worst]:.1f} std")
        return "; ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        """The console alert: ``severity``/``source``/``message`` as every alert, plus the
        evidence and the suspects."""
        return {
            "severity": "critical" if len(self.evidence) > 1 else "warning",
            "source": "anomaly",
            "message": self.message(),
            "step": self.step,
            "raised_step": self.raised_step,
            "evidence": [
                {
                    "detector": e.detector,
                    "score": round(e.score, 3),
                    "threshold": round(e.threshold, 3),
                }
                for e in self.evidence
            ],
            "suspects": [s.to_dict() for s in self.suspects],
            "silent_devices": self.silent_devices,
            "pmu_gaps": {k: round(v, 2) for k, v in self.pmu_gaps.items()},
        }
