"""Columnar telemetry batches: one message carries arrays instead of one object per reading.

    {"source": "dc-3", "seq": 17,
     "device_id": ["meter-1", "meter-2", ...],
     "quantity": "p", "unit": "W",            # one value for all rows, or an array
     "ts_s": 1764136805.0,                    # UNIX seconds: one value or an array
     "value": [1530.0, 820.5, ...]}

A data concentrator sends thousands of readings this way for the parsing cost of a few
arrays. The message-level fields (``source``, ``seq``, the set of keys, array lengths, the
scalar columns) are checked first and a failure rejects the whole message. The rows are then
checked column-wise with numpy under the same rules as single readings (id pattern, known
quantity and unit, strict number types, finite and in range, not in the future, not older
than the horizon, no repeated ``(device_id, quantity, ts_s)`` within the message); each bad
row is rejected on its own with its reason and the good rows go on.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pandas as pd

COLUMNS = ("device_id", "quantity", "unit", "ts_s", "value")
KEYS = frozenset(("source", "seq", *COLUMNS))
_NUMBER = (int, float)


class MessageError(ValueError):
    """The message as a whole is malformed (reason names the field)."""


def _is_number(x: Any) -> bool:
    return type(x) in _NUMBER  # bool is not a number here


def _fits_float(x: int | float) -> bool:
    try:
        float(x)
    except OverflowError:  # an integer beyond float range, e.g. 10**400
        return False
    return True


def _objects(col: list) -> np.ndarray:
    """A 1-d object array even when entries are themselves lists."""
    out = np.empty(len(col), dtype=object)
    out[:] = col
    return out


def _numbers(col: list) -> tuple[np.ndarray, np.ndarray]:
    """``col`` as float64 plus a mask of entries that are JSON numbers (others become NaN)."""
    if set(map(type, col)) <= set(_NUMBER):
        try:
            return np.asarray(col, dtype=float), np.ones(len(col), bool)
        except OverflowError:
            pass
    ok = np.fromiter(map(_is_number, col), bool, len(col))
    out = np.full(len(col), np.nan)
    for i in np.flatnonzero(ok):
        try:
            out[i] = float(col[i])
        except OverflowError:
            ok[i] = False
    return out, ok


class ColumnarChecker:
    """Row checks for columnar batches; remembers ids it has already seen to be valid."""

    def __init__(self, id_pattern: str, max_rows: int, known_ids_max: int = 1_000_000) -> None:
        self._id_re = re.compile(id_pattern)
        self.max_rows = max_rows
        self._ok_ids: set[str] = set()
        self._known_ids_max = known_ids_max

    def _ids_ok(self, col: list) -> np.ndarray:
        try:
            if set(col) <= self._ok_ids:
                return np.ones(len(col), bool)
        except TypeError:  # an unhashable entry (list, object): checked one by one below
            pass
        if len(self._ok_ids) > self._known_ids_max:
            self._ok_ids.clear()
        ok = np.zeros(len(col), bool)
        for i, x in enumerate(col):
            if type(x) is str and (x in self._ok_ids or self._id_re.fullmatch(x)):
                self._ok_ids.add(x)
                ok[i] = True
        return ok

    def structure(self, d: dict[str, Any]) -> int:
        """Check the message-level fields; returns the number of rows."""
        unknown = sorted(set(d) - KEYS)
        if unknown:
            msg = f"{unknown[0]}: unknown field; a columnar batch has {', '.join(sorted(KEYS))}"
            raise MessageError(msg)
        missing = [k for k in ("source", "seq", *COLUMNS) if k not in d]
        if missing:
            raise MessageError(f"{missing[0]}: field required")
        src, seq = d["source"], d["seq"]
        if type(src) is not str or not self._id_re.fullmatch(src):
            msg = f"source: expected an id matching {self._id_re.pattern} (got {src!r:.80})"
            raise MessageError(msg)
        if type(seq) is not int or seq < 0:
            raise MessageError(f"seq: expected an integer >= 0 (got {seq!r:.80})")
        ids = d["device_id"]
        if type(ids) is not list or not 1 <= len(ids) <= self.max_rows:
            got = f"{len(ids)} entries" if type(ids) is list else type(ids).__name__
            msg = f"device_id: expected an array of 1 to {self.max_rows} ids (got {got})"
            raise MessageError(msg)
        n = len(ids)
        for k in ("quantity", "unit", "ts_s", "value"):
            v = d[k]
            if type(v) is list:
                if len(v) != n:
                    msg = f"{k}: {len(v)} entries but device_id has {n}"
                    raise MessageError(msg)
            elif k == "value":
                raise MessageError(f"value: expected an array of numbers (got {v!r:.80})")
            elif k == "ts_s" and not (_is_number(v) and _fits_float(v)):
                msg = (
                    f"ts_s: expected UNIX seconds (a number or an array of numbers), got {v!r:.80}"
                )
                raise MessageError(msg)
            elif k in ("quantity", "unit") and type(v) is not str:
                msg = f"{k}: expected a string or an array of strings (got {v!r:.80})"
                raise MessageError(msg)
        return n

    def rows(
        self,
        d: dict[str, Any],
        conversions: dict[tuple[str, str], tuple[float, float, float, float]],
        quantities: dict[str, tuple],
        now_s: float,
        max_future_s: float,
        max_age_s: float,
    ) -> dict[str, np.ndarray]:
        """Convert and check every row. Returns the columns (values in canonical units) and
        ``reason``: an object array, ``""`` for a good row, else why it was rejected."""
        n = len(d["device_id"])
        reason = np.full(n, "", dtype=object)

        def flag(bad: np.ndarray, text) -> None:
            for i in np.flatnonzero(bad & (reason == "")):
                reason[i] = text(int(i))

        ids = _objects(d["device_id"])
        pattern = self._id_re.pattern
        flag(
            ~self._ids_ok(d["device_id"]),
            lambda i: f"device_id: {ids[i]!r:.80} does not match {pattern}",
        )

        # quantity and unit: convert per distinct (quantity, unit) pair
        cols = {}
        for k in ("quantity", "unit"):
            x = d[k]
            cols[k] = np.full(n, x, object) if type(x) is str else _objects(x)
            if type(x) is not str:
                is_str = np.fromiter((type(e) is str for e in x), bool, n)
                flag(~is_str, lambda i, k=k: f"{k}: expected a string (got {cols[k][i]!r:.80})")
        qcol, ucol = cols["quantity"], cols["unit"]
        conv = np.full((n, 4), np.nan)
        canon = np.full(n, "", dtype=object)
        ok = reason == ""
        q_codes, q_uniq = pd.factorize(np.where(ok, qcol, ""))
        u_codes, u_uniq = pd.factorize(np.where(ok, ucol, ""))
        codes = q_codes * len(u_uniq) + u_codes
        known = ", ".join(quantities)
        for c in np.unique(codes[ok]):
            rows = (codes == c) & ok
            qs, us = q_uniq[c // len(u_uniq)], u_uniq[c % len(u_uniq)]
            spec = conversions.get((qs, us))
            if spec is not None:
                conv[rows] = spec
                canon[rows] = quantities[qs][0]
            elif qs not in quantities:
                flag(
                    rows,
                    lambda i: (
                        f"quantity: unknown quantity {qcol[i]!r:.40}; expected one of {known}"
                    ),
                )
            else:
                units = ", ".join(quantities[qs][1])
                flag(
                    rows,
                    lambda i, units=units: (
                        f"unit: {ucol[i]!r:.40} is not a unit of {qcol[i]!r}; expected one of {units}"
                    ),
                )

        vals = d["value"]
        raw_v, v_ok = _numbers(vals)
        flag(~v_ok, lambda i: f"value: expected a number (got {vals[i]!r:.80})")
        v = raw_v * conv[:, 0] + conv[:, 1]
        with np.errstate(invalid="ignore"):
            out = ~(np.isfinite(v) & (conv[:, 2] <= v) & (v <= conv[:, 3]))
        flag(out & ~np.isfinite(raw_v), lambda i: f"value: {vals[i]!r} is not a finite number")
        flag(
            out,
            lambda i: (
                f"value: {vals[i]} {ucol[i]} is outside [{conv[i, 2]}, {conv[i, 3]}] {canon[i]}"
            ),
        )

        ts = d["ts_s"]
        if type(ts) is list:
            t, t_ok = _numbers(ts)
            flag(~t_ok, lambda i: f"ts_s: expected UNIX seconds as a number (got {ts[i]!r:.80})")
        else:
            t = np.full(n, float(ts))
        with np.errstate(invalid="ignore"):
            future = ~np.isfinite(t) | (t > now_s + max_future_s)
            flag(future, lambda i: f"ts_s: {t[i]} is more than {max_future_s:g} s in the future")
            old = t < now_s - max_age_s
            flag(old, lambda i: f"ts_s: {t[i]} is older than the {max_age_s:g} s ingestion horizon")

        good = reason == ""
        key = pd.DataFrame({"d": pd.factorize(np.where(good, ids, ""))[0], "p": codes, "t": t})
        repeated = good & key.duplicated().to_numpy()
        flag(
            repeated,
            lambda i: (
                f"duplicate reading: {ids[i]!r} {qcol[i]} at ts_s {t[i]} repeats an earlier row"
            ),
        )
        return {"device_id": ids, "quantity": qcol, "unit": canon, "ts_s": t, "value": v, "reason": reason}  # fmt: skip
