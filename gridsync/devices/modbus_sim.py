"""Simulated PV/battery inverters for hardware-in-the-loop runs: real Modbus TCP servers
(``pymodbus``) holding SunSpec register maps.

Each :class:`SimInverter` listens on its own loopback port (one IP per inverter in the
field) and exposes models 1, 103 (or 101), 120, 121, 122, 123 and, with a battery, 124 and
802. Its control registers decide what the hardware does:

* PV: ``123.WMaxLimPct`` (% of ``121.WMax``) while ``WMaxLim_Ena`` = 1 caps the AC output;
* power factor: ``123.OutPFSet`` while ``OutPFSet_Ena`` = 1;
* Volt-VAR: curve 1 of model 126 while ``ModEna`` = 1 and ``ActCrv`` = 1
  (:meth:`SimInverter.volt_var_pct`; points beyond +-44 % of the reference are clamped);
* battery: ``124.StorCtl_Mod`` bit 0 enables the charge limit ``InWRte``, bit 1 the
  discharge limit ``OutWRte`` (both % of ``WChaMax``). The battery runs
  ``clip(0, -OutWRte, InWRte)``, so ``InWRte = x, OutWRte = -x`` holds a charge of x % and
  ``InWRte = -y, OutWRte = y`` a discharge of y % (the forced-charge convention hybrid
  inverters use).

A write outside what the device can do is clamped in the register itself (a percentage
above 100 %, a battery rate above the present BMS limit ``bms_limit_kw``), exactly as many
real inverters do silently; the client's read-back is what notices. The driver (the twin
loop or the bench) reads :meth:`SimInverter.pv_limit_kw` / :meth:`SimInverter.battery_kw`
and writes measurements with :meth:`SimInverter.measure`.
"""

from __future__ import annotations

import math

import numpy as np
from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from gridsync.devices.sunspec import (
    BASE_ADDRESS,
    MODELS,
    NOT_IMPLEMENTED,
    SunSpecMap,
    decode_int,
    encode_int,
    encode_string,
)

#: scale factors this simulator uses (a real device chooses its own; clients read them)
SCALE = {
    "A_SF": -1,
    "V_SF": -1,
    "W_SF": 0,
    "Hz_SF": -2,
    "VA_SF": 0,
    "VAr_SF": 0,
    "PF_SF": -3,
    "WH_SF": 0,
    "DCA_SF": -1,
    "DCV_SF": -1,
    "DCW_SF": 0,
    "Tmp_SF": -1,
    "WRtg_SF": 0,
    "VARtg_SF": 0,
    "VArRtg_SF": 0,
    "ARtg_SF": -1,
    "PFRtg_SF": -3,
    "WHRtg_SF": 0,
    "AhrRtg_SF": 0,
    "MaxChaRte_SF": 0,
    "MaxDisChaRte_SF": 0,
    "WMax_SF": 0,
    "VRef_SF": -1,
    "VRefOfs_SF": -1,
    "VMinMax_SF": -1,
    "VAMax_SF": 0,
    "VArMax_SF": 0,
    "WGra_SF": -1,
    "PFMin_SF": -3,
    "MaxRmpRte_SF": 0,
    "ECPNomHz_SF": -2,
    "WMaxLimPct_SF": -2,
    "OutPFSet_SF": -3,
    "VArPct_SF": -1,
    "WChaMax_SF": 0,
    "WChaDisChaGra_SF": 0,
    "VAChaMax_SF": 0,
    "MinRsvPct_SF": -1,
    "ChaState_SF": -2,
    "StorAval_SF": 0,
    "InBatV_SF": -1,
    "InOutWRte_SF": -2,
    "AHRtg_SF": 0,
    "WChaDisChaMax_SF": 0,
    "DisChaRte_SF": -1,
    "SoC_SF": -2,
    "DoD_SF": -1,
    "SoH_SF": -1,
    "CellV_SF": -3,
    "AMax_SF": 0,
    "DeptRef_SF": -1,
    "RmpIncDec_SF": 0,
}
NOMINAL_V = 230.0
VAR_LIMIT_RAW = 440  # Volt-VAR points beyond +-44.0 % (0.9 power factor) are clamped
POWER_SF = (
    "W_SF",
    "VA_SF",
    "VAr_SF",
    "DCW_SF",
    "WRtg_SF",
    "VARtg_SF",
    "VArRtg_SF",
    "WMax_SF",
    "VAMax_SF",
    "VArMax_SF",
    "WChaMax_SF",
    "WChaDisChaMax_SF",
    "MaxChaRte_SF",
    "MaxDisChaRte_SF",
)
ENERGY_SF = ("WHRtg_SF",)


def _decade(peak: float) -> int:
    """Smallest scale factor >= 0 that keeps ``1.5 x peak`` inside an int16 register."""
    sf = 0
    while 1.5 * peak / 10.0**sf > 0x7FFF:
        sf += 1
    return sf


