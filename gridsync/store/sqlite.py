"""Embedded store on stdlib ``sqlite3`` (WAL mode): the default for demos and tests."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from gridsync.store.base import (
    ReadingBatch,
    SeriesCache,
    Store,
    StoreError,
    check_ts,
    dumps,
    to_frame,
)

MIGRATIONS: list[list[str]] = [
    [
        "CREATE TABLE series (id INTEGER PRIMARY KEY, device_id TEXT NOT NULL,"
        " quantity TEXT NOT NULL, unit TEXT NOT NULL, UNIQUE (device_id, quantity))",
        "CREATE TABLE readings (series_id INTEGER NOT NULL REFERENCES series(id),"
        " ts_ms INTEGER NOT NULL, value REAL, PRIMARY KEY (series_id, ts_ms)) WITHOUT ROWID",
        "CREATE INDEX readings_ts ON readings (ts_ms)",
        "CREATE TABLE plans (plan_id TEXT PRIMARY KEY, created_s REAL NOT NULL,"
        " source TEXT NOT NULL, valid_from_s REAL, valid_to_s REAL, payload TEXT NOT NULL)",
        "CREATE INDEX plans_created ON plans (created_s)",
        "CREATE TABLE events (id INTEGER PRIMARY KEY AUTOINCREMENT, ts_s REAL NOT NULL,"
        " kind TEXT NOT NULL, severity TEXT NOT NULL, source TEXT NOT NULL,"
        " message TEXT NOT NULL, payload TEXT)",
        "CREATE INDEX events_ts ON events (ts_s)",
        "CREATE TABLE audit (id INTEGER PRIMARY KEY AUTOINCREMENT, ts_s REAL NOT NULL,"
        " actor TEXT NOT NULL, role TEXT NOT NULL, action TEXT NOT NULL,"
        " target TEXT NOT NULL, detail TEXT)",
    ],
    [
        "CREATE TABLE ingested_batches (batch_id TEXT PRIMARY KEY, ingested_s REAL NOT NULL,"
        " n INTEGER NOT NULL)",
    ],
    [
        "CREATE TABLE overrides (asset_kind TEXT NOT NULL, idx INTEGER NOT NULL,"
        " created_s REAL NOT NULL, payload TEXT NOT NULL, PRIMARY KEY (asset_kind, idx))",
    ],
    [
        "CREATE TABLE models (name TEXT NOT NULL, version INTEGER NOT NULL,"
        " created_s REAL NOT NULL, stage TEXT NOT NULL, created_by TEXT NOT NULL,"
        " meta TEXT NOT NULL, artifact BLOB NOT NULL, PRIMARY KEY (name, version))",
    ],
]


class SqliteStore(Store):
    """SQLite file (or ``":memory:"``). Thread-safe through one connection and a lock."""

    kind = "sqlite"

    def __init__(self, path: str | Path = ":memory:") -> None:
        self.path = str(path)
        try:
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        except sqlite3.Error as err:
            msg = f"cannot open SQLite store {self.path}: {err}"
            raise StoreError(msg) from err
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._lock = threading.Lock()
        self._series = SeriesCache()

    def migrate(self) -> int:
        with self._lock:
            db = self._db
            db.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY,"
                " applied_s REAL NOT NULL)"
            )
            have = db.execute("SELECT COALESCE(MAX(version), 0) FROM schema_migrations").fetchone()[
                0
            ]
            for version, statements in enumerate(MIGRATIONS, start=1):
                if version <= have:
                    continue
                db.execute("BEGIN")
                for stmt in statements:
                    db.execute(stmt)
                db.execute("INSERT INTO schema_migrations VALUES (?, ?)", (version, time.time()))
                db.execute("COMMIT")
            return len(MIGRATIONS)

    def close(self) -> None:
        self._db.close()

    def _series_ids(self, batch: ReadingBatch) -> np.ndarray:
        sid = self._series.lookup(batch)
        if (sid < 0).any():
            self._db.executemany(
                "INSERT OR IGNORE INTO series (device_id, quantity, unit) VALUES (?, ?, ?)",
                SeriesCache.missing(batch, sid),
            )
            self._series.load(
                self._db.execute("SELECT device_id, quantity, id FROM series").fetchall()
            )
            sid = self._series.lookup(batch)
        return sid

    def write_readings(self, batch: ReadingBatch, batch_id: str | None = None) -> int:
        return self.write_readings_many([(batch, batch_id)])

    def write_readings_many(self, items: list[tuple[ReadingBatch, str | None]]) -> int:
        items = [(b, bid) for b, bid in items if len(b)]
        if not items:
            return 0
        with self._lock:
            db = self._db
            db.execute("BEGIN")
            try:
                keep = []
                for b, bid in items:
                    if bid is not None:
                        cur = db.execute(
                            "INSERT OR IGNORE INTO ingested_batches VALUES (?, ?, ?)",
                            (bid, time.time(), len(b)),
                        )
                        if cur.rowcount == 0:  # stored before, or repeated in this call
                            continue
                    keep.append(b)
                n = 0
                if keep:
                    batch = keep[0] if len(keep) == 1 else ReadingBatch.concat(keep)
                    batch.check_storable()
                    sid = self._series_ids(batch)
                    ts_ms = np.round(batch.ts_s * 1000).astype(np.int64)
                    before = db.total_changes
                    db.executemany(
                        "INSERT OR IGNORE INTO readings (series_id, ts_ms, value) VALUES (?, ?, ?)",
                        zip(sid.tolist(), ts_ms.tolist(), batch.value.tolist(), strict=True),
                    )
                    n = db.total_changes - before
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
            return n

    def query_readings(
        self,
        device_id: str | None = None,
        quantity: str | None = None,
        start_s: float | None = None,
        end_s: float | None = None,
        limit: int = 10_000,
    ) -> pd.DataFrame:
        sql = (
            "SELECT r.ts_ms / 1000.0, s.device_id, s.quantity, s.unit, r.value"
            " FROM readings r JOIN series s ON s.id = r.series_id WHERE 1=1"
        )
        args: list[Any] = []
        if device_id is not None:
            sql += " AND s.device_id = ?"
            args.append(device_id)
        if quantity is not None:
            sql += " AND s.quantity = ?"
            args.append(quantity)
        if start_s is not None:
            sql += " AND r.ts_ms >= ?"
            args.append(int(round(start_s * 1000)))
        if end_s is not None:
            sql += " AND r.ts_ms < ?"
            args.append(int(round(end_s * 1000)))
        sql += " ORDER BY r.ts_ms, s.device_id, s.quantity LIMIT ?"
        args.append(int(limit))
        with self._lock:
            rows = self._db.execute(sql, args).fetchall()
        return to_frame(rows)

    def count_readings(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM readings").fetchone()[0]

    def put_plan(
        self, plan_id, created_s, source, payload, valid_from_s=None, valid_to_s=None
    ) -> bool:
        created_s = check_ts(created_s, "created_s")
        valid = [None if v is None else check_ts(v, k) for k, v in
                 (("valid_from_s", valid_from_s), ("valid_to_s", valid_to_s))]  # fmt: skip
        with self._lock:
            cur = self._db.execute(
                "INSERT OR IGNORE INTO plans VALUES (?, ?, ?, ?, ?, ?)",
                (plan_id, created_s, source, *valid, dumps(payload)),
            )
            return cur.rowcount == 1

    def has_plan(self, plan_id: str) -> bool:
        with self._lock:
            row = self._db.execute("SELECT 1 FROM plans WHERE plan_id = ?", (plan_id,)).fetchone()
        return row is not None

    def plans(self, since_s=None, limit=100) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._db.execute(
                "SELECT plan_id, created_s, source, valid_from_s, valid_to_s, payload FROM plans"
                " WHERE created_s >= ? ORDER BY created_s DESC LIMIT ?",
                (since_s if since_s is not None else -1e18, int(limit)),
            ).fetchall()
        keys = ("plan_id", "created_s", "source", "valid_from_s", "valid_to_s", "payload")
        return [dict(zip(keys, (*r[:5], json.loads(r[5])), strict=True)) for r in rows]

    def add_event(
        self, kind, message, *, severity="info", source="", payload=None, ts_s=None
    ) -> int:
        with self._lock:
            cur = self._db.execute(
                "INSERT INTO events (ts_s, kind, severity, source, message, payload)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (ts_s or time.time(), kind, severity, source, message, dumps(payload or {})),
            )
            return int(cur.lastrowid)

    def events(self, kind=None, since_s=None, limit=100) -> list[dict[str, Any]]:
        sql = (
            "SELECT id, ts_s, kind, severity, source, message, payload FROM events WHERE ts_s >= ?"
        )
        args: list[Any] = [since_s if since_s is not None else -1e18]
        if kind is not None:
            sql += " AND kind = ?"
            args.append(kind)
        sql += " ORDER BY id DESC LIMIT ?"
        args.append(int(limit))
        with self._lock:
            rows = self._db.execute(sql, args).fetchall()
        keys = ("id", "ts_s", "kind", "severity", "source", "message", "payload")
        return [dict(zip(keys, (*r[:6], json.loads(r[6] or "{}")), strict=True)) for r in rows]

    def audit(self, actor, role, action, target="", detail=None) -> int:
        with self._lock:
            cur = self._db.execute(
                "INSERT INTO audit (ts_s, actor, role, action, target, detail) VALUES (?, ?, ?, ?, ?, ?)",
                (time.time(), actor, role, action, target, dumps(detail or {})),
            )
            return int(cur.lastrowid)

    def put_override(self, asset_kind: str, index: int, override: dict[str, Any]) -> None:
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO overrides VALUES (?, ?, ?, ?)",
                (asset_kind, int(index), time.time(), dumps(override)),
            )

    def delete_override(self, asset_kind: str, index: int) -> bool:
        with self._lock:
            cur = self._db.execute(
                "DELETE FROM overrides WHERE asset_kind = ? AND idx = ?", (asset_kind, int(index))
            )
            return cur.rowcount == 1

    def overrides(self) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._db.execute("SELECT payload FROM overrides ORDER BY created_s").fetchall()
        return [json.loads(r[0]) for r in rows]

    def audit_log(self, since_s=None, limit=100) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._db.execute(
                "SELECT id, ts_s, actor, role, action, target, detail FROM audit"
                " WHERE ts_s >= ? ORDER BY id DESC LIMIT ?",
                (since_s if since_s is not None else -1e18, int(limit)),
            ).fetchall()
        keys = ("id", "ts_s", "actor", "role", "action", "target", "detail")
        return [dict(zip(keys, (*r[:6], json.loads(r[6] or "{}")), strict=True)) for r in rows]

    def put_model(self, name, meta, artifact, created_by) -> int:
        with self._lock:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                version = db.execute(
                    "SELECT COALESCE(MAX(version), 0) + 1 FROM models WHERE name = ?", (name,)
                ).fetchone()[0]
                db.execute(
                    "INSERT INTO models VALUES (?, ?, ?, 'candidate', ?, ?, ?)",
                    (name, version, time.time(), created_by, dumps(meta), bytes(artifact)),
                )
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
            return int(version)

    def models(self, name) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._db.execute(
                "SELECT version, created_s, stage, created_by, meta FROM models"
                " WHERE name = ? ORDER BY version DESC",
                (name,),
            ).fetchall()
        keys = ("version", "created_s", "stage", "created_by", "meta")
        return [dict(zip(keys, (*r[:4], json.loads(r[4])), strict=True)) for r in rows]

    def model_artifact(self, name, version) -> bytes:
        with self._lock:
            row = self._db.execute(
                "SELECT artifact FROM models WHERE name = ? AND version = ?", (name, int(version))
            ).fetchone()
        if row is None:
            raise StoreError(f"model {name!r} version {version}: not in the registry")
        return bytes(row[0])

    def set_model_stage(self, name, version, stage) -> None:
        with self._lock:
            cur = self._db.execute(
                "UPDATE models SET stage = ? WHERE name = ? AND version = ?",
                (stage, name, int(version)),
            )
        if cur.rowcount != 1:
            raise StoreError(f"model {name!r} version {version}: not in the registry")
