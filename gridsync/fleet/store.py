"""The fleet's store: every feeder's executed plans and telemetry, and its last loop state.

One table of plans and one of telemetry, keyed by (feeder, step time): a step is committed
with its feeder's checkpoint in ONE transaction, and a plan already stored for that key is
kept (``ON CONFLICT DO NOTHING``), so a worker that dies between computing and committing a
step, or that repeats a step after a restart, neither loses nor duplicates a plan; the
restarted feeder continues from the checkpoint committed with its last stored plan.

``SqliteFleetStore`` (the embedded default: one file, WAL, shared by the worker processes of
one machine) and ``PostgresFleetStore`` (plans and telemetry partitioned per day, each day
partitioned per feeder, created on first write; checkpoints in one table keyed by feeder).
"""

from __future__ import annotations

import json
import re
import sqlite3
import threading
from abc import ABC, abstractmethod
from datetime import datetime, timedelta

import pandas as pd

from gridsync.bus.base import _default
from gridsync.fleet.feeder import StepOutput

_SCHEMA_RE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


class FleetStoreError(RuntimeError):
    """The fleet store cannot be reached or rejected an operation."""


def _payload(out: StepOutput) -> tuple[str, str]:
    plan = {**out.plan, "planned_import_kw": out.planned_import_kw}
    return (
        json.dumps(plan, default=_default, separators=(",", ":")),
        json.dumps(out.telemetry, default=_default, separators=(",", ":")),
    )


