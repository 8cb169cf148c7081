"""Topology processing: a pandapower net -> the energised bus-branch model a power flow solves.

pandapower's own converter (``_pd2ppc``, the first half of ``runpp``) does the element
modelling and the topology: bus-bus switches fuse buses, open line/trafo switches leave the
branch hanging on an auxiliary bus, out-of-service elements drop out, and islands without a
slack (ext_grid or ``gen.slack``) are de-energised. Loads, motors, storage, sgens, wards and
xwards land in the bus table (with their scaling and their constant-impedance/current shares),
shunts in the bus admittances, ext_grids and gens in the generator table. We stop there, before
pandapower's solver, and give the result to our own Newton-Raphson (``gridsync.grid.newton``).

Elements pandapower models but we do not solve (FACTS devices, the DC grid) raise
``UnsupportedElement`` naming the table and the element, never a silently different answer.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

# element tables whose in-service rows our solver does not model, with a readable name
UNSUPPORTED_TABLES = {
    "svc": "static var compensator",
    "tcsc": "thyristor-controlled series capacitor",
    "ssc": "static synchronous compensator",
    "vsc": "voltage source converter",
    "vsc_stacked": "stacked voltage source converter",
    "vsc_bipolar": "bipolar voltage source converter",
    "b2b_vsc": "back-to-back converter",
    "bus_dc": "DC bus",
    "line_dc": "DC line",
    "source_dc": "DC source",
    "load_dc": "DC load",
}
# runpp options that change the physics our solver implements
UNSUPPORTED_OPTIONS = ("distributed_slack", "tdpf", "consider_line_temperature", "run_control")


class UnsupportedElement(ValueError):
    """The network holds an element (or asks for an option) our power flow does not model."""


@dataclass
class NetworkModel:
    """The energised network in pandapower's internal numbering (``ppci``), in per unit.

    ``s_gen`` is the scheduled injection of the non-slack generators, ``s_load``/``s_load_i``/``s_load_z`` the
    constant-power/current/impedance consumption at 1 p.u. (so the load at ``vm`` is
    ``s_load + s_load_i * vm + s_load_z * vm**2``); ``zip_frac`` holds the bus's current and
    impedance shares (P current, P impedance, Q current, Q impedance). ``bus_lookup[k]`` is the internal bus of
    pandapower bus index ``k`` or -1 when that bus is out of service or in a dead island.
    """

    net: object
    ppc: dict
    ppci: dict
    ybus: sp.csr_matrix
    yf: sp.csr_matrix
    yt: sp.csr_matrix
    base_mva: float
    ref: np.ndarray
    pv: np.ndarray
    pq: np.ndarray
    v0: np.ndarray
    s_gen: np.ndarray
    s_load: np.ndarray
    s_load_i: np.ndarray
    s_load_z: np.ndarray
    zip_frac: np.ndarray
    bdc: sp.csr_matrix
    p_dc_offset: np.ndarray
    bus_lookup: np.ndarray
    deenergised_buses: np.ndarray

    @property
    def n_bus(self) -> int:
        return self.ybus.shape[0]

    def internal_bus(self, bus_ids: np.ndarray) -> np.ndarray:
        """Internal bus per pandapower bus index (-1: de-energised)."""
        return self.bus_lookup[np.asarray(bus_ids, dtype=np.int64)]

    def branch_rows(self, element: str) -> tuple[np.ndarray, np.ndarray]:
        """(element positions, internal branch rows) of the in-service ``line``/``trafo``/... rows
        of ``net[element]`` that the power flow carries."""
        lookup = self.net._pd2ppc_lookups["branch"]
        if element not in lookup:
            return np.zeros(0, dtype=int), np.zeros(0, dtype=int)
        f, t = lookup[element]
        branch_is = self.ppci["internal"]["branch_is"]
        ppci_row = np.cumsum(branch_is) - 1
        ppc_rows = np.arange(f, t)
        keep = branch_is[ppc_rows]
        return np.flatnonzero(keep), ppci_row[ppc_rows[keep]]

    def split_load(self, s_pu: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Split a consumption per internal bus (p.u. at 1 p.u. voltage) into constant-power,
        -current and -impedance parts with each bus's ZIP shares."""
        ci_p, cz_p, ci_q, cz_q = self.zip_frac.T
        p, q = s_pu.real, s_pu.imag
        return (
            p * (1 - ci_p - cz_p) + 1j * q * (1 - ci_q - cz_q),
            p * ci_p + 1j * q * ci_q,
            p * cz_p + 1j * q * cz_q,
        )


