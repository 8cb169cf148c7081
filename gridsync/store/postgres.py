"""PostgreSQL store (psycopg 3): readings in daily range partitions with a BRIN index on time,
bulk ingestion by binary ``COPY`` built with numpy (idempotent per ``batch_id``: a redelivered
message is skipped whole). Everything lives in one schema (``gridsync`` by default; tests
use a throw-away one), selected by ``search_path``; all values travel as query parameters.
"""

from __future__ import annotations

import json
import re
import threading
import time
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
import psycopg
from psycopg import sql

from gridsync.bus.base import _default, encode
from gridsync.store.base import (
    ReadingBatch,
    SeriesCache,
    Store,
    StoreError,
    StoreUnavailable,
    check_ts,
    json_safe,
    to_frame,
)

_SCHEMA_RE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
DAY_MS = 86_400_000

MIGRATIONS: list[list[str]] = [
    [
        "CREATE TABLE series (id serial PRIMARY KEY, device_id text NOT NULL,"
        " quantity text NOT NULL, unit text NOT NULL, UNIQUE (device_id, quantity))",
        "CREATE TABLE readings (series_id integer NOT NULL, ts timestamptz NOT NULL,"
        " value double precision, PRIMARY KEY (series_id, ts)) PARTITION BY RANGE (ts)",
        "CREATE INDEX readings_ts_brin ON readings USING brin (ts)",
        "CREATE TABLE plans (plan_id text PRIMARY KEY, created timestamptz NOT NULL,"
        " source text NOT NULL, valid_from timestamptz, valid_to timestamptz,"
        " payload jsonb NOT NULL)",
        "CREATE INDEX plans_created ON plans (created)",
        "CREATE TABLE events (id bigserial PRIMARY KEY, ts timestamptz NOT NULL,"
        " kind text NOT NULL, severity text NOT NULL, source text NOT NULL,"
        " message text NOT NULL, payload jsonb)",
        "CREATE INDEX events_ts_brin ON events USING brin (ts)",
        "CREATE TABLE audit (id bigserial PRIMARY KEY, ts timestamptz NOT NULL,"
        " actor text NOT NULL, role text NOT NULL, action text NOT NULL,"
        " target text NOT NULL, detail jsonb)",
    ],
    [
        # idempotency per ingested message instead of per reading: a unique btree on
        # (series, ts) cost ~4x the ingestion throughput; BRIN on ts remains for range scans
        "ALTER TABLE readings DROP CONSTRAINT readings_pkey",
        "CREATE INDEX readings_series_brin ON readings USING brin (series_id)",
        "CREATE TABLE ingested_batches (batch_id text PRIMARY KEY,"
        " ingested timestamptz NOT NULL DEFAULT now(), n integer NOT NULL)",
    ],
    [
        "CREATE TABLE overrides (asset_kind text NOT NULL, idx integer NOT NULL,"
        " created timestamptz NOT NULL DEFAULT now(), payload jsonb NOT NULL,"
        " PRIMARY KEY (asset_kind, idx))",
    ],
    [
        "CREATE TABLE models (name text NOT NULL, version integer NOT NULL,"
        " created timestamptz NOT NULL DEFAULT now(), stage text NOT NULL,"
        " created_by text NOT NULL, meta jsonb NOT NULL, artifact bytea NOT NULL,"
        " PRIMARY KEY (name, version))",
    ],
]


# COPY binary format: one row = field count, then (length, big-endian value) per field;
# a NULL value has length -1 and no bytes, so rows with NaN use the shorter layout
_COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + bytes(8)
_COPY_TRAILER = b"\xff\xff"
_PG_EPOCH_MS = 946_684_800_000  # 2000-01-01, PostgreSQL's timestamp origin
_ROW = np.dtype(
    [
        ("n", ">i2"),
        ("l1", ">i4"),
        ("sid", ">i4"),
        ("l2", ">i4"),
        ("ts", ">i8"),
        ("l3", ">i4"),
        ("v", ">f8"),
    ]
)
_ROW_NULL = np.dtype(
    [("n", ">i2"), ("l1", ">i4"), ("sid", ">i4"), ("l2", ">i4"), ("ts", ">i8"), ("l3", ">i4")]
)


