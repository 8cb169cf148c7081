"""SunSpec register maps: the models an inverter or battery exposes over Modbus TCP.

A SunSpec device starts at holding register 40000 with the marker ``SunS`` and then lists
its models back to back, each as ``ID, L`` followed by ``L`` registers, until ``ID = 0xFFFF``.
Values are integers with a scale factor (``sunssf``, a power of ten stored in another
register of the model): physical = raw x 10^SF. Unimplemented values read as the SunSpec
"not implemented" pattern (int16 0x8000, uint16/enum16 0xFFFF, acc32 0).

The point layouts below follow the SunSpec Information Model definitions for model 1
(common), 101/102/103 (single/split/three-phase inverter, integer + SF), 120 (nameplate), 121
(basic settings), 122 (measurements and status, the leading points), 123 (immediate
controls), 124 (storage), 126 (static Volt-VAR, its first curve) and 802 (battery base). Offsets are counted from the first register
after ``L`` (offset 0 of model 802 is ``AHRtg``, as in the model's JSON definition).
"""

from __future__ import annotations

from dataclasses import dataclass

BASE_ADDRESS = 40000
MARKER = (0x5375, 0x6E53)  # "SunS"
END_ID = 0xFFFF

_SIZE = {
    "uint16": 1,
    "int16": 1,
    "sunssf": 1,
    "enum16": 1,
    "bitfield16": 1,
    "pad": 1,
    "uint32": 2,
    "acc32": 2,
    "bitfield32": 2,
    "acc64": 4,
}
NOT_IMPLEMENTED = {"int16": 0x8000, "sunssf": 0x8000, "uint16": 0xFFFF, "enum16": 0xFFFF}


@dataclass(frozen=True)
class Point:
    name: str
    offset: int  # registers after the model's L register
    type: str  # uint16, int16, sunssf, enum16, acc32, uint32, bitfield32, acc64, string<n>
    size: int
    sf: str | None = None


def _points(spec: list[tuple]) -> dict[str, Point]:
    out, off = {}, 0
    for name, typ, *sf in spec:
        size = int(typ[6:]) if typ.startswith("string") else _SIZE[typ]
        out[name] = Point(name, off, typ, size, sf[0] if sf else None)
        off += size
    return out


_INVERTER = [
    ("A", "uint16", "A_SF"),
    ("AphA", "uint16", "A_SF"),
    ("AphB", "uint16", "A_SF"),
    ("AphC", "uint16", "A_SF"),
    ("A_SF", "sunssf"),
    ("PPVphAB", "uint16", "V_SF"),
    ("PPVphBC", "uint16", "V_SF"),
    ("PPVphCA", "uint16", "V_SF"),
    ("PhVphA", "uint16", "V_SF"),
    ("PhVphB", "uint16", "V_SF"),
    ("PhVphC", "uint16", "V_SF"),
    ("V_SF", "sunssf"),
    ("W", "int16", "W_SF"),
    ("W_SF", "sunssf"),
    ("Hz", "uint16", "Hz_SF"),
    ("Hz_SF", "sunssf"),
    ("VA", "int16", "VA_SF"),
    ("VA_SF", "sunssf"),
    ("VAr", "int16", "VAr_SF"),
    ("VAr_SF", "sunssf"),
    ("PF", "int16", "PF_SF"),
    ("PF_SF", "sunssf"),
    ("WH", "acc32", "WH_SF"),
    ("WH_SF", "sunssf"),
    ("DCA", "uint16", "DCA_SF"),
    ("DCA_SF", "sunssf"),
    ("DCV", "uint16", "DCV_SF"),
    ("DCV_SF", "sunssf"),
    ("DCW", "int16", "DCW_SF"),
    ("DCW_SF", "sunssf"),
    ("TmpCab", "int16", "Tmp_SF"),
    ("TmpSnk", "int16", "Tmp_SF"),
    ("TmpTrns", "int16", "Tmp_SF"),
    ("TmpOt", "int16", "Tmp_SF"),
    ("Tmp_SF", "sunssf"),
    ("St", "enum16"),
    ("StVnd", "enum16"),
    ("Evt1", "bitfield32"),
    ("Evt2", "bitfield32"),
    ("EvtVnd1", "bitfield32"),
    ("EvtVnd2", "bitfield32"),
    ("EvtVnd3", "bitfield32"),
    ("EvtVnd4", "bitfield32"),
]

