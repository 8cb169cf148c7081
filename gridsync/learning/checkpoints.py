"""Where trained RL policies live: registry directories of checkpoint directories.

Searched in order: ``$GRIDSYNC_RL_DIR`` (if set), ``./models/rl`` (what ``gridsync learn
train`` writes by default) and the checkpoints bundled with the package
(``gridsync/data/rl``). A checkpoint directory holds ``meta.json``, ``policy.npz`` (the actor
the controller plays), ``ppo.zip`` (the full Stable-Baselines3 model, to resume training),
``curve.csv`` and ``curve.html`` (the learning curve).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

DEFAULT_DIR = Path("models") / "rl"
BUNDLED_DIR = Path(__file__).resolve().parent.parent / "data" / "rl"


def registry_dirs() -> list[Path]:
    env = os.environ.get("GRIDSYNC_RL_DIR")
    return [*([Path(env)] if env else []), DEFAULT_DIR, BUNDLED_DIR]


def list_checkpoints() -> list[dict]:
    """Every checkpoint found: name, directory and its recorded training summary."""
    out, seen = [], set()
    for d in registry_dirs():
        if not d.is_dir():
            continue
        for meta in sorted(d.glob("*/meta.json")):
            name = meta.parent.name
            if name in seen:
                continue
            seen.add(name)
            info = json.loads(meta.read_text())
            out.append({"name": name, "path": str(meta.parent), **info.get("summary", {})})
    return out