def copy_binary(series_id: np.ndarray, ts_ms: np.ndarray, value: np.ndarray) -> bytes:
    """``COPY ... (FORMAT binary)`` payload for (integer, timestamptz, float8) rows, built
    with numpy in one pass (NaN values become NULL)."""
    ok = np.isfinite(value)
    parts = [_COPY_HEADER]
    for dtype, rows in ((_ROW, ok), (_ROW_NULL, ~ok)):
        n = int(rows.sum())
        if n == 0:
            continue
        rec = np.empty(n, dtype)
        rec["n"], rec["l1"], rec["sid"], rec["l2"] = 3, 4, series_id[rows], 8
        rec["ts"] = (ts_ms[rows] - _PG_EPOCH_MS) * 1000  # microseconds
        if dtype is _ROW:
            rec["l3"], rec["v"] = 8, value[rows]
        else:
            rec["l3"] = -1
        parts.append(rec.tobytes())
    parts.append(_COPY_TRAILER)
    return b"".join(parts)


def _json(payload: dict[str, Any]) -> str:
    """JSON text for a jsonb column; PostgreSQL text cannot hold NUL, so an escaped NUL
    (e.g. from a hostile payload quoted in a dead letter) is stored as U+FFFD, and jsonb
    has no NaN or infinity, so those are stored as null."""
    try:
        text = json.dumps(payload, default=_default, allow_nan=False, separators=(",", ":"))
    except ValueError:
        text = encode(json_safe(payload)).decode()
    return text.replace("\\u0000", "\\ufffd")


def _text(s: str) -> str:
    """PostgreSQL text cannot hold NUL: stored as U+FFFD."""
    return s.replace("\x00", "\ufffd")


def _ts(s: float | None, what: str = "timestamp") -> datetime | None:
    return None if s is None else datetime.fromtimestamp(check_ts(s, what), UTC)


def _s(dt: datetime | None) -> float | None:
    return None if dt is None else dt.timestamp()


