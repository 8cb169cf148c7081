"""Build a ``ThreePhaseNetwork`` from an OpenDSS script (``gridsync.grid.threephase.dss``).

Modelled: ``Vsource`` (MVAsc or Isc, X/R), ``LineCode`` (phase matrices or sequence values,
capacitance; ``kron=y`` eliminates a grounded neutral), ``Line`` (linecode or own impedances, unit conversion, switches), two-winding
``Transformer`` (wye/delta, taps, %R per winding, XHL; ANSI 30-degree lag, or ``LeadLag=lead``),
``Load`` (wye/delta, models 1 = constant PQ, 2 = constant Z, 5 = constant current, each turning
into constant impedance outside [vminpu, vmaxpu] as OpenDSS does; below vminpu OpenDSS
further blends towards its nominal impedance at vlowpu, which is not reproduced), ``Capacitor`` and
``Loadshape`` (inline multipliers). ``RegControl`` (line-drop compensated voltage
regulators) is solved by ``regulators.regulate``; here taps are fixed as given. Anything else raises ``DSSError`` naming it.
Transformer magnetising branches (%imag, %noloadloss) are not modelled and must be zero.
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np

from gridsync.grid.threephase.dss import (
    Circuit,
    DSSError,
    lower_triangle,
    number,
    numbers,
    read_dss,
    strings,
)
from gridsync.grid.threephase.elements import (
    SQRT3,
    coil_pair_admittance,
    kron_reduce,
    line_yprim,
    sequence_to_phase,
    source_impedance_ohm,
    transformer_yprim,
)
from gridsync.grid.threephase.network import NetworkAssembler, ThreePhaseNetwork, Winding
from gridsync.grid.threephase.solver import assign_voltage_bases

UNIT_M = {
    "mi": 1609.344,
    "kft": 304.8,
    "km": 1000.0,
    "m": 1.0,
    "ft": 0.3048,
    "in": 0.0254,
    "cm": 0.01,
    "mm": 0.001,
    "none": 0.0,
}
IGNORED_CLASSES = {"monitor", "energymeter"}


def _bus_nodes(spec: str, n_phase: int, n_cond: int) -> tuple[str, list[int]]:
    """Bus name and node numbers of a terminal: given nodes, else 1..n_phase; the rest 0."""
    name, *given = spec.strip().split(".")
    nodes = [int(g) for g in given] if given else list(range(1, n_phase + 1))
    return name.lower(), (nodes + [0] * n_cond)[:n_cond]


def _matrix(value: str, n: int) -> np.ndarray:
    rows = lower_triangle(value)
    m = np.zeros((n, n))
    for i, row in enumerate(rows[:n]):
        if len(row) == i + 1:
            m[i, : i + 1] = row
            m[: i + 1, i] = row
        else:
            m[i, : len(row)] = row
    return m


class _LineData:
    """Per-unit-length series Z (ohm) and shunt C (nF) with their length unit: from sequence
    values (OpenDSS's defaults until given) or from phase matrices, whichever came last."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.seq = {"r1": 0.058, "x1": 0.1206, "r0": 0.1784, "x0": 0.4047, "c1": 3.4, "c0": 1.6}
        self.mat: dict[str, np.ndarray] = {}
        self.units = "none"
        self.kron = False
        self.neutral = n

    def set_sequence(self, key: str, value: float) -> None:
        self.seq[key] = value
        self.mat.pop({"r": "rmatrix", "x": "xmatrix", "c": "cmatrix"}[key[0]], None)

    def apply(self, props: list[tuple[str, str]]) -> None:
        for key, value in props:
            if key in self.seq:
                self.set_sequence(key, number(value))
            elif key in ("rmatrix", "xmatrix", "cmatrix"):
                self.mat[key] = _matrix(value, self.n)
            elif key == "units":
                self.units = value.lower()
            elif key == "nphases":
                self.n = self.neutral = int(number(value))
            elif key == "kron":
                self.kron = value.lower().startswith(("y", "t"))
            elif key == "neutral":
                self.neutral = int(number(value))

    def reduced(self, z: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """With ``kron=y``: the neutral conductor (``neutral``, default the last) grounded at
        both ends and eliminated; Z by Kron reduction, C by dropping its row and column (a
        grounded conductor carries no potential)."""
        if not self.kron:
            return z, c
        keep = np.arange(self.n) != self.neutral - 1
        return kron_reduce(z, keep), c[np.ix_(keep, keep)]

    def matrix(self, kind: str) -> np.ndarray:
        """``kind`` in r, x, c: the phase matrix per unit length."""
        if f"{kind}matrix" in self.mat:
            return self.mat[f"{kind}matrix"]
        return sequence_to_phase(self.seq[f"{kind}1"], self.seq[f"{kind}0"], self.n).real

    def per_length(self) -> tuple[np.ndarray, np.ndarray]:
        """Series Z (ohm) and shunt C (nF) per unit length after any Kron reduction."""
        return self.reduced(self.matrix("r") + 1j * self.matrix("x"), self.matrix("c"))


def _vsource(asm: NetworkAssembler, el, base_freq: float) -> None:
    kv, pu, angle = 115.0, 1.0, 0.0
    mvasc3, mvasc1, x1r1, x0r0 = 2000.0, 2100.0, 4.0, 3.0
    isc3 = isc1 = None
    bus = "sourcebus"
    n_phase = 3
    for key, value in el.props:
        if key == "basekv":
            kv = number(value)
        elif key == "pu":
            pu = number(value)
        elif key == "angle":
            angle = number(value)
        elif key == "mvasc3":
            mvasc3, isc3 = number(value), None
        elif key == "mvasc1":
            mvasc1, isc1 = number(value), None
        elif key == "isc3":
            isc3 = number(value)
        elif key == "isc1":
            isc1 = number(value)
        elif key == "x1r1":
            x1r1 = number(value)
        elif key == "x0r0":
            x0r0 = number(value)
        elif key == "bus1":
            bus = value
        elif key == "phases":
            n_phase = int(number(value))
        else:
            msg = f"Vsource.{el.name}: property {key!r} is not supported"
            raise DSSError(msg)
    if n_phase != 3:
        msg = f"Vsource.{el.name}: only three-phase sources are supported (phases={n_phase})"
        raise DSSError(msg)
    if isc3 is not None:
        mvasc3 = SQRT3 * kv * isc3 / 1000.0
    if isc1 is not None:
        mvasc1 = SQRT3 * kv * isc1 / 1000.0
    z1, z0 = source_impedance_ohm(kv, mvasc3, mvasc1, x1r1, x0r0)
    name, nodes = _bus_nodes(bus, 3, 3)
    term = [asm.node(name, p) for p in nodes]
    internal = [asm.node(f"_source_{el.name}", p) for p in (1, 2, 3)]
    yprim = line_yprim(sequence_to_phase(z1, z0, 3), np.zeros((3, 3)))
    asm.add_primitive(term + internal, yprim)
    v = kv * 1000.0 * pu / SQRT3
    for k, node in enumerate(internal):
        asm.add_slack(node, v * np.exp(1j * np.deg2rad(angle - 120.0 * k)))


_OWN_IMPEDANCE = {"switch", "r1", "x1", "r0", "x0", "c1", "c0", "rmatrix", "xmatrix", "cmatrix"}


def _linecode(el, codes: dict, n: int, cache: dict) -> _LineData:
    """The line's linecode data (parsed once per linecode and line phase count)."""
    code = el.get("linecode")
    key = (code.lower() if code else None, n)
    if key not in cache:
        data = _LineData(n)
        if code is not None:
            if code.lower() not in codes:
                msg = f"Line.{el.name}: linecode {code!r} is not defined"
                raise DSSError(msg)
            data.apply(codes[code.lower()].props)
            if data.kron and data.n - 1 != n:
                msg = f"Line.{el.name}: linecode {code!r} reduces {data.n} conductors to {data.n - 1}, line has phases={n}"
                raise DSSError(msg)
        cache[key] = (data, data.per_length())
    return cache[key]


def _line(asm, el, codes: dict, base_freq: float, cache: dict) -> None:
    n = int(number(el.get("phases", "3")))
    data, per_length = _linecode(el, codes, n, cache)
    if any(k in _OWN_IMPEDANCE for k, _ in el.props):
        data = copy.deepcopy(data)
        per_length = None
    length, units, switch = 1.0, None, False
    for key, value in el.props:
        if key == "switch" and value.lower().startswith(("y", "t")):
            switch = True
            for k, v in zip(data.seq, (1.0, 1.0, 1.0, 1.0, 1.1, 1.0), strict=True):
                data.set_sequence(k, v)
            data.units, length = "none", 0.001
        elif key in ("r1", "x1", "r0", "x0", "c1", "c0", "rmatrix", "xmatrix", "cmatrix"):
            data.apply([(key, value)])
        elif key == "length":
            length = number(value)
        elif key == "units":
            units = value.lower()
    scale = length
    if units is not None and units != "none" and data.units != "none":
        scale = length * UNIT_M[units] / UNIT_M[data.units]
    z, c = data.per_length() if per_length is None else per_length
    z = z * scale
    yc = 1j * 2 * np.pi * base_freq * c * 1e-9 * scale
    b1, n1 = _bus_nodes(el.get("bus1"), n, n)
    b2, n2 = _bus_nodes(el.get("bus2", el.get("bus1").split(".")[0]), n, n)
    nodes = [asm.node(b1, p) for p in n1] + [asm.node(b2, p) for p in n2]
    yprim = line_yprim(z, yc)
    asm.add_primitive(nodes, yprim)
    kind = "switch" if switch else "line"
    asm.add_branch(f"line.{el.name}", kind, nodes, n1, yprim, n, float(el.get("normamps", "nan")))


def _transformer(asm, el, lag: bool) -> None:
    n_phase, n_wdg, xhl = 3, 2, 7.0
    tap_range = {"mintap": 0.9, "maxtap": 1.1, "numtaps": 32.0}
    wdg = [dict(bus="", conn="wye", kv=12.47, kva=1000.0, r=0.2, tap=1.0) for _ in range(2)]
    cur = 0
    for key, value in el.props:
        if key == "phases":
            n_phase = int(number(value))
        elif key == "windings":
            n_wdg = int(number(value))
        elif key == "wdg":
            cur = int(number(value)) - 1
        elif key in ("bus", "conn", "kv", "kva", "%r", "tap"):
            field = {"%r": "r"}.get(key, key)
            wdg[cur][field] = value if key in ("bus", "conn") else number(value)
        elif key in ("buses", "conns", "kvs", "kvas", "%rs", "taps"):
            field = {
                "buses": "bus",
                "conns": "conn",
                "kvs": "kv",
                "kvas": "kva",
                "%rs": "r",
                "taps": "tap",
            }[key]
            vals = strings(value) if field in ("bus", "conn") else numbers(value)
            for w, v in enumerate(vals[:2]):
                wdg[w][field] = v
        elif key in ("xhl", "x12"):
            xhl = number(value)
        elif key == "%loadloss":
            for w in wdg:
                w["r"] = number(value) / 2
        elif key in ("%imag", "%noloadloss") and number(value) != 0.0:
            msg = f"Transformer.{el.name}: magnetising branch ({key}) is not modelled"
            raise DSSError(msg)
        elif key == "leadlag":
            lag = value.lower() in ("lag", "ansi")
        elif key in tap_range:
            tap_range[key] = number(value)
        elif key not in ("sub", "bank", "%imag", "%noloadloss", "xht", "xlt", "x13", "x23"):
            msg = f"Transformer.{el.name}: property {key!r} is not supported"
            raise DSSError(msg)
    if n_wdg != 2:
        msg = f"Transformer.{el.name}: only two-winding transformers are supported ({n_wdg})"
        raise DSSError(msg)
    terminals: list[int] = []
    coils: list[list[tuple[int, int]]] = []
    v_coil = []
    for w in wdg:
        delta = w["conn"].lower().startswith("d")
        n_cond = n_phase if delta else n_phase + 1
        name, nodes = _bus_nodes(w["bus"], n_phase, n_cond)
        first = len(terminals)
        terminals += [asm.node(name, p) for p in nodes]
        if delta and n_phase == 3:
            step = 2 if lag else 1  # coil k from node k to node k-1 (lag) or k+1 (lead)
            coils.append([(first + k, first + (k + step) % 3) for k in range(3)])
        elif delta:
            coils.append([(first, first + 1)])
        else:
            coils.append([(first + k, first + n_phase) for k in range(n_phase)])
        v_ll = w["kv"] * 1000.0
        v_coil.append(v_ll if (delta or n_phase == 1) else v_ll / SQRT3)
    s_phase = wdg[0]["kva"] * 1000.0 / n_phase
    z_pu = (wdg[0]["r"] + wdg[1]["r"]) / 100.0 + 1j * xhl / 100.0
    coil_y = coil_pair_admittance(z_pu, s_phase, tuple(v_coil), (wdg[0]["tap"], wdg[1]["tap"]))
    yprim = transformer_yprim(coils, coil_y, len(terminals))
    asm.add_primitive(terminals, yprim)
    phases = [int(b) for b in range(1, n_phase + 1)]
    kva = wdg[0]["kva"]
    rating = kva * 1000.0 / (n_phase * v_coil[0]) if n_phase else float("nan")
    first2 = len(terminals) - (n_phase if wdg[1]["conn"].lower().startswith("d") else n_phase + 1)
    step = (tap_range["maxtap"] - tap_range["mintap"]) / tap_range["numtaps"]
    for w, branch in enumerate((f"transformer.{el.name}", f"transformer.{el.name}.w2")):
        coil_nodes = [(terminals[a], terminals[b]) for a, b in coils[w]]
        asm.windings[f"transformer.{el.name}.w{w + 1}"] = Winding(
            coil_nodes, v_coil[w], tap_range["mintap"], tap_range["maxtap"], step, branch
        )
    asm.add_branch(
        f"transformer.{el.name}.w2", "winding", terminals, phases, yprim, n_phase, first=first2
    )
    asm.add_branch(
        f"transformer.{el.name}", "transformer", terminals, phases, yprim, n_phase, rating
    )


def _components(el, n_phase: int, delta: bool) -> tuple[str, list[tuple[int, int]]]:
    """Bus and (from, to) node numbers of each single-phase component of a load/capacitor."""
    if delta and n_phase == 3:
        name, nodes = _bus_nodes(el.get("bus1"), 3, 3)
        return name, [(nodes[k], nodes[(k + 1) % 3]) for k in range(3)]
    if delta:
        name, nodes = _bus_nodes(el.get("bus1"), 2, 2)
        return name, [(nodes[0], nodes[1])]
    name, nodes = _bus_nodes(el.get("bus1"), n_phase, n_phase + 1)
    return name, [(nodes[k], nodes[n_phase]) for k in range(n_phase)]


def _load(asm, el) -> str | None:
    n_phase, conn, model, kv, kw, kvar, pf = 3, "wye", 1, 12.47, 10.0, None, 0.88
    vmin, vmax, shape = 0.95, 1.05, None
    for key, value in el.props:
        if key == "phases":
            n_phase = int(number(value))
        elif key == "conn":
            conn = value.lower()
        elif key == "model":
            model = int(number(value))
        elif key == "kv":
            kv = number(value)
        elif key == "kw":
            kw = number(value)
        elif key == "kvar":
            kvar = number(value)
        elif key == "pf":
            pf, kvar = number(value), None
        elif key == "vminpu":
            vmin = number(value)
        elif key == "vmaxpu":
            vmax = number(value)
        elif key in ("yearly", "daily"):
            shape = value.lower()
        elif key not in ("bus1", "status", "duty"):
            msg = f"Load.{el.name}: property {key!r} is not supported"
            raise DSSError(msg)
    if model not in (1, 2, 5):
        msg = f"Load.{el.name}: model={model} is not supported (1 = PQ, 2 = Z, 5 = I)"
        raise DSSError(msg)
    if kvar is None:
        kvar = kw * np.sqrt(1.0 / pf**2 - 1.0) * np.sign(pf)
    delta = conn.startswith("d")
    bus, comps = _components(el, n_phase, delta)
    vbase = kv * 1000.0 if (delta or n_phase == 1) else kv * 1000.0 / SQRT3
    for a, b in comps:
        asm.add_load(
            f"load.{el.name}",
            asm.node(bus, a),
            asm.node(bus, b),
            kw / n_phase,
            kvar / n_phase,
            model,
            vbase,
            vmin,
            vmax,
        )
    return shape


def _capacitor(asm, el) -> None:
    n_phase = int(number(el.get("phases", "3")))
    kvar = sum(numbers(el.get("kvar", "1200")))
    kv = number(el.get("kv", "12.47"))
    delta = el.get("conn", "wye").lower().startswith("d")
    bus, comps = _components(el, n_phase, delta)
    v = kv * 1000.0 if (delta or n_phase == 1) else kv * 1000.0 / SQRT3
    y = 1j * kvar * 1000.0 / n_phase / v**2
    for a, b in comps:
        asm.add_primitive([asm.node(bus, a), asm.node(bus, b)], np.array([[y, -y], [-y, y]]))


def _loadshape(el) -> np.ndarray:
    mult = el.get("mult")
    if mult is None or "file=" in mult.lower():
        msg = f"Loadshape.{el.name}: only inline mult=[...] multipliers are supported"
        raise DSSError(msg)
    return np.asarray(numbers(mult))


def network_from_circuit(
    circuit: Circuit, name: str | None = None, fixed_taps: bool = False
) -> ThreePhaseNetwork:
    """Assemble the nodal model of a parsed OpenDSS circuit (see the module docstring).

    ``fixed_taps`` takes the transformer taps as given even where a RegControl would move
    them (``regulators.regulate`` does, between solutions)."""
    opts = {k.lower(): v for k, v in circuit.options.items()}
    base_freq = number(opts.get("defaultbasefrequency", "60"))
    asm = NetworkAssembler(name or circuit.name)
    codes = {e.name: e for e in circuit.of_class("linecode")}
    shapes = {e.name: _loadshape(e) for e in circuit.of_class("loadshape")}
    load_shape: list[str | None] = []
    line_cache: dict = {}
    for (cls, _), el in circuit.elements.items():
        if cls == "vsource":
            _vsource(asm, el, base_freq)
        elif cls == "line":
            _line(asm, el, codes, base_freq, line_cache)
        elif cls == "transformer":
            _transformer(asm, el, lag=True)
        elif cls == "load":
            load_shape.append(_load(asm, el))
        elif cls == "capacitor":
            _capacitor(asm, el)
        elif cls == "regcontrol":
            if opts.get("controlmode", "static").lower() != "off" and not fixed_taps:
                msg = (
                    f"RegControl.{el.name}: regulator taps move with the solution; solve with "
                    "gridsync.grid.threephase.regulators.regulate, or Set ControlMode=OFF"
                )
                raise DSSError(msg)
            asm.notes.append(f"regcontrol.{el.name}: taps fixed as given")
        elif cls not in IGNORED_CLASSES | {"linecode", "loadshape"}:
            msg = f"element {cls}.{el.name} is not supported by the three-phase model"
            raise DSSError(msg)
    net = asm.build()
    net.load_shapes = shapes
    net.load_shape_of = np.array([s or "" for s in load_shape], dtype=object)
    bases_kv = numbers(opts.get("voltagebases", "")) if "voltagebases" in opts else []
    assign_voltage_bases(net, np.asarray(bases_kv))
    return net


def read_network(path: str | Path, name: str | None = None) -> ThreePhaseNetwork:
    """Parse an OpenDSS master file and build its three-phase network."""
    path = Path(path)
    return network_from_circuit(read_dss(path), name or path.parent.name)