# 126 (static Volt-VAR): fixed points, then curve 1 as ActPt, DeptRef, V1, VAr1, ..., V20,
# VAr20, CrvNam, RmpTms, RmpDecTmm, RmpIncTmm, ReadOnly (the curve's RmpTms is ``CrvRmpTms``
# here, to keep names unique)
_VOLT_VAR = [
    ("ActCrv", "uint16"),
    ("ModEna", "bitfield16"),
    ("WinTms", "uint16"),
    ("RvrtTms", "uint16"),
    ("RmpTms", "uint16"),
    ("NCrv", "uint16"),
    ("NPt", "uint16"),
    ("V_SF", "sunssf"),
    ("DeptRef_SF", "sunssf"),
    ("RmpIncDec_SF", "sunssf"),
    ("ActPt", "uint16"),
    ("DeptRef", "enum16"),
    *[
        p
        for i in range(1, 21)
        for p in ((f"V{i}", "uint16", "V_SF"), (f"VAr{i}", "int16", "DeptRef_SF"))
    ],
    ("CrvNam", "string8"),
    ("CrvRmpTms", "uint16"),
    ("RmpDecTmm", "uint16", "RmpIncDec_SF"),
    ("RmpIncTmm", "uint16", "RmpIncDec_SF"),
    ("ReadOnly", "enum16"),
]