class FleetStore(ABC):
    """Plans, telemetry and checkpoints of every feeder (see module doc)."""

    kind = "abstract"

    @abstractmethod
    def migrate(self) -> None:
        """Create the tables if missing (idempotent)."""

    @abstractmethod
    def commit_step(self, out: StepOutput, checkpoint: bytes) -> bool:
        """Store ``out``'s plan and telemetry and the feeder's checkpoint atomically; False
        when a plan for (feeder, step) was already stored (then nothing changes)."""

    @abstractmethod
    def last_checkpoint(self, feeder_id: str) -> tuple[int, bytes] | None:
        """(step, checkpoint bytes) of the feeder's last committed step, or None."""

    @abstractmethod
    def plan_steps(self) -> pd.DataFrame:
        """Every stored plan's (feeder_id, step, status, replanned), ordered."""

    @abstractmethod
    def feeders(self) -> pd.DataFrame:
        """One row per feeder: last step and time, steps stored, last feeder kW, voltage
        envelope and plan status (what the console lists)."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""


class SqliteFleetStore(FleetStore):
    """SQLite file (``:memory:`` for a single process); one connection per thread."""

    kind = "sqlite"

    def __init__(self, path: str = ":memory:") -> None:
        self.path = str(path)
        self._local = threading.local()
        self._memory = None

    def _conn(self) -> sqlite3.Connection:
        if self.path == ":memory:":
            if self._memory is None:
                self._memory = sqlite3.connect(":memory:", check_same_thread=False)
            return self._memory
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=60.0)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            self._local.conn = conn
        return conn

    def migrate(self) -> None:
        c = self._conn()
        with c:
            c.execute(
                "CREATE TABLE IF NOT EXISTS fleet_plan (feeder_id TEXT NOT NULL, step INTEGER"
                " NOT NULL, ts TEXT NOT NULL, status TEXT NOT NULL, replanned INTEGER NOT NULL,"
                " payload TEXT NOT NULL, PRIMARY KEY (feeder_id, step))"
            )
            c.execute(
                "CREATE TABLE IF NOT EXISTS fleet_telemetry (feeder_id TEXT NOT NULL, step"
                " INTEGER NOT NULL, ts TEXT NOT NULL, feeder_kw REAL, payload TEXT NOT NULL,"
                " PRIMARY KEY (feeder_id, step))"
            )
            c.execute(
                "CREATE TABLE IF NOT EXISTS fleet_checkpoint (feeder_id TEXT PRIMARY KEY,"
                " step INTEGER NOT NULL, state BLOB NOT NULL)"
            )

    def commit_step(self, out: StepOutput, checkpoint: bytes) -> bool:
        plan, tel = _payload(out)
        c = self._conn()
        with c:
            cur = c.execute(
                "INSERT OR IGNORE INTO fleet_plan VALUES (?, ?, ?, ?, ?, ?)",
                (out.feeder_id, out.step, out.time, out.plan["status"],
                 int(out.plan["replanned"]), plan),
            )  # fmt: skip
            if cur.rowcount == 0:
                return False
            c.execute(
                "INSERT OR IGNORE INTO fleet_telemetry VALUES (?, ?, ?, ?, ?)",
                (out.feeder_id, out.step, out.time, out.telemetry["feeder_kw"], tel),
            )
            c.execute(
                "INSERT INTO fleet_checkpoint VALUES (?, ?, ?) ON CONFLICT (feeder_id) DO"
                " UPDATE SET step = excluded.step, state = excluded.state",
                (out.feeder_id, out.step, checkpoint),
            )
        return True

    def last_checkpoint(self, feeder_id: str) -> tuple[int, bytes] | None:
        row = (
            self._conn()
            .execute("SELECT step, state FROM fleet_checkpoint WHERE feeder_id = ?", (feeder_id,))
            .fetchone()
        )
        return None if row is None else (int(row[0]), bytes(row[1]))

    def plan_steps(self) -> pd.DataFrame:
        rows = self._conn().execute(
            "SELECT feeder_id, step, status, replanned FROM fleet_plan ORDER BY feeder_id, step"
        )
        return pd.DataFrame(rows.fetchall(), columns=["feeder_id", "step", "status", "replanned"])

    def feeders(self) -> pd.DataFrame:
        rows = self._conn().execute(
            "SELECT p.feeder_id, n.steps, p.step, p.ts, p.status, t.payload FROM fleet_plan p"
            " JOIN (SELECT feeder_id, MAX(step) AS last, COUNT(*) AS steps FROM fleet_plan"
            " GROUP BY feeder_id) n ON n.feeder_id = p.feeder_id AND n.last = p.step"
            " JOIN fleet_telemetry t ON t.feeder_id = p.feeder_id AND t.step = p.step"
            " ORDER BY p.feeder_id"
        )
        return _feeder_frame(rows.fetchall())

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None
        if self._memory is not None:
            self._memory.close()
            self._memory = None


def _feeder_frame(rows) -> pd.DataFrame:
    out = []
    for feeder_id, steps, step, ts, status, tel in rows:
        t = json.loads(tel) if isinstance(tel, str) else tel
        out.append(
            {
                "feeder_id": feeder_id,
                "steps_stored": int(steps),
                "last_step": int(step),
                "last_time": str(ts),
                "plan_status": status,
                "feeder_kw": t.get("feeder_kw"),
                "vm_min_pu": t.get("vm_min_pu"),
                "vm_max_pu": t.get("vm_max_pu"),
                "max_loading_pct": t.get("max_loading_pct"),
            }
        )
    cols = ["feeder_id", "steps_stored", "last_step", "last_time", "plan_status", "feeder_kw",
            "vm_min_pu", "vm_max_pu", "max_loading_pct"]  # fmt: skip
    return pd.DataFrame(out, columns=cols)


class PostgresFleetStore(FleetStore):
    """PostgreSQL: ``fleet_plan`` and ``fleet_telemetry`` range-partitioned per day of the
    step time, each day list-partitioned per feeder (``<table>_dYYYYMMDD_<feeder>``)."""

    kind = "postgres"

    def __init__(self, dsn: str, schema: str = "gridsync_fleet") -> None:
        if not _SCHEMA_RE.match(schema):
            msg = f"schema {schema!r}: expected lower-case letters, digits and _"
            raise FleetStoreError(msg)
        self.dsn, self.schema = dsn, schema
        self._local = threading.local()
        self._parts: set[str] = set()

    def _conn(self):
        import psycopg

        conn = getattr(self._local, "conn", None)
        if conn is None or conn.closed:
            try:
                conn = psycopg.connect(self.dsn, connect_timeout=5, autocommit=False)
            except psycopg.OperationalError as err:
                msg = f"cannot reach PostgreSQL at {self.dsn}: {err}"
                raise FleetStoreError(msg) from err
            conn.execute(f"CREATE SCHEMA IF NOT EXISTS {self.schema}")
            conn.execute(f"SET search_path TO {self.schema}")
            conn.commit()
            self._local.conn = conn
        return conn

    def migrate(self) -> None:
        c = self._conn()
        with c.transaction():
            c.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (self.schema + ".migrate",))
            c.execute(
                "CREATE TABLE IF NOT EXISTS fleet_plan (feeder_id text NOT NULL, step integer"
                " NOT NULL, ts timestamp NOT NULL, status text NOT NULL, replanned boolean NOT"
                " NULL, payload jsonb NOT NULL, PRIMARY KEY (feeder_id, ts))"
                " PARTITION BY RANGE (ts)"
            )
            c.execute(
                "CREATE TABLE IF NOT EXISTS fleet_telemetry (feeder_id text NOT NULL, step"
                " integer NOT NULL, ts timestamp NOT NULL, feeder_kw double precision,"
                " payload jsonb NOT NULL, PRIMARY KEY (feeder_id, ts)) PARTITION BY RANGE (ts)"
            )
            c.execute(
                "CREATE TABLE IF NOT EXISTS fleet_checkpoint (feeder_id text PRIMARY KEY,"
                " step integer NOT NULL, state bytea NOT NULL)"
            )
        c.commit()

    def _partition(self, c, table: str, day: datetime, feeder_id: str) -> None:
        """Create the day partition of ``table`` and the feeder's partition in it."""
        day_part = f"{table}_d{day:%Y%m%d}"
        leaf = f"{day_part}_{feeder_id.replace('-', '_')}"
        if leaf in self._parts:
            return
        c.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"{self.schema}.{day_part}",))
        lo, hi = day.strftime("%Y-%m-%d"), (day + timedelta(days=1)).strftime("%Y-%m-%d")
        c.execute(
            f"CREATE TABLE IF NOT EXISTS {day_part} PARTITION OF {table} FOR VALUES FROM"
            f" ('{lo}') TO ('{hi}') PARTITION BY LIST (feeder_id)"
        )
        c.execute(
            f"CREATE TABLE IF NOT EXISTS {leaf} PARTITION OF {day_part}"
            f" FOR VALUES IN ('{feeder_id}')"
        )
        self._parts.add(leaf)

    def commit_step(self, out: StepOutput, checkpoint: bytes) -> bool:
        plan, tel = _payload(out)
        ts = pd.Timestamp(out.time).to_pydatetime()
        day = datetime(ts.year, ts.month, ts.day)
        c = self._conn()
        try:
            with c.transaction():
                for table in ("fleet_plan", "fleet_telemetry"):
                    self._partition(c, table, day, out.feeder_id)
                cur = c.execute(
                    "INSERT INTO fleet_plan VALUES (%s, %s, %s, %s, %s, %s)"
                    " ON CONFLICT DO NOTHING",
                    (out.feeder_id, out.step, ts, out.plan["status"],
                     bool(out.plan["replanned"]), plan),
                )  # fmt: skip
                if cur.rowcount == 0:
                    return False
                c.execute(
                    "INSERT INTO fleet_telemetry VALUES (%s, %s, %s, %s, %s)"
                    " ON CONFLICT DO NOTHING",
                    (out.feeder_id, out.step, ts, out.telemetry["feeder_kw"], tel),
                )
                c.execute(
                    "INSERT INTO fleet_checkpoint VALUES (%s, %s, %s) ON CONFLICT (feeder_id)"
                    " DO UPDATE SET step = excluded.step, state = excluded.state",
                    (out.feeder_id, out.step, checkpoint),
                )
        except Exception:
            self._parts.clear()  # a rolled-back transaction may have dropped new partitions
            raise
        finally:
            c.commit()
        return True

    def last_checkpoint(self, feeder_id: str) -> tuple[int, bytes] | None:
        c = self._conn()
        row = c.execute(
            "SELECT step, state FROM fleet_checkpoint WHERE feeder_id = %s", (feeder_id,)
        ).fetchone()
        c.commit()
        return None if row is None else (int(row[0]), bytes(row[1]))

    def plan_steps(self) -> pd.DataFrame:
        c = self._conn()
        rows = c.execute(
            "SELECT feeder_id, step, status, replanned FROM fleet_plan ORDER BY feeder_id, step"
        ).fetchall()
        c.commit()
        df = pd.DataFrame(rows, columns=["feeder_id", "step", "status", "replanned"])
        df["replanned"] = df["replanned"].astype(int)
        return df

    def partitions(self) -> list[str]:
        """Leaf partitions of the plan table (one per day and feeder)."""
        c = self._conn()
        rows = c.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
            " JOIN pg_class p ON p.oid = i.inhparent JOIN pg_namespace n ON n.oid ="
            " c.relnamespace WHERE n.nspname = %s AND c.relkind = 'r'"
            " AND p.relname LIKE 'fleet_plan_d%%'",
            (self.schema,),
        ).fetchall()
        c.commit()
        return sorted(r[0] for r in rows)

    def feeders(self) -> pd.DataFrame:
        c = self._conn()
        rows = c.execute(
            "SELECT DISTINCT ON (p.feeder_id) p.feeder_id, COUNT(*) OVER (PARTITION BY"
            " p.feeder_id), p.step, p.ts, p.status, t.payload FROM fleet_plan p JOIN"
            " fleet_telemetry t ON t.feeder_id = p.feeder_id AND t.ts = p.ts"
            " ORDER BY p.feeder_id, p.step DESC"
        ).fetchall()
        c.commit()
        return _feeder_frame(rows)

    def drop_schema(self) -> None:
        c = self._conn()
        c.execute(f"DROP SCHEMA IF EXISTS {self.schema} CASCADE")
        c.commit()

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None


def make_fleet_store(url: str | None) -> FleetStore:
    """``None``/``:memory:`` -> in-memory SQLite; a file path or ``sqlite:///path`` -> SQLite
    file; ``postgresql://...`` -> PostgreSQL (schema ``gridsync_fleet``)."""
    if url in (None, "", ":memory:"):
        return SqliteFleetStore(":memory:")
    if url.startswith(("postgresql://", "postgres://")):
        return PostgresFleetStore(url)
    return SqliteFleetStore(url.removeprefix("sqlite:///"))
