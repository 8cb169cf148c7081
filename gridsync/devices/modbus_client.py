"""GridSync's Modbus TCP side: discover SunSpec models, poll telemetry, write controls with
read-back verification.

:class:`SunSpecClient` talks to one device: :meth:`~SunSpecClient.discover` walks the model
list from register 40000 (``SunS``, then ``ID, L`` headers), so nothing about the device's
layout is assumed; scale factors are read from the device, never guessed. Commands:

* :meth:`~SunSpecClient.set_pv_limit_pct` -> ``123.WMaxLimPct`` + ``WMaxLim_Ena``;
* :meth:`~SunSpecClient.set_power_factor` -> ``123.OutPFSet`` + ``OutPFSet_Ena``;
* :meth:`~SunSpecClient.set_volt_var` -> ``126`` curve 1 (points, ``ActCrv = 1``, ``ModEna``);
* :meth:`~SunSpecClient.set_battery_kw` -> ``124.StorCtl_Mod = 3``, ``InWRte = x``,
  ``OutWRte = -x`` (x % of ``WChaMax``; negative x discharges), see
  :mod:`gridsync.devices.modbus_sim` for the convention.

Every write is read back: when the device holds another value than was written (it clamped
the setpoint, or something else wrote), the result says so, an alert
``setpoint_readback`` goes out with both values, and the audit entry records it.

:meth:`~SunSpecClient.poll` turns models 101-103 and 802 into GridSync readings: ``p`` (kW,
load convention, so a producing inverter is negative), ``q`` (kvar), ``v`` (p.u. of
``121.VRef``) and ``soc`` (%); :class:`ModbusFleet` polls many devices concurrently into a
:class:`~gridsync.devices.telemetry.ReadingSink` (the validating ingestion path).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException

from gridsync.devices.audit import AuditTrail
from gridsync.devices.sunspec import (
    BASE_ADDRESS,
    END_ID,
    MARKER,
    MODELS,
    SunSpecError,
    decode_int,
    decode_model,
    encode_int,
    length_ok,
)
from gridsync.devices.telemetry import ReadingSink

log = logging.getLogger(__name__)
Alert = Callable[[dict[str, Any]], Awaitable[Any]]
MAX_READ = 125  # registers per Modbus read request


class DeviceError(RuntimeError):
    """The device did not answer, answered with a Modbus exception, or is not SunSpec."""


@dataclass
class WriteResult:
    """One verified write: ``written``/``readback`` are physical values per point;
    ``status`` is ok, readback_differs or error."""

    device: str
    model: int
    written: dict[str, float]
    readback: dict[str, float | None] = field(default_factory=dict)
    status: str = "ok"
    latency_s: float = 0.0
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "ok"


class SunSpecClient:
    """One SunSpec device over Modbus TCP; ``await connect()`` discovers its models."""

    def __init__(
        self,
        name: str,
        host: str,
        port: int,
        device_id: int = 1,
        timeout_s: float = 3.0,
        audit: AuditTrail | None = None,
        alert: Alert | None = None,
    ) -> None:
        self.name, self.device_id = name, device_id
        self.client = AsyncModbusTcpClient(host, port=port, timeout=timeout_s, retries=1)
        self.audit = audit or AuditTrail(actor="modbus")
        self.alert = alert
        self.models: dict[int, int] = {}  # model id -> first register after L
        self.sf: dict[int, dict[str, int | None]] = {}  # model -> scale factor values
        self.last: dict[int, dict[str, Any]] = {}  # each model as last read
        self.vref_v: float | None = None  # 121.VRef, read at discovery
        self.w_cha_max_w: float | None = None  # 124.WChaMax, read at discovery
        self._lock = asyncio.Lock()  # one transaction at a time per device

    async def connect(self, attempts: int = 5) -> None:
        """Connect (retrying with backoff: a busy device or host may miss the first
        ``timeout_s``) and discover the models."""
        for k in range(attempts):
            if await self.client.connect():
                break
            await asyncio.sleep(0.5 * 2**k)
        else:
            host, port = self.client.comm_params.host, self.client.comm_params.port
            msg = (
                f"{self.name}: no Modbus TCP connection to {host}:{port} after {attempts} attempts"
            )
            raise DeviceError(msg)
        await self.discover()

    def close(self) -> None:
        self.client.close()

    async def _read(self, address: int, count: int) -> list[int]:
        words: list[int] = []
        async with self._lock:
            for a in range(address, address + count, MAX_READ):
                n = min(MAX_READ, address + count - a)
                try:
                    rr = await self.client.read_holding_registers(
                        a, count=n, device_id=self.device_id
                    )
                except ModbusException as err:
                    raise DeviceError(f"{self.name}: read {a}+{n} failed: {err}") from None
                if rr.isError() or len(rr.registers) != n:
                    raise DeviceError(f"{self.name}: read {a}+{n} refused: {rr}")
                words += rr.registers
        return words

    async def _write(self, address: int, words: list[int]) -> None:
        async with self._lock:
            try:
                rr = await self.client.write_registers(address, words, device_id=self.device_id)
            except ModbusException as err:
                raise DeviceError(f"{self.name}: write {address} failed: {err}") from None
            if rr.isError():
                raise DeviceError(f"{self.name}: write {address} refused: {rr}")

    async def discover(self) -> dict[int, int]:
        """Walk the SunSpec model list; remembers each supported model's start and its scale
        factors. Raises :class:`DeviceError` when register 40000 does not hold ``SunS``."""
        if tuple(await self._read(BASE_ADDRESS, 2)) != MARKER:
            msg = f"{self.name}: no SunSpec marker 'SunS' at register {BASE_ADDRESS}"
            raise DeviceError(msg)
        addr, models = BASE_ADDRESS + 2, {}
        for _ in range(64):
            mid, length = await self._read(addr, 2)
            if mid == END_ID:
                break
            if mid in MODELS:
                if not length_ok(mid, length):
                    msg = f"{self.name}: model {mid} has length {length}, expected {MODELS[mid][0]}"
                    raise DeviceError(msg)
                models[mid] = addr + 2
            addr += 2 + length
        self.models = models
        for mid in models:
            words = await self._read(models[mid], MODELS[mid][0])
            self.sf[mid] = {
                p.name: decode_int(p, words[p.offset : p.offset + 1])
                for p in MODELS[mid][1].values()
                if p.type == "sunssf"
            }
        self.vref_v = (await self.read_model(121)).get("VRef") if 121 in models else None
        self.w_cha_max_w = (await self.read_model(124)).get("WChaMax") if 124 in models else None
        return models

    async def read_model(self, model: int) -> dict[str, Any]:
        """Physical values of one model's points."""
        if model not in self.models:
            msg = f"{self.name}: the device does not expose model {model}"
            raise DeviceError(msg)
        values = decode_model(model, await self._read(self.models[model], MODELS[model][0]))
        self.last[model] = values
        return values

    def _raw(self, model: int, point: str, value: float) -> list[int]:
        p = MODELS[model][1][point]
        sf = self.sf[model].get(p.sf, 0) if p.sf else 0
        if sf is None:
            msg = f"{self.name}: {model}.{point} has no scale factor (not implemented)"
            raise DeviceError(msg)
        return encode_int(p, round(value / 10.0**sf))

    async def write(self, model: int, values: dict[str, float], why: str = "") -> WriteResult:
        """Write physical ``values`` to ``model``'s points, then read them back."""
        t0 = time.perf_counter()
        res = WriteResult(self.name, model, dict(values))
        try:
            if model not in self.models:
                msg = f"the device does not expose model {model}"
                raise DeviceError(msg)
            raw = {name: self._raw(model, name, v) for name, v in values.items()}
            for offset, words in _runs(model, raw):  # adjacent points in one request
                await self._write(self.models[model] + offset, words)
            back = await self.read_model(model)
            res.readback = {name: back.get(name) for name in values}
            for name, words in raw.items():
                want = decode_model_point(model, name, words, self.sf[model])
                got = res.readback[name]
                if got is None or not math.isclose(got, want, rel_tol=1e-9, abs_tol=1e-9):
                    res.status = "readback_differs"
        except (DeviceError, SunSpecError) as err:
            res.status, res.detail = "error", str(err)[:200]
        res.latency_s = time.perf_counter() - t0
        self.audit.record(
            "modbus.write",
            self.name,
            {
                "model": model,
                "why": why,
                "written": res.written,
                "readback": res.readback,
                "status": res.status,
                "latency_s": round(res.latency_s, 4),
                "error": res.detail,
            },
        )
        if res.status == "readback_differs" and self.alert is not None:
            await self.alert(
                {
                    "kind": "setpoint_readback",
                    "severity": "warning",
                    "source": "modbus",
                    "device": self.name,
                    "message": f"{self.name}: model {model} holds {res.readback} after writing {res.written}",
                    "written": res.written,
                    "readback": res.readback,
                    "ts_s": time.time(),
                }
            )
        return res

    # commands -----------------------------------------------------------------------------
    async def set_pv_limit_pct(self, pct: float) -> WriteResult:
        return await self.write(123, {"WMaxLimPct": pct, "WMaxLim_Ena": 1}, "active power limit")

    async def set_volt_var(
        self, points: list[tuple[float, float]], dept_ref: int = 2
    ) -> WriteResult:
        """Load ``[(V in % of VRef, VAr in % of the reference), ...]`` (at most 20, V rising)
        as Volt-VAR curve 1 and activate it (``dept_ref`` 1 = %WMax, 2 = %VArMax,
        3 = %VArAval)."""
        if not 2 <= len(points) <= 20 or any(
            b[0] <= a[0] for a, b in zip(points, points[1:], strict=False)
        ):
            msg = f"volt-var: 2 to 20 points with rising voltage expected, got {points}"
            raise ValueError(msg)
        values = {"ActPt": len(points), "DeptRef": dept_ref, "ActCrv": 1, "ModEna": 1}
        for i, (v, q) in enumerate(points, start=1):
            values[f"V{i}"], values[f"VAr{i}"] = v, q
        return await self.write(126, values, "volt-var curve 1")

    async def set_power_factor(self, pf: float) -> WriteResult:
        return await self.write(123, {"OutPFSet": pf, "OutPFSet_Ena": 1}, "power factor")

    async def set_battery_kw(self, kw: float) -> WriteResult:
        """Hold the battery at ``kw`` (+ charge, - discharge)."""
        if 124 not in self.models:
            return WriteResult(
                self.name, 124, {"kW": kw}, status="error", detail="no storage model"
            )
        w_max = self.w_cha_max_w or 0.0
        pct = 0.0 if w_max <= 0 else 100.0 * kw * 1000.0 / w_max
        values = {"InWRte": pct, "OutWRte": -pct}  # adjacent: one write request
        if self.last.get(124, {}).get("StorCtl_Mod") != 3:  # as last read back
            values["StorCtl_Mod"] = 3
        return await self.write(124, values, f"battery {kw:.3f} kW")

    async def poll(self) -> list[tuple[str, str, str, float, float]]:
        """Readings ``(device, quantity, unit, value, ts)`` of the inverter and battery."""
        now = time.time()
        inv = next((m for m in (103, 102, 101) if m in self.models), None)
        out = []
        if inv is not None:
            m = await self.read_model(inv)
            vref = self.vref_v
            if m.get("W") is not None:
                out.append((self.name, "p", "W", -m["W"], now))
            if m.get("VAr") is not None:
                out.append((self.name, "q", "var", -m["VAr"], now))
            if m.get("PhVphA") is not None and vref:
                out.append((self.name, "v", "pu", m["PhVphA"] / vref, now))
        if 802 in self.models:
            soc = (await self.read_model(802)).get("SoC")
            if soc is not None:
                out.append((self.name, "soc", "%", soc, now))
        return out