#: model id -> (length L, points)
MODELS: dict[int, tuple[int, dict[str, Point]]] = {
    1: (
        66,
        _points(
            [
                ("Mn", "string16"),
                ("Md", "string16"),
                ("Opt", "string8"),
                ("Vr", "string8"),
                ("SN", "string16"),
                ("DA", "uint16"),
                ("Pad", "pad"),
            ]
        ),
    ),
    101: (50, _points(_INVERTER)),
    102: (50, _points(_INVERTER)),
    103: (50, _points(_INVERTER)),
    120: (
        26,
        _points(
            [
                ("DERTyp", "enum16"),
                ("WRtg", "uint16", "WRtg_SF"),
                ("WRtg_SF", "sunssf"),
                ("VARtg", "uint16", "VARtg_SF"),
                ("VARtg_SF", "sunssf"),
                ("VArRtgQ1", "int16", "VArRtg_SF"),
                ("VArRtgQ2", "int16", "VArRtg_SF"),
                ("VArRtgQ3", "int16", "VArRtg_SF"),
                ("VArRtgQ4", "int16", "VArRtg_SF"),
                ("VArRtg_SF", "sunssf"),
                ("ARtg", "uint16", "ARtg_SF"),
                ("ARtg_SF", "sunssf"),
                ("PFRtgQ1", "int16", "PFRtg_SF"),
                ("PFRtgQ2", "int16", "PFRtg_SF"),
                ("PFRtgQ3", "int16", "PFRtg_SF"),
                ("PFRtgQ4", "int16", "PFRtg_SF"),
                ("PFRtg_SF", "sunssf"),
                ("WHRtg", "uint16", "WHRtg_SF"),
                ("WHRtg_SF", "sunssf"),
                ("AhrRtg", "uint16", "AhrRtg_SF"),
                ("AhrRtg_SF", "sunssf"),
                ("MaxChaRte", "uint16", "MaxChaRte_SF"),
                ("MaxChaRte_SF", "sunssf"),
                ("MaxDisChaRte", "uint16", "MaxDisChaRte_SF"),
                ("MaxDisChaRte_SF", "sunssf"),
                ("Pad", "pad"),
            ]
        ),
    ),
    121: (
        30,
        _points(
            [
                ("WMax", "uint16", "WMax_SF"),
                ("VRef", "uint16", "VRef_SF"),
                ("VRefOfs", "int16", "VRefOfs_SF"),
                ("VMax", "uint16", "VMinMax_SF"),
                ("VMin", "uint16", "VMinMax_SF"),
                ("VAMax", "uint16", "VAMax_SF"),
                ("VArMaxQ1", "int16", "VArMax_SF"),
                ("VArMaxQ2", "int16", "VArMax_SF"),
                ("VArMaxQ3", "int16", "VArMax_SF"),
                ("VArMaxQ4", "int16", "VArMax_SF"),
                ("WGra", "uint16", "WGra_SF"),
                ("PFMinQ1", "int16", "PFMin_SF"),
                ("PFMinQ2", "int16", "PFMin_SF"),
                ("PFMinQ3", "int16", "PFMin_SF"),
                ("PFMinQ4", "int16", "PFMin_SF"),
                ("VArAct", "enum16"),
                ("ClcTotVA", "enum16"),
                ("MaxRmpRte", "uint16", "MaxRmpRte_SF"),
                ("ECPNomHz", "uint16", "ECPNomHz_SF"),
                ("ConnPh", "enum16"),
                ("WMax_SF", "sunssf"),
                ("VRef_SF", "sunssf"),
                ("VRefOfs_SF", "sunssf"),
                ("VMinMax_SF", "sunssf"),
                ("VAMax_SF", "sunssf"),
                ("VArMax_SF", "sunssf"),
                ("WGra_SF", "sunssf"),
                ("PFMin_SF", "sunssf"),
                ("MaxRmpRte_SF", "sunssf"),
                ("ECPNomHz_SF", "sunssf"),
            ]
        ),
    ),
    122: (
        44,
        _points(
            [
                ("PVConn", "bitfield16"),
                ("StorConn", "bitfield16"),
                ("ECPConn", "bitfield16"),
                ("ActWh", "acc64"),
            ]
        ),
    ),
    123: (
        24,
        _points(
            [
                ("Conn_WinTms", "uint16"),
                ("Conn_RvrtTms", "uint16"),
                ("Conn", "enum16"),
                ("WMaxLimPct", "uint16", "WMaxLimPct_SF"),
                ("WMaxLimPct_WinTms", "uint16"),
                ("WMaxLimPct_RvrtTms", "uint16"),
                ("WMaxLimPct_RmpTms", "uint16"),
                ("WMaxLim_Ena", "enum16"),
                ("OutPFSet", "int16", "OutPFSet_SF"),
                ("OutPFSet_WinTms", "uint16"),
                ("OutPFSet_RvrtTms", "uint16"),
                ("OutPFSet_RmpTms", "uint16"),
                ("OutPFSet_Ena", "enum16"),
                ("VArWMaxPct", "int16", "VArPct_SF"),
                ("VArMaxPct", "int16", "VArPct_SF"),
                ("VArAvalPct", "int16", "VArPct_SF"),
                ("VArPct_WinTms", "uint16"),
                ("VArPct_RvrtTms", "uint16"),
                ("VArPct_RmpTms", "uint16"),
                ("VArPct_Mod", "enum16"),
                ("VArPct_Ena", "enum16"),
                ("WMaxLimPct_SF", "sunssf"),
                ("OutPFSet_SF", "sunssf"),
                ("VArPct_SF", "sunssf"),
            ]
        ),
    ),
    124: (
        24,
        _points(
            [
                ("WChaMax", "uint16", "WChaMax_SF"),
                ("WChaGra", "uint16", "WChaDisChaGra_SF"),
                ("WDisChaGra", "uint16", "WChaDisChaGra_SF"),
                ("StorCtl_Mod", "bitfield16"),
                ("VAChaMax", "uint16", "VAChaMax_SF"),
                ("MinRsvPct", "uint16", "MinRsvPct_SF"),
                ("ChaState", "uint16", "ChaState_SF"),
                ("StorAval", "uint16", "StorAval_SF"),
                ("InBatV", "uint16", "InBatV_SF"),
                ("ChaSt", "enum16"),
                ("OutWRte", "int16", "InOutWRte_SF"),
                ("InWRte", "int16", "InOutWRte_SF"),
                ("InOutWRte_WinTms", "uint16"),
                ("InOutWRte_RvrtTms", "uint16"),
                ("InOutWRte_RmpTms", "uint16"),
                ("ChaGriSet", "enum16"),
                ("WChaMax_SF", "sunssf"),
                ("WChaDisChaGra_SF", "sunssf"),
                ("VAChaMax_SF", "sunssf"),
                ("MinRsvPct_SF", "sunssf"),
                ("ChaState_SF", "sunssf"),
                ("StorAval_SF", "sunssf"),
                ("InBatV_SF", "sunssf"),
                ("InOutWRte_SF", "sunssf"),
            ]
        ),
    ),
    802: (
        62,
        _points(
            [
                ("AHRtg", "uint16", "AHRtg_SF"),
                ("WHRtg", "uint16", "WHRtg_SF"),
                ("WChaRteMax", "uint16", "WChaDisChaMax_SF"),
                ("WDisChaRteMax", "uint16", "WChaDisChaMax_SF"),
                ("DisChaRte", "uint16", "DisChaRte_SF"),
                ("SoCMax", "uint16", "SoC_SF"),
                ("SoCMin", "uint16", "SoC_SF"),
                ("SocRsvMax", "uint16", "SoC_SF"),
                ("SoCRsvMin", "uint16", "SoC_SF"),
                ("SoC", "uint16", "SoC_SF"),
                ("DoD", "uint16", "DoD_SF"),
                ("SoH", "uint16", "SoH_SF"),
                ("NCyc", "uint32"),
                ("ChaSt", "enum16"),
                ("LocRemCtl", "enum16"),
                ("Hb", "uint16"),
                ("CtrlHb", "uint16"),
                ("AlmRst", "uint16"),
                ("Typ", "enum16"),
                ("State", "enum16"),
                ("StateVnd", "enum16"),
                ("WarrDt", "uint32"),
                ("Evt1", "bitfield32"),
                ("Evt2", "bitfield32"),
                ("EvtVnd1", "bitfield32"),
                ("EvtVnd2", "bitfield32"),
                ("V", "uint16", "V_SF"),
                ("VMax", "uint16", "V_SF"),
                ("VMin", "uint16", "V_SF"),
                ("CellVMax", "uint16", "CellV_SF"),
                ("CellVMaxStr", "uint16"),
                ("CellVMaxMod", "uint16"),
                ("CellVMin", "uint16", "CellV_SF"),
                ("CellVMinStr", "uint16"),
                ("CellVMinMod", "uint16"),
                ("CellVAvg", "uint16", "CellV_SF"),
                ("A", "int16", "A_SF"),
                ("AChaMax", "uint16", "AMax_SF"),
                ("ADisChaMax", "uint16", "AMax_SF"),
                ("W", "int16", "W_SF"),
                ("ReqInvState", "enum16"),
                ("ReqW", "int16", "W_SF"),
                ("SetOp", "enum16"),
                ("SetInvState", "enum16"),
                ("AHRtg_SF", "sunssf"),
                ("WHRtg_SF", "sunssf"),
                ("WChaDisChaMax_SF", "sunssf"),
                ("DisChaRte_SF", "sunssf"),
                ("SoC_SF", "sunssf"),
                ("DoD_SF", "sunssf"),
                ("SoH_SF", "sunssf"),
                ("V_SF", "sunssf"),
                ("CellV_SF", "sunssf"),
                ("A_SF", "sunssf"),
                ("AMax_SF", "sunssf"),
                ("W_SF", "sunssf"),
            ]
        ),
    ),
    126: (10 + 54, _points(_VOLT_VAR)),
}

