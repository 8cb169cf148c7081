"""Telemetry validation and forwarding, shared by the MQTT bridge and the HTTP endpoint.

A telemetry message is a JSON object from one source (a meter, device or data concentrator):

    {"source": "gw-7", "seq": 42,
     "readings": [{"device_id": "meter-12", "quantity": "p", "unit": "W",
                   "value": 1530.0, "ts": "2026-11-26T06:00:05Z"}, ...]}

``ts`` is an ISO-8601 time with a zone or UNIX seconds. Values are converted to the
quantity's canonical unit (:data:`QUANTITIES`). A message is rejected *as a whole* (so nothing
bad is stored) when it is oversized, not JSON, has a wrong field type or unknown field, an
unknown quantity/unit, a non-finite or physically impossible value, a timestamp in the future
or older than ``max_age_s``, or repeats a ``(source, seq)`` already accepted. Rejections go to
the bus ``deadletter`` topic with the reason; accepted messages go to ``telemetry`` in
columnar form, flagged ``out_of_order`` (seq lower than the source's newest) and per reading
``late`` (older than ``late_after_s``: stored as history, not treated as current state).

High-volume senders use :mod:`columnar batches <gridsync.data.columnar>` instead (arrays of
device ids, timestamps and values): the same rules, checked with numpy, and a bad row is
rejected on its own (dead-lettered with its reason) while the rest of the batch goes on.
"""

from __future__ import annotations

import json
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any

import numpy as np
from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StrictFloat,
    StrictInt,
    ValidationError,
)

from gridsync.bus.base import Bus
from gridsync.data.columnar import ColumnarChecker, MessageError

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$"

# quantity -> (canonical unit, {unit: (scale, offset)}, (min, max) in canonical unit)
QUANTITIES: dict[str, tuple[str, dict[str, tuple[float, float]], tuple[float, float]]] = {
    "p": ("kW", {"W": (1e-3, 0.0), "kW": (1.0, 0.0), "MW": (1e3, 0.0)}, (-1e5, 1e5)),
    "q": ("kvar", {"var": (1e-3, 0.0), "kvar": (1.0, 0.0), "Mvar": (1e3, 0.0)}, (-1e5, 1e5)),
    "v": ("pu", {"pu": (1.0, 0.0)}, (0.0, 2.0)),
    "i": ("A", {"A": (1.0, 0.0), "kA": (1e3, 0.0)}, (0.0, 1e5)),
    "energy": ("kWh", {"Wh": (1e-3, 0.0), "kWh": (1.0, 0.0), "MWh": (1e3, 0.0)}, (-1e9, 1e9)),
    "soc": ("frac", {"frac": (1.0, 0.0), "%": (0.01, 0.0)}, (0.0, 1.0)),
    "temp": ("degC", {"degC": (1.0, 0.0), "K": (1.0, -273.15)}, (-80.0, 150.0)),
}


# (quantity, unit) -> (scale, offset, min, max) in the canonical unit
_CONVERSIONS: dict[tuple[str, str], tuple[float, float, float, float]] = {
    (q, u): (scale, offset, lo, hi)
    for q, (_, units, (lo, hi)) in QUANTITIES.items()
    for u, (scale, offset) in units.items()
}


class _Reading(BaseModel):
    model_config = ConfigDict(extra="forbid")
    device_id: Annotated[str, Field(pattern=ID_PATTERN)]
    quantity: str
    unit: str
    value: Annotated[float, Field(strict=True, allow_inf_nan=False)]
    ts: StrictFloat | StrictInt | AwareDatetime


class TelemetryMessage(BaseModel):
    """The MQTT/HTTP telemetry payload (see module docstring)."""

    model_config = ConfigDict(extra="forbid")
    source: Annotated[str, Field(pattern=ID_PATTERN)]
    seq: Annotated[int, Field(ge=0, strict=True)]
    readings: Annotated[list[_Reading], Field(min_length=1, max_length=MAX_READINGS)]


