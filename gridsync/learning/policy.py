"""Trained policies as controllers: ``--controller rl:<checkpoint>`` (and ``rl:<checkpoint>+shield``).

A checkpoint is a directory in a registry directory (``learning.checkpoints``) holding
``meta.json`` (agent layout, training record) and ``policy.npz`` (the shared actor network:
the mean of the PPO policy's Gaussian, deterministic at deployment). Inference is numpy only:
one batched matrix product per layer for every agent of the feeder, so the runtime needs no
torch and the decision takes well under a millisecond beyond the features.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from gridsync.learning.agents import N_ACTIONS, N_FEATURES, AgentFeatures, make_layout
from gridsync.sim.controller import Observation, Setpoints

META = "meta.json"
WEIGHTS = "policy.npz"


class CheckpointError(ValueError):
    """A checkpoint is missing, incomplete or does not fit the feature layout."""


class MLPActor:
    """tanh MLP (SB3's default activation) mapping features to action means, clipped to [-1, 1]."""

    def __init__(self, weights: list[np.ndarray], biases: list[np.ndarray]) -> None:
        if not weights or weights[0].shape[0] != N_FEATURES or weights[-1].shape[1] != N_ACTIONS:
            shapes = [w.shape for w in weights]
            msg = f"actor layers {shapes}: expected {N_FEATURES} inputs and {N_ACTIONS} outputs"
            raise CheckpointError(msg)
        self.weights, self.biases = weights, biases

    def __call__(self, x: np.ndarray) -> np.ndarray:
        h = np.asarray(x, np.float64)
        for w, b in zip(self.weights[:-1], self.biases[:-1], strict=True):
            h = np.tanh(h @ w + b)
        return np.clip(h @ self.weights[-1] + self.biases[-1], -1.0, 1.0)

    def save(self, path: Path) -> None:
        arrays = {f"w{i}": w for i, w in enumerate(self.weights)}
        arrays.update({f"b{i}": b for i, b in enumerate(self.biases)})
        np.savez_compressed(path, **arrays)

    @classmethod
    def load(cls, path: Path) -> MLPActor:
        with np.load(path) as z:
            n = sum(1 for k in z.files if k.startswith("w"))
            return cls([z[f"w{i}"] for i in range(n)], [z[f"b{i}"] for i in range(n)])


def resolve_checkpoint(ref: str | Path) -> Path:
    """The checkpoint directory for ``ref``: a path, or a name in the registry directories."""
    from gridsync.learning.checkpoints import registry_dirs

    candidates = [Path(ref)] + [d / str(ref) for d in registry_dirs()]
    for c in candidates:
        if (c / META).is_file() and (c / WEIGHTS).is_file():
            return c
    where = ", ".join(str(c) for c in candidates)
    msg = f"checkpoint {str(ref)!r}: no {META} + {WEIGHTS} found (looked in {where})"
    raise CheckpointError(msg)


class RLController:
    """Plays a trained shared policy for every agent of the feeder (deterministic)."""

    def __init__(self, checkpoint: str | Path) -> None:
        self.path = resolve_checkpoint(checkpoint)
        self.meta = json.loads((self.path / META).read_text())
        self.actor = MLPActor.load(self.path / WEIGHTS)
        self.name = f"rl:{checkpoint}"
        self.features: AgentFeatures | None = None

    def reset(self, scenario) -> None:
        layout = make_layout(
            scenario.fleet,
            scenario.feeder.n_bus,
            self.meta.get("agents", "building"),
            int(self.meta.get("n_groups", 8)),
        )
        self.features = AgentFeatures(scenario, layout)

    def act(self, obs: Observation) -> Setpoints:
        if self.features is None:
            msg = "RLController.act() before reset()"
            raise RuntimeError(msg)
        return self.features.setpoints(obs, self.actor(self.features.features(obs)))
