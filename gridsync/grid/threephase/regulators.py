"""Voltage regulators (OpenDSS ``RegControl``) in static control mode, between solutions.

Each regulator watches one phase coil of a transformer winding through its PT (``ptratio``)
and line-drop compensator (``R``, ``X`` in volts at the CT's rated primary current
``ctprim``): V_control = V_coil / ptratio - (R + jX) I_out / ctprim, on the relay's 120 V
scale. When |V_control| leaves ``vreg`` +- ``band``/2 the tap moves, in whole tap steps, to
bring it to the nearer band edge (at most ``maxtapchange`` steps per round; within the
transformer's tap range); the feeder is solved again until no regulator moves. This
reproduces OpenDSS's static-mode tap positions on the IEEE 13-node feeder (tested).
Not modelled: reverse power flow modes, time delays, bandwidth in per unit, regulated remote
buses (``bus=``) and delta PT connections.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np

from gridsync.grid.threephase.dss import Circuit, DSSError, number
from gridsync.grid.threephase.from_dss import network_from_circuit
from gridsync.grid.threephase.network import ThreePhaseNetwork
from gridsync.grid.threephase.solver import ThreePhaseResult, ThreePhaseSolver

SUPPORTED = {
    "transformer",
    "winding",
    "vreg",
    "band",
    "ptratio",
    "ctprim",
    "r",
    "x",
    "ptphase",
    "maxtapchange",
    "delay",
    "tapdelay",
}


@dataclass(frozen=True)
class RegControl:
    """One regulator relay (OpenDSS defaults where the script is silent)."""

    name: str
    transformer: str
    winding: int = 1
    vreg_v: float = 120.0
    band_v: float = 3.0
    ptratio: float = 60.0
    ctprim_a: float = 300.0
    r_v: float = 0.0
    x_v: float = 0.0
    pt_phase: int = 1
    max_tap_change: int = 16


def reg_controls(circuit: Circuit) -> list[RegControl]:
    """The circuit's regulator relays; unsupported settings raise ``DSSError`` naming them."""
    out = []
    for el in circuit.of_class("regcontrol"):
        bad = [k for k, _ in el.props if k not in SUPPORTED]
        if bad:
            msg = f"RegControl.{el.name}: {bad} not supported"
            raise DSSError(msg)

        def val(key: str, default: float, el=el) -> float:
            v = el.get(key)
            return default if v is None else number(v)

        out.append(
            RegControl(
                name=el.name,
                transformer=el.get("transformer").lower(),
                winding=int(val("winding", 1)),
                vreg_v=val("vreg", 120.0),
                band_v=val("band", 3.0),
                ptratio=val("ptratio", 60.0),
                ctprim_a=val("ctprim", 300.0),
                r_v=val("r", 0.0),
                x_v=val("x", 0.0),
                pt_phase=int(val("ptphase", 1)),
                max_tap_change=int(val("maxtapchange", 16)),
            )
        )
    return out


def _tap_steps(rc: RegControl, net: ThreePhaseNetwork, v: np.ndarray) -> int:
    """Whole tap steps the relay asks for at node voltages ``v`` (0 inside the band)."""
    w = net.windings[f"transformer.{rc.transformer}.w{rc.winding}"]
    a, b = w.coils[rc.pt_phase - 1]
    v_coil = v[a] - (v[b] if b >= 0 else 0.0)
    br = net.branches
    rows = np.nonzero(br.names[br.conductor_branch] == w.branch)[0]
    i_out = -(br.current[rows[rc.pt_phase - 1]] @ v)[0]  # out of the winding, to the load
    v_relay = abs(v_coil / rc.ptratio - complex(rc.r_v, rc.x_v) * i_out / rc.ctprim_a)
    if abs(v_relay - rc.vreg_v) <= rc.band_v / 2:
        return 0
    edge = rc.vreg_v - rc.band_v / 2 if v_relay < rc.vreg_v else rc.vreg_v + rc.band_v / 2
    steps = round((edge - v_relay) / (w.rated_v / rc.ptratio) / w.tap_step)
    return int(np.clip(steps, -rc.max_tap_change, rc.max_tap_change))


def regulate(
    circuit: Circuit, max_rounds: int = 20, **solve_kw
) -> tuple[ThreePhaseNetwork, ThreePhaseResult, dict[str, float]]:
    """Solve ``circuit`` with its regulators acting (static mode): network, solution and the
    final tap (p.u.) of every regulated winding, by ``transformer.<name>.w<k>``."""
    circuit = copy.deepcopy(circuit)
    controls = reg_controls(circuit)
    taps: dict[str, float] = {}
    for _ in range(max_rounds):
        net = network_from_circuit(circuit, fixed_taps=True)
        res = ThreePhaseSolver(net).solve(net.loads.p_kw, net.loads.q_kvar, **solve_kw)
        moved = False
        for rc in controls:
            key = f"transformer.{rc.transformer}.w{rc.winding}"
            w = net.windings[key]
            tap = taps.get(key, _given_tap(circuit, rc))
            steps = _tap_steps(rc, net, res.v[0])
            new = float(np.clip(tap + steps * w.tap_step, w.tap_min, w.tap_max))
            taps[key] = round(new, 10)
            if abs(new - tap) > 1e-12:
                moved = True
                el = circuit.elements[("transformer", rc.transformer)]
                el.props += [("wdg", str(rc.winding)), ("tap", repr(new))]
        if not moved:
            return net, res, taps
    msg = f"regulators did not settle in {max_rounds} rounds (taps {taps})"
    raise RuntimeError(msg)


def _given_tap(circuit: Circuit, rc: RegControl) -> float:
    """The winding's tap as the script leaves it (``taps=[..]`` or ``wdg=k tap=..``)."""
    el = circuit.elements[("transformer", rc.transformer)]
    tap, cur = 1.0, 1
    for key, value in el.props:
        if key == "wdg":
            cur = int(number(value))
        elif key == "tap" and cur == rc.winding:
            tap = number(value)
        elif key == "taps":
            vals = [float(x) for x in value.replace(",", " ").split()]
            tap = vals[rc.winding - 1] if len(vals) >= rc.winding else tap
    return tap
