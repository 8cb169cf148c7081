"""Bulk import of historical readings from CSV or Parquet into a store.

Files are long format with columns ``ts`` (ISO-8601 with zone, or naive = UTC),
``device_id``, ``quantity``, ``unit``, ``value``. They are read in chunks and checked with
the same quantity/unit/range rules as live telemetry (vectorised); bad rows are skipped and
counted per reason, good rows converted to canonical units and written in bulk (each chunk
is keyed by the file's hash, so re-importing the same file stores nothing twice).
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from gridsync.data.ingest import ID_PATTERN, QUANTITIES
from gridsync.store import ReadingBatch, Store

COLUMNS = ["ts", "device_id", "quantity", "unit", "value"]
_ID = re.compile(ID_PATTERN)


class ImportFileError(ValueError):
    """The file cannot be imported at all (missing, wrong format, missing columns)."""


@dataclass
class ImportReport:
    rows: int = 0
    stored: int = 0
    rejected: Counter = field(default_factory=Counter)

    @property
    def n_rejected(self) -> int:
        return sum(self.rejected.values())


def _chunks(path: Path, chunk_rows: int) -> Iterator[pd.DataFrame]:
    suffix = "".join(path.suffixes[-2:]).lower()
    if suffix.endswith(".parquet") or suffix.endswith(".pq"):
        import pyarrow.parquet as pq

        pf = pq.ParquetFile(path)
        missing = set(COLUMNS) - set(pf.schema_arrow.names)
        if missing:
            msg = f"{path}: missing column(s) {', '.join(sorted(missing))}; expected {', '.join(COLUMNS)}"
            raise ImportFileError(msg)
        for batch in pf.iter_batches(batch_size=chunk_rows, columns=COLUMNS):
            yield batch.to_pandas()
    elif suffix.endswith((".csv", ".csv.gz")):
        reader = pd.read_csv(
            path, chunksize=chunk_rows, dtype={"device_id": str, "quantity": str, "unit": str}
        )
        for i, df in enumerate(reader):
            if i == 0:
                missing = set(COLUMNS) - set(df.columns)
                if missing:
                    msg = f"{path}: missing column(s) {', '.join(sorted(missing))}; expected {', '.join(COLUMNS)}"
                    raise ImportFileError(msg)
            yield df[COLUMNS]
    else:
        msg = f"{path}: unsupported file type {suffix!r}; expected .csv, .csv.gz or .parquet"
        raise ImportFileError(msg)


def _conversion_table() -> pd.DataFrame:
    rows = [
        (q, u, canon, scale, offset, lo, hi)
        for q, (canon, units, (lo, hi)) in QUANTITIES.items()
        for u, (scale, offset) in units.items()
    ]
    return pd.DataFrame(rows, columns=["quantity", "unit", "canon", "scale", "offset", "lo", "hi"])


def validate_frame(df: pd.DataFrame) -> tuple[ReadingBatch, Counter]:
    """Check and convert one chunk; returns good readings and rejected-row counts by reason."""
    reasons: Counter = Counter()
    n = len(df)
    ts = pd.to_datetime(df["ts"], utc=True, errors="coerce", format="mixed")
    value = pd.to_numeric(df["value"], errors="coerce").to_numpy(dtype=float)
    conv = (
        df[["quantity", "unit"]]
        .astype(str)
        .merge(_conversion_table(), how="left", on=["quantity", "unit"])
    )
    canon_value = value * conv["scale"].to_numpy() + conv["offset"].to_numpy()
    checks = [
        ("bad timestamp", ts.isna().to_numpy()),
        (
            "bad device_id",
            ~df["device_id"].astype(str).str.fullmatch(_ID.pattern[1:-1]).fillna(False).to_numpy(),
        ),
        ("unknown quantity/unit", conv["canon"].isna().to_numpy()),
        ("non-numeric value", ~np.isfinite(value)),
        (
            "value out of range",
            ~((canon_value >= conv["lo"].to_numpy()) & (canon_value <= conv["hi"].to_numpy())),
        ),
    ]
    bad = np.zeros(n, dtype=bool)
    for reason, mask in checks:
        new = mask & ~bad
        if new.any():
            reasons[reason] += int(new.sum())
        bad |= mask
    good = ~bad
    batch = ReadingBatch(
        (ts[good] - pd.Timestamp(0, tz="UTC")).dt.total_seconds().to_numpy(),
        df["device_id"].to_numpy()[good],
        df["quantity"].to_numpy()[good],
        conv["canon"].to_numpy()[good],
        canon_value[good],
    )
    return batch, reasons


def import_readings(
    path: str | Path,
    store: Store,
    *,
    chunk_rows: int = 100_000,
    on_chunk: Callable[[ImportReport], None] | None = None,
) -> ImportReport:
    """Import a CSV/Parquet file of readings into ``store``; returns counts per outcome."""
    path = Path(path)
    if not path.exists():
        msg = f"history file {str(path)!r} does not exist"
        raise ImportFileError(msg)
    report = ImportReport()
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:32]
    for i, df in enumerate(_chunks(path, chunk_rows)):
        batch, reasons = validate_frame(df)
        report.rows += len(df)
        report.rejected.update(reasons)
        report.stored += store.write_readings(batch, batch_id=f"file:{digest}:{chunk_rows}:{i}")
        if on_chunk is not None:
            on_chunk(report)
    return report