#: models whose length is a fixed part plus repeated groups: id -> (fixed, per group); the
#: table above describes the fixed part and the first group (126: its first curve)
REPEATING = {126: (10, 54)}


def length_ok(model: int, length: int) -> bool:
    """Whether a model header's ``L`` fits the model (repeating groups counted)."""
    want = MODELS[model][0]
    if model in REPEATING:
        fixed, per = REPEATING[model]
        return length >= want and (length - fixed) % per == 0
    return length == want


class SunSpecError(ValueError):
    """The registers are not a SunSpec map, or a value does not fit its point."""


def _to_int16(raw: int) -> int:
    return raw - 0x10000 if raw & 0x8000 else raw


def encode_int(point: Point, value: int) -> list[int]:
    """An integer (already divided by 10^SF) as ``point``'s registers (big-endian words)."""
    if point.type in ("int16", "sunssf"):
        if not -0x8000 < value <= 0x7FFF:
            msg = f"{point.name}: {value} does not fit int16"
            raise SunSpecError(msg)
        return [value & 0xFFFF]
    if not 0 <= value < 1 << (16 * point.size):
        msg = f"{point.name}: {value} does not fit {point.type}"
        raise SunSpecError(msg)
    return [(value >> (16 * (point.size - 1 - i))) & 0xFFFF for i in range(point.size)]


