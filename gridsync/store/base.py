"""The store contract: meter/device time series, plans, events and an audit log.

Two implementations share it and one test suite: :class:`~gridsync.store.sqlite.SqliteStore`
(embedded default, stdlib ``sqlite3``) and :class:`~gridsync.store.postgres.PostgresStore`
(production: daily range partitions + BRIN, bulk COPY). Methods are synchronous; async callers
use ``asyncio.to_thread``. Timestamps cross the interface as UNIX seconds (float, UTC).

A time series is identified by ``(device_id, quantity)`` and carries its canonical unit.
Ingestion is idempotent per batch: ``write_readings(batch, batch_id)`` with a ``batch_id``
already stored writes nothing, so a redelivered bus message (the sink passes its message id)
is never stored twice. (SQLite additionally keeps one value per ``(series, timestamp)``;
PostgreSQL does not pay for that unique index, see its migration 2.)
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd


class StoreError(RuntimeError):
    """The store is unreachable or rejected an operation (message says which and why)."""


class StoreUnavailable(StoreError):
    """The store cannot be reached right now (a transient failure: retrying may succeed).
    Any other error means the data itself cannot be stored and retrying will not help."""


# timestamps both stores can hold: 0001-01-01 .. 9999-12-31 UTC (Python's datetime range)
TS_MIN_S, TS_MAX_S = -62_135_596_800.0, 253_402_300_799.0


def check_ts(s: float, what: str = "timestamp") -> float:
    """``s`` (UNIX seconds) as a float, or StoreError naming it when it is not finite or
    outside the storable range."""
    try:
        v = float(s)
    except (TypeError, ValueError, OverflowError):
        v = float("nan")
    if not TS_MIN_S <= v <= TS_MAX_S:  # NaN fails too
        shown = repr(float(s)) if isinstance(s, int | float | np.number) and v == v else repr(s)
        msg = f"{what}: {shown:.40} is not a UNIX time in seconds between years 1 and 9999"
        raise StoreError(msg)
    return v


@dataclass
class ReadingBatch:
    """Columnar readings: ``ts_s`` (UNIX seconds), ``device_id``, ``quantity``, ``unit``,
    ``value`` (all the same length)."""

    ts_s: np.ndarray
    device_id: np.ndarray
    quantity: np.ndarray
    unit: np.ndarray
    value: np.ndarray

    def __post_init__(self) -> None:
        self.ts_s = np.asarray(self.ts_s, dtype=float)
        self.value = np.asarray(self.value, dtype=float)
        self.device_id = np.asarray(self.device_id, dtype=object)
        self.quantity = np.asarray(self.quantity, dtype=object)
        self.unit = np.asarray(self.unit, dtype=object)
        n = {
            len(self.ts_s),
            len(self.device_id),
            len(self.quantity),
            len(self.unit),
            len(self.value),
        }
        if len(n) != 1:
            msg = "ReadingBatch: ts_s, device_id, quantity, unit and value differ in length"
            raise ValueError(msg)

    def __len__(self) -> int:
        return len(self.ts_s)

    def check_storable(self) -> None:
        """StoreError naming the first reading whose timestamp cannot be stored."""
        bad = ~((self.ts_s >= TS_MIN_S) & (self.ts_s <= TS_MAX_S))
        if bad.any():
            i = int(np.argmax(bad))
            check_ts(self.ts_s[i], f"readings[{i}].ts_s ({self.device_id[i]!r:.70})")

    @classmethod
    def concat(cls, batches: list[ReadingBatch]) -> ReadingBatch:
        cols = ("ts_s", "device_id", "quantity", "unit", "value")
        return cls(*(np.concatenate([getattr(b, c) for b in batches]) for c in cols))

    @classmethod
    def from_records(cls, records: list[dict[str, Any]]) -> ReadingBatch:
        """From dicts with keys ts_s, device_id, quantity, unit, value."""
        cols = {
            k: [r[k] for r in records] for k in ("ts_s", "device_id", "quantity", "unit", "value")
        }
        return cls(**cols)


READING_COLUMNS = ["ts", "device_id", "quantity", "unit", "value"]


class SeriesCache:
    """``(device_id, quantity) -> series id``, looked up column-wise: one pandas hash index
    of device ids per quantity, so a batch costs a few vectorised ``get_indexer`` calls
    instead of a dictionary lookup per reading."""

    def __init__(self) -> None:
        self._by_quantity: dict[str, tuple[pd.Index, np.ndarray]] = {}

    def clear(self) -> None:
        self._by_quantity.clear()

    def load(self, rows: list[tuple[str, str, int]]) -> None:
        """Replace the cache with all ``(device_id, quantity, id)`` rows of the series table."""
        frame = pd.DataFrame(rows, columns=["d", "q", "id"])
        self._by_quantity = {
            str(q): (pd.Index(g["d"].to_numpy(object)), g["id"].to_numpy(np.int64))
            for q, g in frame.groupby("q", sort=False)
        }

    def lookup(self, batch: ReadingBatch) -> np.ndarray:
        """Series id per reading, -1 where the series is not known yet."""
        out = np.full(len(batch), -1, dtype=np.int64)
        quantities = pd.unique(batch.quantity)
        for q in quantities:
            rows = slice(None) if len(quantities) == 1 else batch.quantity == q
            index, ids = self._by_quantity.get(q, (None, None))
            if index is None:
                continue
            pos = index.get_indexer(batch.device_id[rows])
            out[rows] = np.where(pos >= 0, ids[pos], -1)
        return out

    @staticmethod
    def missing(batch: ReadingBatch, sid: np.ndarray) -> list[tuple[str, str, str]]:
        """Distinct ``(device_id, quantity, unit)`` of the readings whose series is unknown."""
        new = sid < 0
        return list(
            dict.fromkeys(
                zip(
                    batch.device_id[new].tolist(),
                    batch.quantity[new].tolist(),
                    batch.unit[new].tolist(),
                    strict=True,
                )
            )
        )


def to_frame(rows: list[tuple]) -> pd.DataFrame:
    """(ts_s, device, quantity, unit, value) rows -> DataFrame with a UTC ``ts`` column."""
    df = pd.DataFrame(rows, columns=["ts_s", "device_id", "quantity", "unit", "value"])
    df.insert(0, "ts", pd.to_datetime(df.pop("ts_s").astype(float), unit="s", utc=True))
    return df


def json_safe(x: Any) -> Any:
    """``x`` with NaN/inf replaced by None (JSON and PostgreSQL jsonb have no such numbers)
    and numpy values as Python ones."""
    if isinstance(x, float):
        return x if np.isfinite(x) else None
    if isinstance(x, dict):
        return {k: json_safe(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [json_safe(v) for v in x]
    if isinstance(x, np.ndarray | np.generic):
        return json_safe(x.tolist())
    return x


def dumps(payload: Any) -> str:
    from gridsync.bus.base import encode

    return encode(payload).decode() if isinstance(payload, dict) else json.dumps(payload)


class Store(ABC):
    """Persistent history. See the module docstring for the semantics."""

    kind: str = "abstract"

    @abstractmethod
    def migrate(self) -> int:
        """Create or upgrade the schema; returns the schema version now in place."""

    @abstractmethod
    def close(self) -> None: ...

    @abstractmethod
    def write_readings(self, batch: ReadingBatch, batch_id: str | None = None) -> int:
        """Insert readings; returns how many were written (0 for an already stored
        ``batch_id``)."""

    def write_readings_many(self, items: list[tuple[ReadingBatch, str | None]]) -> int:
        """Several ``(batch, batch_id)`` at once (one transaction where the backend can);
        returns how many readings were written. Same idempotency as :meth:`write_readings`."""
        return sum(self.write_readings(b, bid) for b, bid in items)

    @abstractmethod
    def query_readings(
        self,
        device_id: str | None = None,
        quantity: str | None = None,
        start_s: float | None = None,
        end_s: float | None = None,
        limit: int = 10_000,
    ) -> pd.DataFrame:
        """Readings with ``start_s <= ts < end_s`` ordered by time (columns READING_COLUMNS)."""

    @abstractmethod
    def count_readings(self) -> int: ...

    @abstractmethod
    def put_plan(
        self,
        plan_id: str,
        created_s: float,
        source: str,
        payload: dict[str, Any],
        valid_from_s: float | None = None,
        valid_to_s: float | None = None,
    ) -> bool:
        """Store a plan once (False if ``plan_id`` exists already)."""

    @abstractmethod
    def has_plan(self, plan_id: str) -> bool:
        """Whether a plan with ``plan_id`` is stored."""

    @abstractmethod
    def plans(self, since_s: float | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """Plans newest first: dicts with plan_id, created_s, source, valid_from_s,
        valid_to_s, payload."""

    @abstractmethod
    def add_event(
        self,
        kind: str,
        message: str,
        *,
        severity: str = "info",
        source: str = "",
        payload: dict[str, Any] | None = None,
        ts_s: float | None = None,
    ) -> int:
        """Append an event (alert, fault, restart...); returns its id."""

    @abstractmethod
    def events(
        self, kind: str | None = None, since_s: float | None = None, limit: int = 100
    ) -> list[dict[str, Any]]:
        """Events newest first."""

    @abstractmethod
    def audit(
        self, actor: str, role: str, action: str, target: str = "", detail: dict | None = None
    ) -> int:
        """Append to the audit log (who did what to which object); returns its id."""

    @abstractmethod
    def put_override(self, asset_kind: str, index: int, override: dict[str, Any]) -> None:
        """Store (or replace) the operator override on one asset (its ``to_dict()``)."""

    @abstractmethod
    def delete_override(self, asset_kind: str, index: int) -> bool:
        """Remove an asset's override; False when there was none."""

    @abstractmethod
    def overrides(self) -> list[dict[str, Any]]:
        """The stored overrides, oldest first (restored by the console on start-up)."""

    @abstractmethod
    def audit_log(self, since_s: float | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """Audit entries newest first."""

    # -- model registry (``gridsync.learning.registry`` adds promotion rules and audit) -------
    @abstractmethod
    def put_model(self, name: str, meta: dict[str, Any], artifact: bytes, created_by: str) -> int:
        """Store a new version of model ``name`` (stage ``candidate``); returns its version
        number (1, 2, ... per name)."""

    @abstractmethod
    def models(self, name: str) -> list[dict[str, Any]]:
        """Versions of ``name``, newest first: version, created_s, stage, created_by, meta."""

    @abstractmethod
    def model_artifact(self, name: str, version: int) -> bytes:
        """The stored bytes of one version (StoreError when it does not exist)."""

    @abstractmethod
    def set_model_stage(self, name: str, version: int, stage: str) -> None:
        """Set the stage (``candidate``, ``live``, ``retired``, ``rejected``) of a version."""
