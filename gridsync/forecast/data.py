"""Turn a user's univariate load CSV into a clean, regular, UTC-indexed series, or explain why not.

Repairs (each one is recorded in ``CleanSeries.repairs``, never silent):

- timestamps with UTC offsets (``2016-03-27T03:00+02:00``) are converted to UTC, so DST
  changes in the source are harmless;
- naive local timestamps with ``tz=`` given are localised (the repeated autumn hour is resolved
  by order, the skipped spring hour is simply absent), so calendar features stay local;
- naive timestamps without ``tz`` are kept as wall-clock time (fine for sources without DST);
- data finer than ``freq`` is averaged onto ``freq`` (a 15-min meter export with ``30min``);
- gaps of at most ``max_gap`` are filled by linear interpolation.

Numeric dates written ``a/b/yyyy`` (also ``.`` or ``-`` separated) are never guessed: the day
comes first when some first field exceeds 12, last when some second field does; a file where
both fields stay at or below 12 is ambiguous and stops with an error asking for ``dayfirst`` or
an explicit ``date_format`` (``%d/%m/%Y %H:%M``).

Everything else is a ``SeriesError`` naming the row, the value and what was expected: missing
or unparseable timestamps, non-numeric values, duplicate timestamps (with a DST hint when the
timestamps are naive), off-grid timestamps, gaps longer than ``max_gap``, too little data.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd


class SeriesError(ValueError):
    """Bad input series: the message names the field, the offending value and the expectation."""


@dataclass
class CleanSeries:
    """A regular series (``freq`` set; naive, UTC or ``tz``-aware index) and the repairs made."""

    values: pd.Series
    repairs: list[str] = field(default_factory=list)

    @property
    def freq(self) -> pd.Timedelta:
        return pd.Timedelta(self.values.index.freq)


def _rows(mask: np.ndarray, limit: int = 5) -> str:
    # CSV line numbers: header is line 1, so data row i is line i + 2.
    lines = (np.flatnonzero(mask)[:limit] + 2).tolist()
    more = int(mask.sum()) - len(lines)
    return ", ".join(map(str, lines)) + (f" (+{more} more)" if more > 0 else "")


_NUMERIC_DATE = r"^\s*(\d{1,2})[/.-](\d{1,2})[/.-](\d{2,4})\b"


def _dayfirst(text: pd.Series, time_col: str, dayfirst: bool | None, repairs: list[str]):
    """Whether ``a/b/yyyy`` dates put the day first: from the data when it decides (a first
    field > 12 means day-first, a second field > 12 month-first), else from ``dayfirst``; a
    SeriesError when the data contradicts itself or ``dayfirst``, or nothing decides."""
    parts = text.str.extract(_NUMERIC_DATE)
    numeric = parts[0].notna().to_numpy()
    if not numeric.any():
        return dayfirst
    a = parts[0][numeric].astype(int).to_numpy()
    b = parts[1][numeric].astype(int).to_numpy()
    day_first_seen, month_first_seen = (a > 12).any(), (b > 12).any()
    rows = np.flatnonzero(numeric)
    if day_first_seen and month_first_seen:
        i, j = rows[np.argmax(a > 12)], rows[np.argmax(b > 12)]
        raise SeriesError(
            f"column {time_col!r}: dates are day-first at CSV line {i + 2} ({text.iloc[i]!r}) "
            f"but month-first at line {j + 2} ({text.iloc[j]!r}); export one date format"
        )
    seen = True if day_first_seen else False if month_first_seen else None
    if seen is None and dayfirst is None:
        raise SeriesError(
            f"column {time_col!r}: dates like {text.iloc[rows[0]]!r} are ambiguous (no day "
            "above 12 tells day and month apart); pass --dayfirst or --monthfirst, or "
            "--date-format '%d/%m/%Y %H:%M'"
        )
    if seen is not None and dayfirst is not None and seen != dayfirst:
        k = rows[np.argmax(a > 12)] if seen else rows[np.argmax(b > 12)]
        raise SeriesError(
            f"column {time_col!r}: --{'monthfirst' if seen else 'dayfirst'} contradicts CSV "
            f"line {k + 2} ({text.iloc[k]!r}), which is "
            f"{'day' if seen else 'month'}-first"
        )
    if seen is not None and dayfirst is None:
        repairs.append(
            f"dates read {'day' if seen else 'month'}-first "
            f"({'DD/MM' if seen else 'MM/DD'}): a {'first' if seen else 'second'} field above "
            "12 decides"
        )
    return seen if seen is not None else dayfirst


def _parse_times(
    raw: pd.Series,
    time_col: str,
    tz: str | None,
    repairs: list[str],
    dayfirst: bool | None = None,
    date_format: str | None = None,
):
    text = raw.astype("string").str.strip()
    missing = (text.isna() | (text == "")).to_numpy()
    if missing.any():
        raise SeriesError(
            f"column {time_col!r}: {int(missing.sum())} missing timestamp(s) at CSV line(s) "
            f"{_rows(missing)}; every row needs a timestamp"
        )
    if date_format is not None:
        times = pd.to_datetime(text, format=date_format, errors="coerce")
        bad = times.isna().to_numpy()
        if bad.any():
            raise SeriesError(
                f"column {time_col!r}: timestamp {text[bad].iloc[0]!r} at CSV line(s) "
                f"{_rows(bad)} does not match --date-format {date_format!r}"
            )
        return _localise(pd.DatetimeIndex(times), time_col, tz, repairs)
    dayfirst = _dayfirst(text, time_col, dayfirst, repairs)
    has_offset = text.str.contains(r"(?:[+-]\d{2}:?\d{2}|Z)$", regex=True).to_numpy()
    try:
        if has_offset.any():
            times = pd.to_datetime(text, utc=True, format="ISO8601")
        else:
            times = pd.to_datetime(text, format="mixed", dayfirst=bool(dayfirst))
    except (ValueError, TypeError) as err:
        bad = pd.to_datetime(text, errors="coerce", format="mixed").isna().to_numpy()
        example = text[bad].iloc[0] if bad.any() else "?"
        raise SeriesError(
            f"column {time_col!r}: cannot parse timestamp {example!r} at CSV line(s) "
            f"{_rows(bad)}; expected ISO-8601 like 2024-01-31 13:30 ({err})"
        ) from None
    if has_offset.any():
        if not has_offset.all():
            raise SeriesError(
                f"column {time_col!r}: timestamps mix UTC offsets and naive times (naive at CSV "
                f"line(s) {_rows(~has_offset)}); export every row with an offset or none"
            )
        target = tz or "UTC"
        repairs.append(f"timestamps carried UTC offsets: converted to {target}")
        return pd.DatetimeIndex(times).tz_convert(target)
    return _localise(pd.DatetimeIndex(times), time_col, tz, repairs)


def _localise(index: pd.DatetimeIndex, time_col: str, tz: str | None, repairs: list[str]):
    """Naive wall-clock times, localised to ``tz`` when given (DST inferred)."""
    if index.tz is not None:
        return index.tz_convert(tz or "UTC")
    if tz is None:
        return index
    try:
        local = index.tz_localize(tz, ambiguous="infer", nonexistent="raise")
    except Exception as err:  # pytz/zoneinfo raise several types for the same problem
        raise SeriesError(
            f"column {time_col!r}: cannot localise naive timestamps to tz={tz!r}: {err}"
        ) from None
    repairs.append(f"naive timestamps localised to {tz} (DST-aware)")
    return local


def _parse_values(raw: pd.Series, value_col: str) -> np.ndarray:
    text = raw.astype("string").str.strip()
    empty = (text.isna() | (text == "")).to_numpy()
    values = pd.to_numeric(text.where(~empty), errors="coerce").to_numpy(dtype=float)
    bad = np.isnan(values) & ~empty
    if bad.any():
        example = text[bad].iloc[0]
        raise SeriesError(
            f"column {value_col!r}: non-numeric value {example!r} at CSV line(s) {_rows(bad)}; "
            "expected a number (empty cells count as missing and are treated as gaps)"
        )
    if np.isinf(values).any():
        raise SeriesError(
            f"column {value_col!r}: infinite value at CSV line(s) {_rows(np.isinf(values))}"
        )
    return values


def clean_series(
    times: pd.Series,
    values: pd.Series,
    *,
    time_col: str = "time",
    value_col: str = "value",
    freq: str | None = None,
    tz: str | None = None,
    max_gap: str = "2h",
    min_days: float = 0.0,
    dayfirst: bool | None = None,
    date_format: str | None = None,
) -> CleanSeries:
    """Validate and repair one series given raw timestamp and value columns (see module doc)."""
    repairs: list[str] = []
    if len(times) < 3:
        raise SeriesError(f"column {value_col!r}: {len(times)} rows; need at least 3")
    index = _parse_times(times.reset_index(drop=True), time_col, tz, repairs, dayfirst, date_format)
    y = _parse_values(values.reset_index(drop=True), value_col)
    order = np.argsort(index.asi8, kind="stable")
    if not (order == np.arange(len(order))).all():
        repairs.append("rows were not in time order: sorted")
    index, y = index[order], y[order]
    dup = index.duplicated(keep=False)
    if dup.any():
        first = index[dup][0]
        hint = ""
        if index.tz is None:
            hint = (
                " — repeated local times usually mean a DST fall-back: pass the source time "
                "zone (--tz Europe/Berlin) or export timestamps with UTC offsets"
            )
        raise SeriesError(
            f"column {time_col!r}: duplicate timestamp {first} ({int(dup.sum())} rows share "
            f"timestamps){hint}"
        )
    diffs = np.diff(index.asi8)
    native = pd.Timedelta(int(np.median(diffs)), unit="ns")
    step = pd.Timedelta(freq) if freq else native
    if step <= pd.Timedelta(0):
        raise SeriesError(f"freq: {freq!r} must be a positive duration like 30min")
    if step < native:
        raise SeriesError(
            f"freq: {freq!r} is finer than the data's own resolution {native}; "
            "forecasts cannot invent sub-interval detail"
        )
    origin = index[0].floor(step)
    off_grid = ((index - origin) % native) != pd.Timedelta(0)
    if off_grid.any():
        raise SeriesError(
            f"column {time_col!r}: timestamp {index[off_grid][0]} is off the {native} grid "
            f"that starts at {index[0]}; expected regularly spaced readings"
        )
    s = pd.Series(y, index=index, name=value_col)
    if step > native:
        s = s.resample(step, origin=origin).mean()
        repairs.append(f"averaged {native} readings onto {step}")
    full = pd.date_range(s.index[0], s.index[-1], freq=step, name="time")
    s = s.reindex(full)
    s = _fill_gaps(s, pd.Timedelta(max_gap), value_col, repairs)
    span_days = (s.index[-1] - s.index[0] + step) / pd.Timedelta(days=1)
    if span_days < min_days:
        raise SeriesError(
            f"column {value_col!r}: {span_days:.1f} days of data; this run needs at least "
            f"{min_days:g} days (training window + horizon)"
        )
    s.index.freq = step
    return CleanSeries(values=s, repairs=repairs)


def _fill_gaps(s: pd.Series, max_gap: pd.Timedelta, name: str, repairs: list[str]) -> pd.Series:
    missing = s.isna().to_numpy()
    if not missing.any():
        return s
    if missing[0] or missing[-1]:
        raise SeriesError(f"column {name!r}: the first or last reading is missing; trim the file")
    step = s.index[1] - s.index[0]
    edges = np.diff(np.r_[0, missing.astype(np.int8), 0])
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    lengths = ends - starts
    worst = int(np.argmax(lengths))
    if lengths[worst] * step > max_gap:
        raise SeriesError(
            f"column {name!r}: gap of {lengths[worst] * step} from {s.index[starts[worst]]} to "
            f"{s.index[ends[worst] - 1]} exceeds max_gap={max_gap}; fill it upstream, trim the "
            "file, or raise --max-gap"
        )
    repairs.append(
        f"filled {int(missing.sum())} missing reading(s) in {len(starts)} gap(s) "
        f"(longest {lengths.max() * step}) by linear interpolation"
    )
    return s.interpolate(method="time")


def load_series_csv(
    path: str | Path,
    time_col: str,
    value_col: str,
    *,
    freq: str | None = None,
    tz: str | None = None,
    max_gap: str = "2h",
    min_days: float = 0.0,
    dayfirst: bool | None = None,
    date_format: str | None = None,
) -> CleanSeries:
    """Read ``time_col``/``value_col`` from a CSV (any delimiter pandas can sniff) and clean it."""
    path = Path(path)
    if not path.exists():
        raise SeriesError(f"csv: file {str(path)!r} does not exist")
    frame = pd.read_csv(path, sep=None, engine="python", dtype=str, keep_default_na=False)
    for col in (time_col, value_col):
        if col not in frame.columns:
            raise SeriesError(
                f"column {col!r} not in {path.name}; available: {list(frame.columns)[:12]}"
            )
    return clean_series(
        frame[time_col],
        frame[value_col],
        time_col=time_col,
        value_col=value_col,
        freq=freq,
        tz=tz,
        max_gap=max_gap,
        min_days=min_days,
        dayfirst=dayfirst,
        date_format=date_format,
    )


def window(
    clean: CleanSeries,
    start: str | None,
    end: str | None,
    *,
    train_days: float,
    horizon_h: float,
) -> pd.Series:
    """The part of ``clean`` a backtest scoring targets from ``start`` to ``end`` needs: the
    ``train_days`` before ``start`` (so the first origin's first lead is ``start``) up to
    ``end``. Naive bounds are read in the series' own clock. SeriesError when the file does
    not cover the training window before ``start`` or the window is shorter than a horizon."""
    s = clean.values
    step = clean.freq

    def stamp(text: str, name: str) -> pd.Timestamp:
        try:
            t = pd.Timestamp(text)
        except (ValueError, TypeError):
            raise SeriesError(
                f"--{name}: cannot parse {text!r}; expected e.g. 2022-01-31 13:00"
            ) from None
        if s.index.tz is not None:
            t = t.tz_localize(s.index.tz) if t.tz is None else t.tz_convert(s.index.tz)
        elif t.tz is not None:
            raise SeriesError(f"--{name}: {text!r} has a UTC offset but the series is naive")
        return t

    first, last = s.index[0], s.index[-1]
    lo = first
    if start is not None:
        t0 = stamp(start, "start")
        lo = t0 - pd.Timedelta(days=train_days)
        if lo < first:
            raise SeriesError(
                f"--start: {start} leaves {(t0 - first) / pd.Timedelta(days=1):.1f} days of "
                f"history before it (the file starts {first}); --train-days needs {train_days:g}"
            )
    hi = last
    if end is not None:
        hi = min(stamp(end, "end"), last)
    out = s[(s.index >= lo) & (s.index <= hi)]
    need = int(round(train_days * pd.Timedelta(days=1) / step)) + int(
        round(horizon_h * pd.Timedelta(hours=1) / step)
    )
    if len(out) < need:
        raise SeriesError(
            f"--start/--end: the window {start or first} .. {end or last} keeps {len(out)} "
            f"readings; {train_days:g} training days plus a {horizon_h:g} h horizon need {need}"
        )
    out.index.freq = s.index.freq
    return out