def check_supported(net, **options) -> None:
    """Raise ``UnsupportedElement`` naming the first in-service element or option we do not model."""
    for table, label in UNSUPPORTED_TABLES.items():
        if table not in net or not len(net[table]):
            continue
        df = net[table]
        rows = df[df["in_service"]] if "in_service" in df else df
        if len(rows):
            idx = rows.index[0]
            name = rows["name"].iloc[0] if "name" in rows else None
            msg = (
                f"{table} {idx} ({name!s}): {label}s are not supported by GridSync's power flow "
                f"({len(rows)} in service); use pandapower.runpp for this network"
            )
            raise UnsupportedElement(msg)
    for opt in UNSUPPORTED_OPTIONS:
        if options.get(opt):
            msg = f"runpp option {opt}=True is not supported by GridSync's power flow"
            raise UnsupportedElement(msg)


def _dc_model(ppci: dict) -> tuple[sp.csr_matrix, np.ndarray]:
    """DC power flow ``B va = P - p_offset`` (p.u.): pandapower's B matrix and the injections
    of transformer phase shifts and shunt conductance, so a DC start carries shifts such as
    the 150 deg of a Dyn5 into the angles (the start pandapower's ``init='dc'`` uses)."""
    from pandapower.pypower.idx_bus import GS
    from pandapower.pypower.makeBdc import makeBdc

    bbus, _, p_businj, _, *_ = makeBdc(ppci["bus"], ppci["branch"])
    return sp.csr_matrix(bbus), p_businj + ppci["bus"][:, GS] / ppci["baseMVA"]


def dc_angles(
    bdc: sp.csr_matrix, p_offset: np.ndarray, p_inj: np.ndarray, v0: np.ndarray, ref, pvpq
) -> np.ndarray:
    """Voltage angles (rad) of the DC power flow of active injections ``p_inj`` (p.u.), slack
    angles from ``v0``."""
    va = np.angle(v0)
    if len(pvpq):
        rhs = (p_inj - p_offset)[pvpq] - bdc[pvpq][:, ref] @ va[ref]
        va[pvpq] = sp.linalg.spsolve(sp.csc_matrix(bdc[pvpq][:, pvpq]), rhs)
    return va


