"""Persistent history: time series, plans, events and audit log (SQLite or PostgreSQL)."""

import os
from pathlib import Path

from gridsync.store.base import ReadingBatch, Store, StoreError, StoreUnavailable
from gridsync.store.sqlite import SqliteStore

__all__ = [
    "ReadingBatch",
    "SqliteStore",
    "Store",
    "StoreError",
    "StoreUnavailable",
    "data_dir",
    "default_store_url",
    "make_store",
]


def data_dir(environ: dict[str, str] | None = None) -> Path:
    """GridSync's per-user data directory: ``$GRIDSYNC_DATA_DIR``, else
    ``$XDG_DATA_HOME/gridsync``, else ``~/.local/share/gridsync`` (created, mode 0700)."""
    env = os.environ if environ is None else environ
    if env.get("GRIDSYNC_DATA_DIR"):
        path = Path(env["GRIDSYNC_DATA_DIR"])
    else:
        base = env.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
        path = Path(base) / "gridsync"
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


def default_store_url(name: str, environ: dict[str, str] | None = None) -> str:
    """``sqlite:///<data dir>/<name>.db``: a stable file, so history survives restarts."""
    return f"sqlite:///{data_dir(environ) / f'{name}.db'}"


def make_store(url: str | None = None, **kwargs) -> Store:
    """``None``/``"sqlite::memory:"`` -> in-memory SQLite; ``sqlite:///path.db`` -> file;
    ``postgresql://...`` -> :class:`~gridsync.store.postgres.PostgresStore`."""
    if url in (None, "", "sqlite::memory:", "memory"):
        return SqliteStore(":memory:")
    if url.startswith("sqlite:///"):
        return SqliteStore(url.removeprefix("sqlite:///"))
    if url.startswith(("postgresql://", "postgres://")):
        from gridsync.store.postgres import PostgresStore

        return PostgresStore(url, **kwargs)
    msg = f"store url {url!r}: expected sqlite:///path.db, sqlite::memory: or postgresql://..."
    raise StoreError(msg)