MAX_READINGS = 20_000


class Rejected(ValueError):
    """Why a message was refused (the dead-letter reason); ``rows`` lists the row-level
    reasons when every row of a columnar batch was bad."""

    def __init__(self, reason: str, rows: list[dict[str, Any]] | None = None) -> None:
        super().__init__(reason)
        self.rows = rows or []


@dataclass
class Accepted:
    """The accepted readings (lists, or numpy arrays for a columnar batch) and, for a
    columnar batch, ``rejected_rows``: ``{"row", "device_id", "reason"}`` per bad row."""

    source: str
    seq: int
    device_id: Any
    quantity: Any
    unit: Any
    ts_s: Any
    value: Any
    late: Any
    out_of_order: bool
    rejected_rows: list[dict[str, Any]] = field(default_factory=list)

    def to_message(self, received_s: float) -> dict[str, Any]:
        return {
            "kind": "readings",
            "source": self.source,
            "seq": self.seq,
            "received_s": received_s,
            "out_of_order": self.out_of_order,
            "device_id": self.device_id,
            "quantity": self.quantity,
            "unit": self.unit,
            "ts_s": self.ts_s,
            "value": self.value,
            "late": self.late,
        }


@dataclass
class TelemetryValidator:
    """Stateful validator (it remembers recent ``(source, seq)`` for duplicate detection)."""

    max_bytes: int = 1_048_576
    max_future_s: float = 30.0
    max_age_s: float = 7 * 86400.0
    late_after_s: float = 60.0
    dedup_per_source: int = 4096
    _seen: dict[str, OrderedDict[int, None]] = field(default_factory=dict, repr=False)
    _newest: dict[str, int] = field(default_factory=dict, repr=False)
    _columnar: ColumnarChecker = field(
        default_factory=lambda: ColumnarChecker(ID_PATTERN, MAX_READINGS), repr=False
    )

    def validate(
        self, raw: bytes | str, now_s: float | None = None, commit: bool = True
    ) -> Accepted:
        """Check one message; raises :class:`Rejected` with the reason. ``commit=False``
        leaves the ``(source, seq)`` unremembered until :meth:`commit` (call it once the
        message is safely forwarded, so a redelivery after a failed forward is accepted).

        Any failure while parsing (e.g. ``RecursionError`` on JSON nested 50,000 deep) is a
        rejection too: one hostile message must never stop ingestion."""
        now = time.time() if now_s is None else now_s
        try:
            return self._validate(raw, now, commit)
        except Rejected:
            raise
        except Exception as err:
            msg = f"message could not be parsed: {type(err).__name__}: {str(err)[:200]}"
            raise Rejected(msg) from None

    def _validate(self, raw: bytes | str, now: float, commit: bool) -> Accepted:
        if len(raw) > self.max_bytes:
            msg = f"payload of {len(raw)} bytes exceeds the {self.max_bytes}-byte limit"
            raise Rejected(msg)
        try:
            data = json.loads(raw)
        except ValueError as err:
            raise Rejected(f"not valid JSON: {err}") from None
        if isinstance(data, dict) and "device_id" in data and "readings" not in data:
            return self._validate_columnar(data, now, commit)
        try:
            m = TelemetryMessage.model_validate(data)
        except ValidationError as err:
            e = err.errors()[0]
            loc = ".".join(str(p) for p in e["loc"]) or "(top level)"
            got = repr(e.get("input"))[:80]
            msg = f"{loc}: {e['msg']} (got {got}); {err.error_count()} error(s) in total"
            raise Rejected(msg) from None
        self._check_new(m.source, m.seq)
        rs = m.readings
        conv = [_CONVERSIONS.get((r.quantity, r.unit)) for r in rs]
        if None in conv:
            i = conv.index(None)
            self._bad_unit(i, rs[i])
        arr = np.array(conv, dtype=float)  # columns: scale, offset, lo, hi
        raw_v = np.fromiter((r.value for r in rs), float, len(rs))
        v = raw_v * arr[:, 0] + arr[:, 1]
        bad = ~(np.isfinite(v) & (arr[:, 2] <= v) & (v <= arr[:, 3]))
        if bad.any():
            i = int(np.argmax(bad))
            canon = QUANTITIES[rs[i].quantity][0]
            msg = f"readings.{i}.value: {rs[i].value} {rs[i].unit} is outside [{arr[i, 2]}, {arr[i, 3]}] {canon}"
            raise Rejected(msg)
        t = np.fromiter(
            (r.ts.timestamp() if isinstance(r.ts, datetime) else r.ts for r in rs), float, len(rs)
        )
        future = ~np.isfinite(t) | (t > now + self.max_future_s)
        if future.any():
            i = int(np.argmax(future))
            msg = f"readings.{i}.ts: {rs[i].ts} is more than {self.max_future_s:g} s in the future"
            raise Rejected(msg)
        old = t < now - self.max_age_s
        if old.any():
            i = int(np.argmax(old))
            msg = f"readings.{i}.ts: {rs[i].ts} is older than the {self.max_age_s:g} s ingestion horizon"
            raise Rejected(msg)
        ts_s, value = t.tolist(), v.tolist()
        unit = [QUANTITIES[r.quantity][0] for r in rs]
        late = (t < now - self.late_after_s).tolist()
        acc = Accepted(
            source=m.source,
            seq=m.seq,
            device_id=[r.device_id for r in m.readings],
            quantity=[r.quantity for r in m.readings],
            unit=unit,
            ts_s=ts_s,
            value=value,
            late=late,
            out_of_order=m.seq < self._newest.get(m.source, -1),
        )
        if commit:
            self.commit(acc)
        return acc

    def _check_new(self, source: str, seq: int) -> None:
        if seq in self._seen.get(source, ()):
            msg = f"duplicate message: source {source!r} seq {seq} was already accepted"
            raise Rejected(msg)

    def _validate_columnar(self, data: dict[str, Any], now: float, commit: bool) -> Accepted:
        try:
            self._columnar.structure(data)
        except MessageError as err:
            raise Rejected(str(err)) from None
        source, seq = data["source"], data["seq"]
        self._check_new(source, seq)
        cols = self._columnar.rows(
            data, _CONVERSIONS, QUANTITIES, now, self.max_future_s, self.max_age_s
        )
        reason = cols["reason"]
        good = reason == ""
        bad = [
            {"row": int(i), "device_id": repr(cols["device_id"][i])[:80], "reason": reason[i]}
            for i in np.flatnonzero(~good)
        ]
        if not good.any():
            msg = f"all {len(reason)} rows rejected; row 0: {reason[0]}"
            raise Rejected(msg, bad)
        ts = cols["ts_s"][good]
        acc = Accepted(
            source=source,
            seq=seq,
            device_id=cols["device_id"][good],
            quantity=cols["quantity"][good],
            unit=cols["unit"][good],
            ts_s=ts,
            value=cols["value"][good],
            late=ts < now - self.late_after_s,
            out_of_order=seq < self._newest.get(source, -1),
            rejected_rows=bad,
        )
        if commit:
            self.commit(acc)
        return acc

    @staticmethod
    def _bad_unit(i: int, r: _Reading) -> None:
        spec = QUANTITIES.get(r.quantity)
        if spec is None:
            msg = f"readings.{i}.quantity: unknown quantity {r.quantity!r}; expected one of {', '.join(QUANTITIES)}"
            raise Rejected(msg)
        msg = f"readings.{i}.unit: {r.unit!r} is not a unit of {r.quantity!r}; expected one of {', '.join(spec[1])}"
        raise Rejected(msg)

    def commit(self, acc: Accepted) -> None:
        """Remember ``(source, seq)`` so a repeat is rejected as a duplicate."""
        seen = self._seen.setdefault(acc.source, OrderedDict())
        seen[acc.seq] = None
        if len(seen) > self.dedup_per_source:
            seen.popitem(last=False)
        self._newest[acc.source] = max(self._newest.get(acc.source, -1), acc.seq)