def build_network_model(
    net,
    calculate_voltage_angles: bool = True,
    init: str = "auto",
    trafo_model: str = "t",
    trafo_loading: str = "current",
    check_connectivity: bool = True,
    voltage_depend_loads: bool = True,
    enforce_q_lims: bool = False,
    **options,
) -> NetworkModel:
    """Run pandapower's converter on ``net`` (in place: it sets ``net._ppc`` and lookups, as
    ``runpp`` does) and return the energised network. ``options`` are other ``runpp`` options."""
    from pandapower.auxiliary import _add_auxiliary_elements, _init_runpp_options
    from pandapower.pd2ppc import _pd2ppc
    from pandapower.pf.ppci_variables import _get_pf_variables_from_ppci
    from pandapower.pypower.idx_bus import CID_P, CID_Q, CZD_P, CZD_Q, PD, QD
    from pandapower.pypower.idx_gen import GEN_BUS, GEN_STATUS, PG, QG
    from pandapower.pypower.makeYbus import makeYbus
    from pandapower.results import init_results, verify_results

    check_supported(net, **options)
    options = {k: v for k, v in options.items() if k not in UNSUPPORTED_OPTIONS}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _init_runpp_options(
            net,
            algorithm="nr",
            calculate_voltage_angles=calculate_voltage_angles,
            init=init,
            max_iteration="auto",
            tolerance_mva=options.pop("tolerance_mva", 1e-8),
            trafo_model=trafo_model,
            trafo_loading=trafo_loading,
            enforce_p_lims=False,
            enforce_q_lims=enforce_q_lims,
            check_connectivity=check_connectivity,
            voltage_depend_loads=voltage_depend_loads,
            consider_line_temperature=False,
            tdpf=False,
            tdpf_delay_s=None,
            distributed_slack=False,
            passed_parameters={},
            numba=options.pop("numba", False),
            **options,
        )
        net["converged"] = False
        _add_auxiliary_elements(net)
        if net["_options"]["init_results"]:  # init="results" reads the previous results
            verify_results(net, mode="pf")
        else:
            init_results(net)
        net._pd2ppc_lookups = {
            k: np.array([], dtype=np.int64)
            for k in ("bus", "bus_dc", "ext_grid", "gen", "branch", "branch_dc")
        }
        ppc, ppci = _pd2ppc(net)
    net["_ppc"] = ppc
    base_mva = float(ppci["baseMVA"])
    _, bus, gen, branch, *_rest = _get_pf_variables_from_ppci(ppci, True)
    ref, pv, pq, v0 = _rest[4], _rest[5], _rest[6], _rest[9]
    ybus, yf, yt = makeYbus(base_mva, bus, branch)
    n = bus.shape[0]
    # generation scheduled at PV/PQ buses; slack machines' power is the unknown
    on = gen[:, GEN_STATUS] > 0
    on[np.asarray(ppci["internal"]["ref_gens"], dtype=int)] = False
    s_gen = np.zeros(n, dtype=complex)
    np.add.at(s_gen, gen[on, GEN_BUS].astype(int), (gen[on, PG] + 1j * gen[on, QG]) / base_mva)
    pd_, qd = bus[:, PD] / base_mva, bus[:, QD] / base_mva
    ci_p, cz_p, ci_q, cz_q = bus[:, CID_P], bus[:, CZD_P], bus[:, CID_Q], bus[:, CZD_Q]
    raw = np.asarray(net._pd2ppc_lookups["bus"], dtype=np.int64)
    lookup = np.where(raw < n, raw, -1)
    energised = lookup[net.bus.index.to_numpy()] >= 0
    bdc, p_dc_offset = _dc_model(ppci)
    s_load = pd_ * (1 - ci_p - cz_p) + 1j * qd * (1 - ci_q - cz_q)
    if init == "auto" and calculate_voltage_angles or init == "dc":
        pvpq = np.sort(np.r_[pv, pq]).astype(int)
        p_inj = (s_gen - pd_).real
        v0 = np.abs(v0) * np.exp(1j * dc_angles(bdc, p_dc_offset, p_inj, v0, ref, pvpq))
    return NetworkModel(
        net=net,
        ppc=ppc,
        ppci=ppci,
        ybus=sp.csr_matrix(ybus),
        yf=sp.csr_matrix(yf),
        yt=sp.csr_matrix(yt),
        base_mva=base_mva,
        ref=np.asarray(ref, dtype=int),
        pv=np.sort(np.asarray(pv, dtype=int)),
        pq=np.sort(np.asarray(pq, dtype=int)),
        v0=v0.astype(complex),
        s_gen=s_gen,
        s_load=s_load,
        s_load_i=pd_ * ci_p + 1j * qd * ci_q,
        s_load_z=pd_ * cz_p + 1j * qd * cz_q,
        zip_frac=np.c_[ci_p, cz_p, ci_q, cz_q],
        bdc=bdc,
        p_dc_offset=p_dc_offset,
        bus_lookup=lookup,
        deenergised_buses=net.bus.index.to_numpy()[~energised],
    )


def deenergised_buses(net) -> np.ndarray:
    """pandapower indices of the buses that carry no voltage: out of service, or in an island
    (or behind open switches) with no ext_grid or slack generator. ``net`` is not modified."""
    import copy

    return build_network_model(copy.deepcopy(net)).deenergised_buses