def _runs(model: int, raw: dict[str, list[int]]) -> list[tuple[int, list[int]]]:
    """Points' registers merged into contiguous runs ``(offset, words)``."""
    pts = MODELS[model][1]
    runs: list[tuple[int, list[int]]] = []
    for name in sorted(raw, key=lambda n: pts[n].offset):
        off = pts[name].offset
        if runs and runs[-1][0] + len(runs[-1][1]) == off:
            runs[-1][1].extend(raw[name])
        else:
            runs.append((off, list(raw[name])))
    return runs


def decode_model_point(model: int, name: str, words: list[int], sf: dict[str, int | None]) -> float:
    """The physical value ``words`` encode for one point (scale factor from ``sf``)."""
    p = MODELS[model][1][name]
    raw = decode_int(p, words)
    scale = sf.get(p.sf, 0) if p.sf else 0
    return float("nan") if raw is None or scale is None else raw * 10.0**scale


@dataclass
class ModbusFleet:
    """Many SunSpec devices: concurrent polls into the ingestion path and verified writes."""

    clients: dict[str, SunSpecClient]
    sink: ReadingSink = field(default_factory=ReadingSink)
    poll_failures: int = 0
    latest: dict[str, dict[str, float]] = field(default_factory=dict)  # device -> quantity -> value

    async def connect(self) -> None:
        await asyncio.gather(*(c.connect() for c in self.clients.values()))

    def close(self) -> None:
        for c in self.clients.values():
            c.close()

    async def _poll_one(self, c: SunSpecClient) -> int:
        try:
            rows = await c.poll()
        except DeviceError as err:
            self.poll_failures += 1
            log.warning("poll failed: %s", err)
            return 0
        self.latest[c.name] = {q: v for _, q, _, v, _ in rows}
        return len(rows) if await self.sink.submit(c.name, rows) else 0

    async def poll_all(self) -> int:
        """Poll every device once; returns how many readings ingestion accepted."""
        done = await asyncio.gather(*(self._poll_one(c) for c in self.clients.values()))
        return int(sum(done))