@dataclass
class IngestResult:
    accepted: bool
    reason: str = ""
    n_readings: int = 0
    bus_seq: int = 0
    rejected_rows: int = 0


def _dead_rows(rows: list[dict[str, Any]], limit: int = 100) -> dict[str, Any]:
    return {"rejected_rows": len(rows), "rows": rows[:limit]}


class Ingestor:
    """Validate raw telemetry and forward it to the bus (or its reason to ``deadletter``)."""

    def __init__(self, bus: Bus, validator: TelemetryValidator | None = None) -> None:
        self.bus = bus
        self.validator = validator or TelemetryValidator()
        self.accepted = 0
        self.rejected = 0
        self.readings = 0
        self.rejected_rows = 0
        self._forwarding: set[tuple[str, int]] = set()

    async def submit(
        self, raw: bytes | str, origin: str = "", source: str | None = None
    ) -> IngestResult:
        """Validate and forward one message. ``source``, when given, is the sender the
        transport authenticated (the MQTT topic's last level): a message claiming another
        source is rejected."""
        now = time.time()
        try:
            acc = self.validator.validate(raw, now, commit=False)
            if source is not None and acc.source != source:
                msg = (
                    f"source: {acc.source!r} does not match the sender {source!r}"
                    f" ({origin or 'transport'}); a source may only publish as itself"
                )
                raise Rejected(msg)
        except Rejected as err:
            await self.dead_letter(raw, origin, str(err), err.rows, now)
            return IngestResult(False, str(err), rejected_rows=len(err.rows))
        key = (acc.source, acc.seq)
        if key in self._forwarding:  # the same message is being forwarded concurrently
            err = Rejected(
                f"duplicate message: source {acc.source!r} seq {acc.seq} is being forwarded"
            )
            await self.bus.publish(
                "deadletter", {"reason": str(err), "origin": origin, "received_s": now}
            )
            self.rejected += 1
            return IngestResult(False, str(err))
        self._forwarding.add(key)
        try:
            return await self._forward(acc, origin, now)
        finally:
            self._forwarding.discard(key)

    async def dead_letter(
        self,
        raw: bytes | str,
        origin: str,
        reason: str,
        rows: list[dict[str, Any]] | None = None,
        now_s: float | None = None,
    ) -> None:
        """Publish a refused message on ``deadletter`` with its reason and its first 512
        characters (raises if the bus cannot take it)."""
        text = raw if isinstance(raw, str) else raw[:512].decode("utf-8", "replace")
        body = {"reason": reason, "origin": origin, "raw": text[:512]}
        body["received_s"] = time.time() if now_s is None else now_s
        if rows:
            body.update(_dead_rows(rows))
        await self.bus.publish("deadletter", body)
        self.rejected += 1

    async def _forward(self, acc: Accepted, origin: str, now: float) -> IngestResult:
        bad = acc.rejected_rows
        if bad:  # the good rows of a columnar batch go on, each bad one is reported
            reason = f"{len(bad)} of {len(bad) + len(acc.ts_s)} rows rejected; row {bad[0]['row']}: {bad[0]['reason']}"
            body = {"reason": reason, "origin": origin, "source": acc.source, "seq": acc.seq}
            body.update(_dead_rows(bad), received_s=now)
            await self.bus.publish("deadletter", body, msg_id=f"dl:{acc.source}:{acc.seq}")
        seq = await self.bus.publish(
            "telemetry", acc.to_message(now), msg_id=f"tm:{acc.source}:{acc.seq}"
        )
        self.validator.commit(acc)
        self.accepted += 1
        self.readings += len(acc.ts_s)
        self.rejected_rows += len(bad)
        return IngestResult(True, n_readings=len(acc.ts_s), bus_seq=seq, rejected_rows=len(bad))