class PostgresStore(Store):
    """One connection (autocommit off, explicit transactions), re-opened after a failure."""

    kind = "postgres"

    def __init__(self, dsn: str, schema: str = "gridsync", connect_timeout_s: int = 3) -> None:
        if not _SCHEMA_RE.match(schema):
            msg = f"schema {schema!r}: expected lower-case letters, digits and _ (max 63)"
            raise StoreError(msg)
        self.dsn, self.schema, self.connect_timeout_s = dsn, schema, connect_timeout_s
        self._conn: psycopg.Connection | None = None
        self._lock = threading.Lock()
        self._series = SeriesCache()
        self._partitions: set[int] = set()

    def _connect(self) -> psycopg.Connection:
        if self._conn is not None and not self._conn.closed and not self._conn.broken:
            return self._conn
        try:
            conn = psycopg.connect(self.dsn, connect_timeout=self.connect_timeout_s)
        except psycopg.OperationalError as err:
            msg = f"cannot reach PostgreSQL ({err})".strip()
            raise StoreUnavailable(msg) from err
        with conn.transaction():
            conn.execute(
                sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(self.schema))
            )
            conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(self.schema)))
        self._conn = conn
        self._partitions.clear()
        return conn

    def _run(self, fn):
        """Run ``fn(conn)`` in a transaction; connection failures become StoreError."""
        with self._lock:
            conn = self._connect()
            try:
                with conn.transaction():
                    return fn(conn)
            except psycopg.OperationalError as err:
                conn.close()
                self._conn = None
                msg = f"PostgreSQL operation failed: {err}"
                raise StoreUnavailable(msg) from err

    def migrate(self) -> int:
        def apply(conn: psycopg.Connection) -> int:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY,"
                " applied timestamptz NOT NULL DEFAULT now())"
            )
            conn.execute("LOCK TABLE schema_migrations IN EXCLUSIVE MODE")
            have = conn.execute(
                "SELECT COALESCE(MAX(version), 0) FROM schema_migrations"
            ).fetchone()[0]
            for version, statements in enumerate(MIGRATIONS, start=1):
                if version > have:
                    for stmt in statements:
                        conn.execute(stmt)
                    conn.execute("INSERT INTO schema_migrations (version) VALUES (%s)", (version,))
            return len(MIGRATIONS)

        return self._run(apply)

    def drop_schema(self) -> None:
        """Delete the whole schema (test clean-up)."""
        self._run(
            lambda c: c.execute(
                sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(self.schema))
            )
        )
        self._series.clear()

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _ensure_partitions(self, conn: psycopg.Connection, days: np.ndarray) -> None:
        for day in (int(d) for d in np.unique(days)):
            if day in self._partitions:
                continue
            name = sql.Identifier(f"readings_d{day}")
            conn.execute(
                sql.SQL(
                    "CREATE TABLE IF NOT EXISTS {} PARTITION OF readings FOR VALUES FROM ({}) TO ({})"
                ).format(
                    name, sql.Literal(_ts(day * 86400.0)), sql.Literal(_ts((day + 1) * 86400.0))
                )
            )
            self._partitions.add(day)

    def _series_ids(self, conn: psycopg.Connection, batch: ReadingBatch) -> np.ndarray:
        sid = self._series.lookup(batch)
        if (sid < 0).any():
            with conn.cursor() as cur:
                cur.executemany(
                    "INSERT INTO series (device_id, quantity, unit) VALUES (%s, %s, %s)"
                    " ON CONFLICT (device_id, quantity) DO NOTHING",
                    SeriesCache.missing(batch, sid),
                )
            self._series.load(conn.execute("SELECT device_id, quantity, id FROM series").fetchall())
            sid = self._series.lookup(batch)
        return sid

    def write_readings(self, batch: ReadingBatch, batch_id: str | None = None) -> int:
        return self.write_readings_many([(batch, batch_id)])

    def write_readings_many(self, items: list[tuple[ReadingBatch, str | None]]) -> int:
        items = [(b, bid) for b, bid in items if len(b)]
        if not items:
            return 0

        def write(conn: psycopg.Connection) -> int:
            ids = list(dict.fromkeys(bid for _, bid in items if bid is not None))
            new: set[str] = set()
            if ids:
                sizes = {bid: len(b) for b, bid in items if bid is not None}
                rows = conn.execute(
                    "INSERT INTO ingested_batches (batch_id, n)"
                    " SELECT * FROM unnest(%s::text[], %s::integer[])"
                    " ON CONFLICT DO NOTHING RETURNING batch_id",
                    (ids, [sizes[i] for i in ids]),
                ).fetchall()
                new = {r[0] for r in rows}
            keep = []
            for b, bid in items:
                if bid is None:
                    keep.append(b)
                elif bid in new:  # first occurrence only
                    keep.append(b)
                    new.discard(bid)
            if not keep:
                return 0
            batch = keep[0] if len(keep) == 1 else ReadingBatch.concat(keep)
            batch.check_storable()
            ts_ms = np.round(batch.ts_s * 1000).astype(np.int64)
            sid = self._series_ids(conn, batch)
            self._ensure_partitions(conn, ts_ms // DAY_MS)
            with conn.cursor().copy(
                "COPY readings (series_id, ts, value) FROM STDIN (FORMAT binary)"
            ) as cp:
                cp.write(copy_binary(sid, ts_ms, batch.value))
            return len(batch)

        return self._run(write)

    def query_readings(
        self, device_id=None, quantity=None, start_s=None, end_s=None, limit=10_000
    ) -> pd.DataFrame:
        q = (
            "SELECT extract(epoch FROM r.ts)::float8, s.device_id, s.quantity, s.unit, r.value"
            " FROM readings r JOIN series s ON s.id = r.series_id"
            " WHERE (%(d)s::text IS NULL OR s.device_id = %(d)s)"
            " AND (%(q)s::text IS NULL OR s.quantity = %(q)s)"
            " AND (%(a)s::timestamptz IS NULL OR r.ts >= %(a)s)"
            " AND (%(b)s::timestamptz IS NULL OR r.ts < %(b)s)"
            " ORDER BY r.ts, s.device_id, s.quantity LIMIT %(n)s"
        )
        args = {"d": device_id, "q": quantity, "a": _ts(start_s), "b": _ts(end_s), "n": int(limit)}
        rows = self._run(lambda c: c.execute(q, args).fetchall())
        return to_frame(rows)

    def count_readings(self) -> int:
        return self._run(lambda c: c.execute("SELECT count(*) FROM readings").fetchone()[0])

    def put_plan(
        self, plan_id, created_s, source, payload, valid_from_s=None, valid_to_s=None
    ) -> bool:
        def put(conn):
            cur = conn.execute(
                "INSERT INTO plans VALUES (%s, %s, %s, %s, %s, %s::jsonb) ON CONFLICT DO NOTHING",
                (
                    _text(plan_id),
                    _ts(created_s, "created_s"),
                    _text(source),
                    _ts(valid_from_s, "valid_from_s"),
                    _ts(valid_to_s, "valid_to_s"),
                    _json(payload),
                ),
            )
            return cur.rowcount == 1

        return self._run(put)

    def has_plan(self, plan_id: str) -> bool:
        return self._run(
            lambda c: (
                c.execute("SELECT 1 FROM plans WHERE plan_id = %s", (plan_id,)).fetchone()
                is not None
            )
        )

    def plans(self, since_s=None, limit=100) -> list[dict[str, Any]]:
        rows = self._run(
            lambda c: c.execute(
                "SELECT plan_id, created, source, valid_from, valid_to, payload FROM plans"
                " WHERE (%(a)s::timestamptz IS NULL OR created >= %(a)s)"
                " ORDER BY created DESC LIMIT %(n)s",
                {"a": _ts(since_s), "n": int(limit)},
            ).fetchall()
        )
        return [
            {
                "plan_id": r[0],
                "created_s": _s(r[1]),
                "source": r[2],
                "valid_from_s": _s(r[3]),
                "valid_to_s": _s(r[4]),
                "payload": r[5],
            }
            for r in rows
        ]

    def add_event(
        self, kind, message, *, severity="info", source="", payload=None, ts_s=None
    ) -> int:
        return self._run(
            lambda c: c.execute(
                "INSERT INTO events (ts, kind, severity, source, message, payload)"
                " VALUES (%s, %s, %s, %s, %s, %s::jsonb) RETURNING id",
                (
                    _ts(ts_s or time.time()),
                    _text(kind),
                    _text(severity),
                    _text(source),
                    _text(message),
                    _json(payload or {}),
                ),
            ).fetchone()[0]
        )

    def events(self, kind=None, since_s=None, limit=100) -> list[dict[str, Any]]:
        rows = self._run(
            lambda c: c.execute(
                "SELECT id, ts, kind, severity, source, message, payload FROM events"
                " WHERE (%(k)s::text IS NULL OR kind = %(k)s)"
                " AND (%(a)s::timestamptz IS NULL OR ts >= %(a)s) ORDER BY id DESC LIMIT %(n)s",
                {"k": kind, "a": _ts(since_s), "n": int(limit)},
            ).fetchall()
        )
        keys = ("id", "ts_s", "kind", "severity", "source", "message", "payload")
        return [dict(zip(keys, (r[0], _s(r[1]), *r[2:6], r[6] or {}), strict=True)) for r in rows]

    def audit(self, actor, role, action, target="", detail=None) -> int:
        return self._run(
            lambda c: c.execute(
                "INSERT INTO audit (ts, actor, role, action, target, detail)"
                " VALUES (now(), %s, %s, %s, %s, %s::jsonb) RETURNING id",
                (*map(_text, (actor, role, action, target)), _json(detail or {})),
            ).fetchone()[0]
        )

    def put_override(self, asset_kind: str, index: int, override: dict[str, Any]) -> None:
        self._run(
            lambda c: c.execute(
                "INSERT INTO overrides (asset_kind, idx, payload) VALUES (%s, %s, %s::jsonb)"
                " ON CONFLICT (asset_kind, idx) DO UPDATE SET payload = EXCLUDED.payload,"
                " created = now()",
                (_text(asset_kind), int(index), _json(override)),
            )
        )

    def delete_override(self, asset_kind: str, index: int) -> bool:
        return self._run(
            lambda c: (
                c.execute(
                    "DELETE FROM overrides WHERE asset_kind = %s AND idx = %s",
                    (_text(asset_kind), int(index)),
                ).rowcount
                == 1
            )
        )

    def overrides(self) -> list[dict[str, Any]]:
        rows = self._run(
            lambda c: c.execute("SELECT payload FROM overrides ORDER BY created").fetchall()
        )
        return [r[0] for r in rows]

    def audit_log(self, since_s=None, limit=100) -> list[dict[str, Any]]:
        rows = self._run(
            lambda c: c.execute(
                "SELECT id, ts, actor, role, action, target, detail FROM audit"
                " WHERE (%(a)s::timestamptz IS NULL OR ts >= %(a)s) ORDER BY id DESC LIMIT %(n)s",
                {"a": _ts(since_s), "n": int(limit)},
            ).fetchall()
        )
        keys = ("id", "ts_s", "actor", "role", "action", "target", "detail")
        return [dict(zip(keys, (r[0], _s(r[1]), *r[2:6], r[6] or {}), strict=True)) for r in rows]

    def put_model(self, name, meta, artifact, created_by) -> int:
        def insert(c: psycopg.Connection) -> int:
            c.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (name,))
            version = c.execute(
                "SELECT COALESCE(MAX(version), 0) + 1 FROM models WHERE name = %s", (name,)
            ).fetchone()[0]
            c.execute(
                "INSERT INTO models (name, version, stage, created_by, meta, artifact)"
                " VALUES (%s, %s, 'candidate', %s, %s::jsonb, %s)",
                (_text(name), version, _text(created_by), _json(meta), bytes(artifact)),
            )
            return int(version)

        return self._run(insert)

    def models(self, name) -> list[dict[str, Any]]:
        rows = self._run(
            lambda c: c.execute(
                "SELECT version, created, stage, created_by, meta FROM models"
                " WHERE name = %s ORDER BY version DESC",
                (_text(name),),
            ).fetchall()
        )
        return [
            {
                "version": r[0],
                "created_s": _s(r[1]),
                "stage": r[2],
                "created_by": r[3],
                "meta": r[4],
            }
            for r in rows
        ]

    def model_artifact(self, name, version) -> bytes:
        row = self._run(
            lambda c: c.execute(
                "SELECT artifact FROM models WHERE name = %s AND version = %s",
                (_text(name), int(version)),
            ).fetchone()
        )
        if row is None:
            raise StoreError(f"model {name!r} version {version}: not in the registry")
        return bytes(row[0])

    def set_model_stage(self, name, version, stage) -> None:
        n = self._run(
            lambda c: (
                c.execute(
                    "UPDATE models SET stage = %s WHERE name = %s AND version = %s",
                    (stage, _text(name), int(version)),
                ).rowcount
            )
        )
        if n != 1:
            raise StoreError(f"model {name!r} version {version}: not in the registry")
