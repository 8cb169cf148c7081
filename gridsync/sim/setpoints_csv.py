"""Every step's setpoints per asset, streamed to CSV so anyone can check what a controller did.

Rows are ``controller, step, time, asset_id, kind, kW``: ``step`` counts from the window's first
step, ``time`` is the step's start, ``kW`` is the controller's request (load convention; for
``pv_curtail`` the power to spill). Steps are buffered and written in blocks of
``block_steps`` with pandas, so a year of 15-minute steps never sits in memory; a path ending
in ``.gz`` is gzip-compressed (a year of the default fleet is ~1.6 GB as plain CSV).
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pandas as pd

from gridsync.model.assets import Fleet
from gridsync.sim.controller import Setpoints

COLUMNS = ["controller", "step", "time", "asset_id", "kind", "kW"]
# Setpoints attribute -> (kind written, asset id prefix, fleet attribute)
KINDS = [
    ("battery_kw", "battery", "battery"),
    ("ev_kw", "ev_charger", "ev"),
    ("deferrable_kw", "deferrable", "deferrable"),
    ("thermal_kw", "heat_pump", "thermal"),
    ("pv_curtail_kw", "pv_curtail", "pv"),
]


def asset_labels(fleet: Fleet) -> tuple[np.ndarray, np.ndarray]:
    """Asset ids (``battery-3``) and kinds, in the order ``setpoint_vector`` stacks them."""
    ids, kinds = [], []
    for _, kind, attr in KINDS:
        n = len(getattr(fleet, attr))
        ids.append(np.char.add(f"{attr}-", np.arange(n).astype(str)))
        kinds.append(np.full(n, kind))
    return np.concatenate(ids).astype(object), np.concatenate(kinds).astype(object)


def setpoint_vector(sp: Setpoints) -> np.ndarray:
    return np.concatenate([np.asarray(getattr(sp, attr), float) for attr, _, _ in KINDS])


class SetpointsCsv:
    """A CSV file of setpoints; ``recorder(name, scenario)`` gives the per-step callback.

    Use as a context manager (or call ``close``): the last block is written on ``flush``.
    """

    def __init__(self, path: str | Path, block_steps: int = 96) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        opener = gzip.open if self.path.suffix == ".gz" else open
        self._file = opener(self.path, "wt", encoding="utf-8", newline="")
        self._file.write(",".join(COLUMNS) + "\n")
        self.block_steps = block_steps
        self._rows: list[np.ndarray] = []
        self._steps: list[int] = []
        self._times: list[str] = []
        self._labels: tuple[str, np.ndarray, np.ndarray] | None = None
        self.rows_written = 0

    def recorder(self, controller: str, scenario):
        """Callback ``(step, setpoints)`` for ``simulate(on_setpoints=...)``; ``step`` indexes
        ``scenario.index``."""
        self.flush()
        ids, kinds = asset_labels(scenario.fleet)
        self._labels = (controller, ids, kinds)
        first, index = scenario.start_step, scenario.index

        def record(step: int, sp: Setpoints) -> None:
            self._rows.append(setpoint_vector(sp))
            self._steps.append(step - first)
            self._times.append(index[step].isoformat())
            if len(self._rows) >= self.block_steps:
                self.flush()

        return record

    def flush(self) -> None:
        """Write the buffered steps."""
        if not self._rows or self._labels is None:
            return
        controller, ids, kinds = self._labels
        n_steps, n_assets = len(self._rows), len(ids)
        block = pd.DataFrame(
            {
                "controller": controller,
                "step": np.repeat(self._steps, n_assets),
                "time": np.repeat(self._times, n_assets),
                "asset_id": np.tile(ids, n_steps),
                "kind": np.tile(kinds, n_steps),
                "kW": np.round(np.concatenate(self._rows), 4) + 0.0,  # + 0.0 turns -0.0 into 0.0
            }
        )
        block.to_csv(self._file, header=False, index=False, float_format="%.4f")
        self.rows_written += len(block)
        self._rows, self._steps, self._times = [], [], []

    def close(self) -> None:
        self.flush()
        self._file.close()

    def __enter__(self) -> SetpointsCsv:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