def decode_int(point: Point, words: list[int]) -> int | None:
    """``point``'s raw integer from its registers; None for "not implemented"."""
    if point.size == 1:
        raw = words[0]
        if NOT_IMPLEMENTED.get(point.type) == raw:
            return None
        return _to_int16(raw) if point.type in ("int16", "sunssf") else raw
    value = 0
    for w in words:
        value = (value << 16) | w
    return value


def encode_string(point: Point, text: str) -> list[int]:
    data = text.encode()[: 2 * point.size].ljust(2 * point.size, b"\0")
    return [(data[i] << 8) | data[i + 1] for i in range(0, len(data), 2)]


def decode_string(words: list[int]) -> str:
    return b"".join(w.to_bytes(2, "big") for w in words).rstrip(b"\0").decode(errors="replace")


@dataclass(frozen=True)
class SunSpecMap:
    """Where each model sits: ``{model id: first register after its L}``."""

    starts: dict[int, int]

    @classmethod
    def layout(cls, model_ids: list[int]) -> SunSpecMap:
        """The map a device exposing ``model_ids`` in this order has."""
        addr, starts = BASE_ADDRESS + 2, {}
        for mid in model_ids:
            if mid not in MODELS:
                msg = f"model {mid} is not one of the supported SunSpec models {sorted(MODELS)}"
                raise SunSpecError(msg)
            starts[mid] = addr + 2
            addr += 2 + MODELS[mid][0]
        return cls(starts)

    @property
    def end(self) -> int:
        """Address of the end marker."""
        last = max(self.starts, key=self.starts.get)
        return self.starts[last] + MODELS[last][0]

    def address(self, model: int, point: str) -> int:
        return self.starts[model] + MODELS[model][1][point].offset

    def headers(self) -> list[tuple[int, list[int]]]:
        """(address, registers) of the marker, every model header and the end marker."""
        out = [(BASE_ADDRESS, list(MARKER))]
        out += [(start - 2, [mid, MODELS[mid][0]]) for mid, start in self.starts.items()]
        out.append((self.end, [END_ID, 0]))
        return out


def decode_model(model: int, words: list[int]) -> dict[str, float | str | None]:
    """Physical values of a model's points from its ``L`` registers (scale factors applied;
    None where the device reports "not implemented")."""
    length, points = MODELS[model]
    if len(words) < length:
        msg = f"model {model}: {len(words)} registers, expected {length}"
        raise SunSpecError(msg)
    raw: dict[str, int | None] = {}
    out: dict[str, float | str | None] = {}
    for p in points.values():
        chunk = words[p.offset : p.offset + p.size]
        if p.type.startswith("string"):
            out[p.name] = decode_string(chunk)
        elif p.type != "pad":
            raw[p.name] = decode_int(p, chunk)
    for p in points.values():
        if p.name not in raw or p.type == "sunssf":
            continue
        v, sf = raw[p.name], raw.get(p.sf) if p.sf else 0
        out[p.name] = None if v is None or sf is None else v * 10.0**sf
    return out
