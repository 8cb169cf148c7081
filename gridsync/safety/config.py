"""Anomaly monitor configuration and per-step alarm thresholds fitted on clean data.

The false-alarm budget is stated per *step* (what an operator experiences), not per reading.
Each detector's threshold is set so that its score exceeds it on clean data with probability
``budget / n_detectors``: a peaks-over-threshold fit (generalised Pareto on the exceedances
above a high quantile of a long clean run) extrapolates the tail beyond what the run can show.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from scipy.stats import genpareto

DEFAULT_CONFIG = Path(__file__).resolve().parents[1] / "data" / "safety" / "anomaly.toml"


class FitCancelled(Exception):
    """A fit stopped early because its ``stop`` event was set (e.g. the server shutting down)."""


def raise_if_stopped(stop) -> None:
    """Raise ``FitCancelled`` when ``stop`` (a ``threading.Event`` or None) is set."""
    if stop is not None and stop.is_set():
        raise FitCancelled("anomaly monitor fit cancelled")


class IsolationForestConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    n_estimators: int = Field(200, ge=10)
    max_samples: int = Field(512, ge=16)
    seed: int = 3


class AnomalyConfig(BaseModel):
    """Settings of ``gridsync.safety.monitor.AnomalyMonitor`` (see ``data/safety/anomaly.toml``)."""

    model_config = ConfigDict(extra="forbid")
    false_alarm_budget_per_step: float = Field(2e-4, gt=0.0, lt=0.1)
    cusum_drift: float = Field(1.5, gt=0.0)
    sustained_steps: int = Field(4, ge=1)
    dropout_min_run: int = Field(3, ge=2)
    frozen_min_run: int = Field(3, ge=2)
    identify_lnr: float = Field(4.0, gt=0.0)
    max_named: int = Field(6, ge=1)
    tail_quantile: float = Field(0.95, gt=0.5, lt=1.0)
    light_tailed: list[str] = Field(default_factory=lambda: ["chi2", "lnr", "pmu"])
    isolation_forest: IsolationForestConfig = IsolationForestConfig()


def load_anomaly_config(path: str | Path | None = None) -> AnomalyConfig:
    """Read and validate an anomaly configuration TOML (the bundled one when ``path`` is None)."""
    path = Path(path) if path else DEFAULT_CONFIG
    with path.open("rb") as fh:
        return AnomalyConfig.model_validate(tomllib.load(fh))


@dataclass(frozen=True)
class TailThreshold:
    """A score threshold with a stated exceedance probability on clean data."""

    value: float
    rate: float
    n_clean: int
    shape: float

    @classmethod
    def fit(
        cls,
        scores: np.ndarray,
        rate: float,
        tail_quantile: float = 0.95,
        light_tailed: bool = False,
    ) -> TailThreshold:
        """Threshold exceeded with probability ``rate`` by a clean score.

        ``scores`` are clean per-step scores (NaN ignored). Where the run has at least 20
        expected exceedances the empirical quantile is used; beyond, a generalised Pareto
        distribution is fitted to the exceedances over the ``tail_quantile`` quantile, with its
        shape kept >= 0 (an exponential or heavier tail: never a bounded one fitted from a
        short run, which would place the threshold too low). The threshold is never below the
        largest clean score when ``rate`` is rarer than one in the run. ``light_tailed``
        scores (a Gaussian statistic or the maximum of Gaussian ones under clean data: the
        chi-squared z, the largest normalised residual, the PMU z) take the exponential tail
        (shape 0), the Gumbel domain they belong to: a positive shape estimated from a few
        hundred steps would extrapolate their threshold far past anything clean data shows.
        """
        x = np.asarray(scores, dtype=float)
        x = x[np.isfinite(x)]
        n = len(x)
        if n < 50:
            msg = f"TailThreshold.fit: {n} clean scores; at least 50 are needed"
            raise ValueError(msg)
        if not 0.0 < rate < 1.0:
            msg = f"TailThreshold.fit: rate = {rate}: expected a probability in (0, 1)"
            raise ValueError(msg)
        if rate * n >= 20:
            return cls(float(np.quantile(x, 1.0 - rate)), rate, n, float("nan"))
        u = float(np.quantile(x, tail_quantile))
        exc = x[x > u] - u
        zeta = len(exc) / n
        if len(exc) < 10 or np.ptp(exc) == 0:
            value = float(x.max())
            return cls(value, rate, n, float("nan"))
        shape, _, scale = genpareto.fit(exc, floc=0.0)
        if shape < 0 or light_tailed:
            shape, scale = 0.0, float(np.mean(exc))  # exponential MLE
        if shape < 1e-6:
            value = u + scale * np.log(zeta / rate)
        else:
            value = u + scale / shape * ((rate / zeta) ** (-shape) - 1.0)
        if rate * n < 1:
            value = max(value, float(x.max()))
        return cls(float(value), rate, n, float(shape))
