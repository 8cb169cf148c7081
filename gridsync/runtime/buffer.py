"""The state buffer: a synchronised grid snapshot on a fixed step (5 s by default).

Measurements arrive asynchronously, late, out of order or not at all. For every series
``(device_id, quantity)`` the buffer holds the newest reading by *measurement* time
(hold-last; an older reading arriving later never overwrites a newer one). A snapshot taken
at step time ``t`` reports, per series, the held value, its age ``t - ts`` and flags:
``stale`` when the age exceeds ``stale_after_s`` and ``missing`` when nothing was ever
received (value NaN). Readings stamped after ``t`` are kept back for the next snapshot.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass
class GridSnapshot:
    """One synchronised step: arrays aligned with ``keys`` (``device_id/quantity``)."""

    t_s: float
    keys: list[str]
    value: np.ndarray
    ts_s: np.ndarray
    age_s: np.ndarray
    stale: np.ndarray
    missing: np.ndarray

    def to_dict(self) -> dict[str, Any]:
        return {
            "t_s": self.t_s,
            "n_series": len(self.keys),
            "n_stale": int(self.stale.sum()),
            "n_missing": int(self.missing.sum()),
            "series": {
                k: {
                    "value": None if math.isnan(v) else v,
                    "age_s": None if math.isnan(a) else round(a, 3),
                    "stale": bool(s),
                }
                for k, v, a, s in zip(
                    self.keys,
                    self.value.tolist(),
                    self.age_s.tolist(),
                    self.stale.tolist(),
                    strict=True,
                )
            },
        }


class StateBuffer:
    """Newest two readings per series by measurement time: the newest one stamped at or
    before the snapshot time is used, so a reading that arrives early for the next step does
    not leak into this one."""

    def __init__(self, step_s: float = 5.0, stale_after_s: float = 15.0) -> None:
        if step_s <= 0 or stale_after_s <= 0:
            msg = f"step_s and stale_after_s must be > 0 (got {step_s}, {stale_after_s})"
            raise ValueError(msg)
        self.step_s, self.stale_after_s = step_s, stale_after_s
        self._index: dict[str, int] = {}
        # slot 0 = newest, slot 1 = the one before
        self._value = np.full((2, 0), np.nan)
        self._ts = np.full((2, 0), -np.inf)
        self.ignored_out_of_order = 0

    def __len__(self) -> int:
        return len(self._index)

    def indices(self, keys: list[str]) -> np.ndarray:
        """Positions of ``keys``, registering unseen ones."""
        idx = self._index
        for k in keys:
            if k not in idx:
                idx[k] = len(idx)
        have = self._value.shape[1]
        if len(idx) > have:
            extra = max(len(idx), 2 * have) - have
            self._value = np.concatenate([self._value, np.full((2, extra), np.nan)], axis=1)
            self._ts = np.concatenate([self._ts, np.full((2, extra), -np.inf)], axis=1)
        return np.fromiter((idx[k] for k in keys), dtype=np.int64, count=len(keys))

    def ingest(self, keys: list[str], ts_s: np.ndarray, value: np.ndarray) -> int:
        """Add readings (any order); returns how many were kept. Readings older than both
        held ones, or repeating a held timestamp, are ignored and counted."""
        pos = self.indices(keys)
        ts_s = np.asarray(ts_s, dtype=float)
        value = np.asarray(value, dtype=float)
        order = np.lexsort((ts_s, pos))
        kept = 0
        # at most a few readings per series per batch: apply them rank by rank, oldest first
        pos, ts_s, value = pos[order], ts_s[order], value[order]
        while len(pos):
            first = np.r_[True, pos[1:] != pos[:-1]]
            kept += self._apply(pos[first], ts_s[first], value[first])
            pos, ts_s, value = pos[~first], ts_s[~first], value[~first]
        return kept

    def _apply(self, pos: np.ndarray, ts: np.ndarray, val: np.ndarray) -> int:
        t0, t1 = self._ts[0, pos], self._ts[1, pos]
        newest = ts > t0
        between = ~newest & (ts > t1) & (ts != t0)
        self.ignored_out_of_order += int((~newest & ~between).sum())
        p = pos[newest]
        self._value[1, p], self._ts[1, p] = self._value[0, p], self._ts[0, p]
        self._value[0, p], self._ts[0, p] = val[newest], ts[newest]
        p = pos[between]
        self._value[1, p], self._ts[1, p] = val[between], ts[between]
        return int(newest.sum() + between.sum())

    def snapshot(self, t_s: float) -> GridSnapshot:
        """Synchronised values at ``t_s`` (hold-last, with age and staleness per series)."""
        n = len(self._index)
        use_newest = self._ts[0, :n] <= t_s
        ts = np.where(use_newest, self._ts[0, :n], self._ts[1, :n])
        value = np.where(use_newest, self._value[0, :n], self._value[1, :n])
        missing = ~(np.isfinite(ts) & (ts <= t_s))
        value = np.where(missing, np.nan, value)
        age = np.where(missing, np.nan, t_s - ts)
        stale = missing | (age > self.stale_after_s)
        return GridSnapshot(t_s, list(self._index), value, ts, age, stale, missing)

    def step_time(self, now_s: float) -> float:
        """The step boundary at or before ``now_s``."""
        return math.floor(now_s / self.step_s) * self.step_s
