"""Versioned forecast models in the store, with audited, reversible promotion.

Every version records what it was trained on (``train_from``/``train_to``, a SHA-256 of the
training values ``data_hash``), its metrics, who or what created it and, once decided, who
promoted or rejected it and why. Exactly one version per name is ``live``; promoting a
candidate retires the live one, ``rollback`` makes the previous live version live again.
Each decision is one audit-log entry (actor, role, action ``model.promote`` /
``model.reject`` / ``model.rollback``, target ``name@version``, detail with the metrics
compared), so the console's audit view shows them next to operator approvals.

Artifacts are pickled models: the store is trusted (only GridSync writes it), never load a
registry from an untrusted database.
"""

from __future__ import annotations

import hashlib
import pickle
import time
from typing import Any

import numpy as np
import pandas as pd

from gridsync.store.base import Store, StoreError


class RegistryError(StoreError):
    """A registry operation that cannot be done (names the model, version and why)."""


def data_hash(values: pd.Series | pd.DataFrame | np.ndarray) -> str:
    """SHA-256 of the training data (index and values), hex; same data -> same hash."""
    h = hashlib.sha256()
    if isinstance(values, pd.Series | pd.DataFrame):
        h.update(np.asarray(values.index.asi8 if hasattr(values.index, "asi8") else []).tobytes())
        values = values.to_numpy()
    h.update(np.ascontiguousarray(np.asarray(values, dtype=float)).tobytes())
    return h.hexdigest()


class ModelRegistry:
    """Model versions of a :class:`~gridsync.store.Store` (call ``store.migrate()`` first)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def register(
        self,
        name: str,
        model: Any,
        history: pd.Series | pd.DataFrame,
        *,
        created_by: str,
        metrics: dict[str, float] | None = None,
        reason: str = "",
    ) -> int:
        """Store ``model`` trained on ``history`` as a new candidate version; returns it."""
        meta = {
            "train_from": str(history.index[0]),
            "train_to": str(history.index[-1]),
            "n_train": len(history),
            "data_hash": data_hash(history),
            "model_class": type(model).__name__,
            "metrics": metrics or {},
            "reason": reason,
        }
        return self.store.put_model(name, meta, pickle.dumps(model), created_by)

    def versions(self, name: str) -> list[dict[str, Any]]:
        return self.store.models(name)

    def _version(self, name: str, version: int) -> dict[str, Any]:
        for v in self.versions(name):
            if v["version"] == version:
                return v
        raise RegistryError(f"model {name!r} version {version}: not in the registry")

    def live_version(self, name: str) -> int | None:
        live = [v["version"] for v in self.versions(name) if v["stage"] == "live"]
        return live[0] if live else None

    def load(self, name: str, version: int | None = None) -> Any:
        """The live model (or a given version), unpickled."""
        version = self.live_version(name) if version is None else version
        if version is None:
            raise RegistryError(f"model {name!r}: no live version")
        return pickle.loads(self.store.model_artifact(name, version))

    def promote(
        self, name: str, version: int, *, actor: str, role: str = "system", detail=None
    ) -> None:
        """Make ``version`` live (the live one is retired); audited."""
        self._version(name, version)
        previous = self.live_version(name)
        if previous == version:
            raise RegistryError(f"model {name!r} version {version}: already live")
        if previous is not None:
            self.store.set_model_stage(name, previous, "retired")
        self.store.set_model_stage(name, version, "live")
        self.store.audit(
            actor,
            role,
            "model.promote",
            f"{name}@{version}",
            {"previous_live": previous, "at_s": time.time(), **(detail or {})},
        )

    def reject(
        self, name: str, version: int, *, actor: str, role: str = "system", detail=None
    ) -> None:
        """Mark a candidate as not promoted (kept for the record); audited."""
        if self._version(name, version)["stage"] != "candidate":
            raise RegistryError(f"model {name!r} version {version}: only candidates are rejected")
        self.store.set_model_stage(name, version, "rejected")
        self.store.audit(actor, role, "model.reject", f"{name}@{version}", detail or {})

    def rollback(self, name: str, *, actor: str, role: str = "operator", reason: str = "") -> int:
        """Make the newest retired version older than the live one live again (the live one
        is retired); audited; returns the version now live."""
        live = self.live_version(name)
        older = [
            v["version"]
            for v in self.versions(name)
            if v["stage"] == "retired" and live is not None and v["version"] < live
        ]
        if not older:
            raise RegistryError(f"model {name!r}: no retired version before the live one")
        back = max(older)
        self.store.set_model_stage(name, live, "retired")
        self.store.set_model_stage(name, back, "live")
        self.store.audit(
            actor, role, "model.rollback", f"{name}@{back}", {"from": live, "reason": reason}
        )
        return back
