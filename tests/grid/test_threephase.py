"""Three-phase power flow against OpenDSS (DSS-Python) on the shipped IEEE feeders, and a
hand-solved two-bus unbalanced case."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import numpy as np
import pytest

from gridsync.grid.threephase.dss import DSSError, number, read_dss
from gridsync.grid.threephase.elements import sequence_to_phase, vuf_pct
from gridsync.grid.threephase.from_dss import network_from_circuit, read_network
from gridsync.grid.threephase.network import LOAD_MODEL_PQ, NetworkAssembler
from gridsync.grid.threephase.solver import ThreePhaseNotConverged, ThreePhaseSolver, unbalance

FEEDERS = Path(str(resources.files("gridsync") / "data" / "feeders"))
IEEE13 = FEEDERS / "ieee13" / "IEEE13Nodeckt.dss"
EU_LV = FEEDERS / "ieee_eu_lv" / "Master.dss"


def _opendss(path: Path, *commands: str):
    """OpenDSS (the reference) with the same shipped file, solved tightly."""
    from dss import DSS

    DSS.AllowChangeDir = False
    DSS.Text.Command = "clear"
    DSS.Text.Command = f"redirect [{path}]"
    DSS.Text.Command = "set tolerance=1e-10"
    for c in commands:
        DSS.Text.Command = c
    return DSS.ActiveCircuit


def test_ieee13_matches_opendss():
    net = read_network(IEEE13)
    res = ThreePhaseSolver(net).solve(net.loads.p_kw, net.loads.q_kvar)
    ckt = _opendss(IEEE13, "solve")
    names = [n.lower() for n in ckt.AllNodeNames]
    ref = np.asarray(ckt.AllBusVmagPu)
    ours = res.vm_pu[0, net.node_index(names)]
    assert len(names) == 41  # every node of the feeder is compared
    assert np.max(np.abs(ours - ref)) < 1e-5
    # the published solution's own spread (tap-fixed): phase b at 675 above 1.05 p.u.
    assert ours[names.index("675.2")] > 1.05


def test_eu_lv_day_matches_opendss():
    net = read_network(EU_LV)
    loads = net.loads
    mult = np.stack([net.load_shapes[net.load_shape_of[e]] for e in loads.element], axis=1)
    res = ThreePhaseSolver(net).solve(mult * loads.p_kw, mult * loads.q_kvar)
    assert res.converged.all() and mult.shape == (96, 55)
    ckt = _opendss(EU_LV, "set mode=yearly number=1 stepsize=15m")
    idx = net.node_index([n.lower() for n in ckt.AllNodeNames])
    assert len(idx) == 2721  # 906 LV buses x 3 phases + the source bus
    worst = 0.0
    for k in range(96):
        ckt.Solution.Solve()
        worst = max(worst, np.max(np.abs(res.vm_pu[k, idx] - np.asarray(ckt.AllBusVmagPu))))
    assert worst < 1e-5
    kpi = unbalance(net, res.v)
    assert np.nanmax(kpi["vuf_pct"]) > 0.1  # single-phase customers do unbalance the feeder


def _two_bus(z1: complex, z0: complex, e_v: float, s_va: complex, model: int):
    asm = NetworkAssembler("two-bus")
    src = [asm.node("s", p) for p in (1, 2, 3)]
    far = [asm.node("l", p) for p in (1, 2, 3)]
    zabc = sequence_to_phase(z1, z0, 3)
    ys = np.linalg.inv(zabc)
    yprim = np.block([[ys, -ys], [-ys, ys]])
    asm.add_primitive(src + far, yprim)
    asm.add_branch("line.sl", "line", src + far, [1, 2, 3], yprim, 3)
    for k, node in enumerate(src):
        asm.add_slack(node, e_v * np.exp(-2j * np.pi * k / 3))
    asm.add_load("load.a", far[0], -1, s_va.real / 1e3, s_va.imag / 1e3, model, e_v, 0.0, 10.0)
    net = asm.build(np.full(6, e_v))
    return net, zabc


def test_two_bus_single_phase_load_hand_solved():
    """A constant-power load on phase a at the end of a coupled three-phase line: |Va| from
    the two-bus quartic |V|^4 - (E^2 - 2(RP + XQ))|V|^2 + |Z|^2|S|^2 = 0, phases b and c
    from the mutual impedance, VUF from the line-to-line magnitudes (IEC 61000-4-30)."""
    e, s = 230.0, 6000.0 + 2000.0j
    net, zabc = _two_bus(0.25 + 0.08j, 1.0 + 0.1j, e, s, LOAD_MODEL_PQ)
    res = ThreePhaseSolver(net).solve(net.loads.p_kw, net.loads.q_kvar, tol_pu=1e-12)
    zaa = zabc[0, 0]
    b = e**2 - 2 * (zaa.real * s.real + zaa.imag * s.imag)
    vmag2 = (b + np.sqrt(b**2 - 4 * abs(zaa) ** 2 * abs(s) ** 2)) / 2
    va = e / (1 + zaa * np.conj(s) / vmag2)
    ia = np.conj(s / va)
    ea = e * np.exp(-2j * np.pi * np.arange(3) / 3)
    v_hand = ea - zabc[:, 0] * ia
    v_ours = res.v[0, net.node_index(["l.1", "l.2", "l.3"])]
    assert np.allclose(v_ours, v_hand, rtol=0, atol=1e-9 * e)
    kpi = unbalance(net, res.v)
    assert kpi["residual_current_a"][0, 0] == pytest.approx(abs(ia), rel=1e-9)
    ll = np.abs(v_hand - np.roll(v_hand, -1))
    beta = (ll**4).sum() / (ll**2).sum() ** 2
    vuf_hand = 100 * np.sqrt((1 - np.sqrt(3 - 6 * beta)) / (1 + np.sqrt(3 - 6 * beta)))
    assert kpi["vuf_pct"][0, net.bus_names.tolist().index("l")] == pytest.approx(vuf_hand, rel=1e-6)
    assert vuf_pct(ea[None, :])[0] == pytest.approx(0.0, abs=1e-12)


def test_nonconvergent_snapshot_is_named_and_others_solve():
    net, _ = _two_bus(0.25 + 0.08j, 1.0 + 0.1j, 230.0, 1000.0 + 0j, LOAD_MODEL_PQ)
    solver = ThreePhaseSolver(net)
    p = np.array([[1.0], [500.0], [2.0]])  # 500 kW on a 230 V phase has no solution
    with pytest.raises(ThreePhaseNotConverged, match=r"snapshots \[1\]"):
        solver.solve(p, np.zeros_like(p), max_iter=60)
    res = solver.solve(p, np.zeros_like(p), max_iter=60, strict=False)
    assert res.converged.tolist() == [True, False, True]
    p[2, 0] = np.nan
    with pytest.raises(ValueError, match=r"snapshot 2, component 0 \(load.a at node l.1\)"):
        solver.solve(p, np.zeros_like(p))


def test_reader_errors_name_the_element(tmp_path):
    assert number("8 1000 /") == pytest.approx(0.008)
    path = tmp_path / "bad.dss"
    path.write_text("New circuit.x basekv=11\nNew Storage.bat1 bus1=sourcebus kwrated=5\n")
    with pytest.raises(DSSError, match="storage.bat1"):
        network_from_circuit(read_dss(path))
    path.write_text(
        "New circuit.x basekv=11\nNew Transformer.t windings=2 buses=[sourcebus b] %imag=1\n"
    )
    with pytest.raises(DSSError, match=r"Transformer.t: magnetising"):
        network_from_circuit(read_dss(path))


Z4_OHM = np.array(  # a 4-core cable section: phases a, b, c, neutral (ohm)
    [
        [0.20 + 0.08j, 0.05 + 0.06j, 0.05 + 0.05j, 0.05 + 0.06j],
        [0.05 + 0.06j, 0.20 + 0.08j, 0.05 + 0.06j, 0.05 + 0.05j],
        [0.05 + 0.05j, 0.05 + 0.06j, 0.20 + 0.08j, 0.05 + 0.06j],
        [0.05 + 0.06j, 0.05 + 0.05j, 0.05 + 0.06j, 0.20 + 0.08j],
    ]
)


def _four_wire(s_va: complex, r_ground_ohm: float | None):
    """Ideal source (neutral solidly grounded) -> 4-wire line -> single-phase constant-Z load
    between phase a and the far neutral, which is grounded through ``r_ground_ohm`` (None:
    not grounded, all return current in the neutral conductor)."""
    asm = NetworkAssembler("four-wire")
    src = [asm.node("s", p) for p in (1, 2, 3)] + [-1]
    far = [asm.node("l", p) for p in (1, 2, 3, 4)]
    ys = np.linalg.inv(Z4_OHM)
    yprim = np.block([[ys, -ys], [-ys, ys]])
    asm.add_primitive(src + far, yprim)
    asm.add_branch("line.sl", "line", src + far, [1, 2, 3, 4], yprim, 4)
    if r_ground_ohm is not None:
        asm.add_primitive([far[3]], np.array([[1.0 / r_ground_ohm]]))
    for k in range(3):
        asm.add_slack(src[k], 230.0 * np.exp(-2j * np.pi * k / 3))
    asm.add_load("load.a", far[0], far[3], s_va.real / 1e3, s_va.imag / 1e3, 2, 230.0)
    return asm.build(np.full(7, 230.0))


def test_four_wire_neutral_hand_solved():
    """Ungrounded far neutral: the load current returns in the neutral conductor, so with
    I = [Ia, 0, 0, -Ia] the load sees E_a / (1 + Y_L Z_loop), Z_loop = Zaa - Zan - Zna + Znn,
    and the neutral point rises to -(Zna - Znn) Ia."""
    s = 5000.0 + 1500.0j
    net = _four_wire(s, None)
    v = ThreePhaseSolver(net).solve(net.loads.p_kw, net.loads.q_kvar, tol_pu=1e-13).v[0]
    y_load = np.conj(s) / 230.0**2
    z = Z4_OHM
    z_loop = z[0, 0] - z[0, 3] - z[3, 0] + z[3, 3]
    v_load = 230.0 / (1 + y_load * z_loop)
    ia = y_load * v_load
    idx = net.node_index(["l.1", "l.4"])
    assert v[idx[0]] - v[idx[1]] == pytest.approx(v_load, abs=1e-9)
    assert v[idx[1]] == pytest.approx(-(z[3, 0] - z[3, 3]) * ia, abs=1e-9)
    kpi = unbalance(net, v[None, :])
    assert kpi["residual_current_a"][0, 0] == pytest.approx(abs(ia), rel=1e-9)
    assert kpi["phase_current_a"][0, 3] == pytest.approx(abs(ia), rel=1e-9)  # neutral conductor


def test_kron_reduction_equals_solidly_grounded_four_wire(tmp_path):
    """A neutral grounded at both ends, solved explicitly, gives the voltages of the
    Kron-reduced three-wire line (here read from an OpenDSS linecode with kron=y)."""
    s = 8000.0 + 2000.0j
    net4 = _four_wire(s, 1e-7)
    v4 = ThreePhaseSolver(net4).solve(net4.loads.p_kw, net4.loads.q_kvar, tol_pu=1e-12).v[0]
    rows = " | ".join(" ".join(f"{x:g}" for x in Z4_OHM[i, : i + 1].real) for i in range(4))
    xrows = " | ".join(" ".join(f"{x:g}" for x in Z4_OHM[i, : i + 1].imag) for i in range(4))
    path = tmp_path / "kron.dss"
    path.write_text(
        "New circuit.k basekv=0.39837 pu=1 mvasc3=1e9 mvasc1=1e9\n"
        f"New Linecode.c4 nphases=4 rmatrix=[{rows}] xmatrix=[{xrows}] cmatrix=[0|0 0|0 0 0|0 0 0 0] kron=y\n"
        "New Line.sl bus1=sourcebus bus2=l phases=3 linecode=c4 length=1\n"
        f"New Load.a bus1=l.1 phases=1 kv=0.23 kw={s.real / 1e3} kvar={s.imag / 1e3} model=2\n"
        "Set voltagebases=[0.39837]\n"
    )
    net3 = read_network(path)
    v3 = ThreePhaseSolver(net3).solve(net3.loads.p_kw, net3.loads.q_kvar, tol_pu=1e-12).v[0]
    l3 = v3[net3.node_index(["l.1", "l.2", "l.3"])]
    l4 = v4[net4.node_index(["l.1", "l.2", "l.3"])]
    src = v3[net3.node_index(["sourcebus.1"])][0]
    assert np.allclose(l3 * (230.0 / src), l4, atol=1e-4)  # same source phasor scale


def test_ieee13_regulators_match_opendss_control(tmp_path):
    """The published script with its regulators acting (the shipped file minus its fixed-tap
    lines): our static regulator control lands on OpenDSS's taps and voltages."""
    from gridsync.grid.threephase.regulators import regulate

    text = IEEE13.read_text()
    for line in ("Transformer.Reg1.Taps", "Transformer.Reg2.Taps", "Transformer.Reg3.Taps"):
        text = "\n".join(x for x in text.splitlines() if not x.startswith(line))
    text = text.replace("Set Controlmode=OFF", "")
    path = tmp_path / "ieee13_regulated.dss"
    path.write_text(text)
    with pytest.raises(DSSError, match="regulate"):
        read_network(path)
    net, res, taps = regulate(read_dss(path))
    ckt = _opendss(path, "solve")
    ref_taps = {}
    for name in ("reg1", "reg2", "reg3"):
        ckt.Transformers.Name = name
        ref_taps[f"transformer.{name}.w2"] = ckt.Transformers.Tap
    assert taps == pytest.approx(ref_taps, abs=1e-9)
    names = [n.lower() for n in ckt.AllNodeNames]
    err = np.abs(res.vm_pu[0, net.node_index(names)] - np.asarray(ckt.AllBusVmagPu))
    assert err.max() < 1e-5