class SimInverter:
    """One simulated hybrid inverter (ratings in kW / kWh); ``await start()``."""

    def __init__(
        self,
        name: str,
        pv_kw: float,
        battery_kwh: float = 0.0,
        battery_kw: float = 0.0,
        phases: int = 3,
        device_id: int = 1,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.name, self.host, self.port, self.device_id = name, host, port, device_id
        self.rated_kw = max(pv_kw, battery_kw, 0.1)
        self.battery_kwh, self.battery_rated_kw = battery_kwh, battery_kw
        self.bms_limit_kw = battery_kw  # what the battery accepts now (a BMS may derate)
        self.pv_available_kw = 0.0
        self.writes = 0
        models = [1, 103 if phases == 3 else 101, 120, 121, 122, 123, 126]
        if battery_kwh > 0:
            models += [124, 802]
        self.scale = dict(SCALE)  # power and energy scale factors follow the ratings
        self.scale.update({n: _decade(self.rated_kw * 1000.0) for n in POWER_SF})
        self.scale.update({n: _decade(battery_kwh * 1000.0) for n in ENERGY_SF})
        self.scale["W_SF"] = self.scale["WMax_SF"]
        self.map = SunSpecMap.layout(models)
        self._var_addresses = {self.map.address(126, f"VAr{i}") for i in range(1, 21)}
        self.regs = [0] * (self.map.end + 2 - BASE_ADDRESS)
        self._server: ModbusTcpServer | None = None
        self._init_registers(models)

    # registers ----------------------------------------------------------------------------
    def _put(self, model: int, point: str, words: list[int]) -> None:
        a = self.map.address(model, point) - BASE_ADDRESS
        self.regs[a : a + len(words)] = words

    def set(self, model: int, point: str, value: float) -> None:
        """Write a physical value into a point (scaled by the point's scale factor); a value
        the device cannot measure (NaN) reads as SunSpec's "not implemented"."""
        p = MODELS[model][1][point]
        if not math.isfinite(value) and p.type in NOT_IMPLEMENTED:
            self._put(model, point, [NOT_IMPLEMENTED[p.type]])
            return
        sf = self.scale.get(p.sf, 0) if p.sf else 0
        self._put(model, point, encode_int(p, round(value / 10.0**sf)))

    def get(self, model: int, point: str) -> float:
        p = MODELS[model][1][point]
        a = self.map.address(model, point) - BASE_ADDRESS
        raw = decode_int(p, self.regs[a : a + p.size])
        sf = self.scale.get(p.sf, 0) if p.sf else 0
        return float("nan") if raw is None else raw * 10.0**sf

    def _init_registers(self, models: list[int]) -> None:
        for addr, words in self.map.headers():
            self.regs[addr - BASE_ADDRESS : addr - BASE_ADDRESS + len(words)] = words
        for mid in models:
            for p in MODELS[mid][1].values():
                if p.type in NOT_IMPLEMENTED:
                    self._put(mid, p.name, [NOT_IMPLEMENTED[p.type]])
                if p.type == "sunssf" and p.name in self.scale:
                    self._put(mid, p.name, encode_int(p, self.scale[p.name]))
        self._put(1, "Mn", encode_string(MODELS[1][1]["Mn"], "GridSync-sim"))
        self._put(1, "Md", encode_string(MODELS[1][1]["Md"], "HIL-hybrid"))
        self._put(1, "SN", encode_string(MODELS[1][1]["SN"], self.name))
        self.set(1, "DA", self.device_id)
        w = self.rated_kw * 1000.0
        self.set(120, "DERTyp", 4)  # PV
        self.set(120, "WRtg", w)
        self.set(121, "WMax", w)
        self.set(121, "VRef", NOMINAL_V)
        self.set(121, "ECPNomHz", 50.0)
        self.set(123, "WMaxLimPct", 100.0)
        self.set(123, "WMaxLim_Ena", 0)
        self.set(123, "OutPFSet", 1.0)
        self.set(123, "OutPFSet_Ena", 0)
        self.set(126, "ActCrv", 0)
        self.set(126, "ModEna", 0)
        self.set(126, "NCrv", 1)
        self.set(126, "NPt", 20)
        self.set(126, "ReadOnly", 0)
        self.set(126, "ActPt", 0)
        self.set(126, "DeptRef", 2)
        if self.battery_kwh > 0:
            self.set(120, "DERTyp", 82)  # PV + storage
            self.set(120, "WHRtg", self.battery_kwh * 1000.0)
            self.set(120, "MaxChaRte", self.battery_rated_kw * 1000.0)
            self.set(120, "MaxDisChaRte", self.battery_rated_kw * 1000.0)
            self.set(124, "WChaMax", self.battery_rated_kw * 1000.0)
            self.set(124, "StorCtl_Mod", 0)
            self.set(124, "InWRte", 100.0)
            self.set(124, "OutWRte", 100.0)
            self.set(802, "WHRtg", self.battery_kwh * 1000.0)
            self.set(802, "WChaRteMax", self.battery_rated_kw * 1000.0)
            self.set(802, "WDisChaRteMax", self.battery_rated_kw * 1000.0)
            self.set(802, "LocRemCtl", 0)
            self.set(802, "State", 3)
        self.measure(0.0, 0.0, 0.5 if self.battery_kwh > 0 else None, 1.0)

    # what the hardware does ---------------------------------------------------------------
    def pv_limit_kw(self) -> float:
        """The AC output cap the controls set (kW)."""
        if self.get(123, "WMaxLim_Ena") != 1:
            return self.rated_kw
        return self.get(123, "WMaxLimPct") / 100.0 * self.get(121, "WMax") / 1000.0

    def volt_var_pct(self, v_pu: float) -> float | None:
        """Reactive power the active Volt-VAR curve asks for at ``v_pu`` (% of its reference,
        + = injecting vars), flat beyond the end points; None when no curve is active."""
        if self.get(126, "ModEna") != 1 or self.get(126, "ActCrv") != 1:
            return None
        n = int(self.get(126, "ActPt"))
        v = [self.get(126, f"V{i}") for i in range(1, n + 1)]
        q = [self.get(126, f"VAr{i}") for i in range(1, n + 1)]
        return float(np.interp(100.0 * v_pu, v, q))

    def battery_kw(self) -> float:
        """The battery power the controls ask for (kW, + charge), 0 without remote control."""
        if self.battery_kwh <= 0:
            return 0.0
        mode = int(self.get(124, "StorCtl_Mod"))
        hi = self.get(124, "InWRte") if mode & 1 else 100.0
        lo = -self.get(124, "OutWRte") if mode & 2 else -100.0
        pct = min(max(0.0, lo), hi)
        return pct / 100.0 * self.get(124, "WChaMax") / 1000.0

    def measure(
        self,
        pv_kw: float,
        battery_kw: float,
        soc_frac: float | None,
        v_pu: float,
        q_kvar: float = 0.0,
    ) -> None:
        """Meter values from the physical side: PV output and battery power (kW, battery
        + charging), state of charge, terminal voltage (p.u.)."""
        ac_w = (pv_kw - battery_kw) * 1000.0  # SunSpec W: positive = delivered to the grid
        mid = 103 if 103 in self.map.starts else 101
        self.set(mid, "W", ac_w)
        self.set(mid, "VAr", q_kvar * 1000.0)
        self.set(mid, "PhVphA", v_pu * NOMINAL_V)
        self.set(mid, "Hz", 50.0)
        self.set(mid, "DCW", pv_kw * 1000.0)
        self.set(mid, "St", 4 if pv_kw > 0 or battery_kw != 0 else 2)  # MPPT / sleeping
        if self.battery_kwh > 0 and soc_frac is not None:
            self.set(802, "SoC", soc_frac * 100.0)
            self.set(124, "ChaState", soc_frac * 100.0)
            self.set(802, "W", battery_kw * 1000.0)
            self.set(802, "ChaSt", 4 if battery_kw > 0 else 3 if battery_kw < 0 else 6)

    # Modbus side --------------------------------------------------------------------------
    def _clamp(self, address: int, values: list[int]) -> None:
        """Clamp written control values to what the device can do, in place."""
        for i, raw in enumerate(values):
            a = address + i
            if 123 in self.map.starts and a == self.map.address(123, "WMaxLimPct"):
                values[i] = min(raw, 10000)  # 100.00 %
            if 126 in self.map.starts and a in self._var_addresses:
                signed = raw - 0x10000 if raw & 0x8000 else raw
                values[i] = max(min(signed, VAR_LIMIT_RAW), -VAR_LIMIT_RAW) & 0xFFFF
            if 124 in self.map.starts and a in (
                self.map.address(124, "InWRte"),
                self.map.address(124, "OutWRte"),
            ):
                cap = round(100.0 * self.bms_limit_kw / max(self.battery_rated_kw, 1e-9) * 100)
                signed = raw - 0x10000 if raw & 0x8000 else raw
                values[i] = max(min(signed, cap), -cap) & 0xFFFF

    async def _action(self, function_code, start_address, address, count, registers, set_values):
        offset = address - start_address
        if offset < 0 or address + count > BASE_ADDRESS + len(self.regs):
            return ExcCodes.ILLEGAL_ADDRESS
        if set_values is not None:
            values = list(set_values)
            self._clamp(address, values)
            set_values[:] = values
            a = address - BASE_ADDRESS
            self.regs[a : a + len(values)] = values
            self.writes += 1
            return None
        a = address - BASE_ADDRESS
        registers[offset : offset + count] = self.regs[a : a + count]
        return None

    async def start(self) -> None:
        block = SimData(BASE_ADDRESS, count=len(self.regs), values=0, datatype=DataType.REGISTERS)
        dev = SimDevice(id=self.device_id, simdata=[block], action=self._action)
        self._server = ModbusTcpServer(dev, address=(self.host, self.port))
        await self._server.serve_forever(background=True)
        self.port = self._server.transport.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.shutdown()
            self._server = None
