"""Persistent history: time series, plans, events and audit log (SQLite or PostgreSQL)."""

from gridsync.store.base import ReadingBatch, Store, StoreError
from gridsync.store.sqlite import SqliteStore

__all__ = ["ReadingBatch", "SqliteStore", "Store", "StoreError", "make_store"]


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
