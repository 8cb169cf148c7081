"""Knowledge and adaptation: drift detection on forecast residuals and asset behaviour, a
versioned model registry in the store, and shadow evaluation with audited promotion."""

from gridsync.learning.drift import DriftAlert, DriftMonitor
from gridsync.learning.registry import ModelRegistry, RegistryError

__all__ = ["DriftAlert", "DriftMonitor", "ModelRegistry", "RegistryError"]
