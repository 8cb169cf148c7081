"""Knowledge and adaptation: drift detection on forecast residuals and asset behaviour, a
versioned model registry in the store, and shadow evaluation with audited promotion.

Multi-agent reinforcement learning on the digital twin lives here too (``env``, ``agents``,
``wrappers``, ``policy``, ``train``): an environment with the safety shield in the loop,
sim-to-real randomisation, training and trained policies as controllers."""

from gridsync.learning.drift import DriftAlert, DriftMonitor
from gridsync.learning.registry import ModelRegistry, RegistryError

__all__ = ["DriftAlert", "DriftMonitor", "ModelRegistry", "RegistryError"]
