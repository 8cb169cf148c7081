"""A scenario's feeder run three-phase: network from pandapower, customers and assets on phases.

``three_phase_network`` turns the balanced pandapower feeder into a four-wire network reduced
to three phases (Kron reduction with the neutral multi-grounded): lines from their positive-
and zero-sequence data (a line without zero-sequence data gets r0 = ``r0_over_r1`` * r1,
x0 = x1, c0 = c1: a four-core cable whose neutral has the phases' cross-section), two-winding
transformers Dyn (HV delta, LV wye solidly grounded; magnetising losses as a shunt at the HV
terminals), the external grid as an ideal balanced source. Closed bus-bus switches merge
buses, open line/transformer switches take their branch out; other elements are refused.

``PhaseAllocation`` places every customer and asset on a phase (seeded): a share of customers
is connected on three phases, the others on one; assets rated above ``single_phase_max_kw``
(4.6 kVA, the German VDE-AR-N 4105 limit for single-phase inverters) run on three phases,
the others on one. Each bus gets one constant-power load component per phase.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from gridsync.grid.threephase.elements import (
    SQRT3,
    coil_pair_admittance,
    line_yprim,
    sequence_to_phase,
    transformer_yprim,
)
from gridsync.grid.threephase.network import LOAD_MODEL_PQ, NetworkAssembler, ThreePhaseNetwork
from gridsync.grid.threephase.solver import ThreePhaseSolver, unbalance
from gridsync.model.assets import Fleet
from gridsync.model.network import Feeder

THREE = 3  # phase code of a three-phase connection (0, 1, 2 = phases a, b, c)


class ThreePhaseModelError(ValueError):
    """The feeder has an element the three-phase model does not support (named)."""


def _bus_groups(net) -> np.ndarray:
    """Representative bus id for every bus after merging closed bus-bus switches."""
    parent = {int(b): int(b) for b in net.bus.index}

    def find(b: int) -> int:
        while parent[b] != b:
            parent[b] = parent[parent[b]]
            b = parent[b]
        return b

    sw = net.switch
    for _, s in sw[(sw.et == "b") & sw.closed].iterrows():
        parent[find(int(s.bus))] = find(int(s.element))
    return np.array([find(int(b)) for b in net.bus.index])


def three_phase_network(
    feeder: Feeder, r0_over_r1: float = 3.0
) -> tuple[ThreePhaseNetwork, np.ndarray, np.ndarray]:
    """Three-phase model of ``feeder`` (see the module docstring), the network bus of every
    feeder bus position, and the feeder positions that carry a load component per phase (all
    buses but the external grid's), in component order."""
    net = feeder.net
    for table in ("trafo3w", "impedance", "ward", "xward", "motor", "dcline", "gen", "shunt"):
        if table in net and len(net[table]) and net[table].get("in_service", True).any():
            msg = f"network {feeder.name}: {table} elements are not supported three-phase"
            raise ThreePhaseModelError(msg)
    loads = net.load[net.load.in_service]
    zip_cols = [c for c in loads.columns if c.startswith(("const_z", "const_i"))]
    zip_loads = (
        loads[(loads[zip_cols].fillna(0.0) != 0).any(axis=1)] if zip_cols else loads.iloc[0:0]
    )
    if len(zip_loads):
        msg = (
            f"network {feeder.name}: load {zip_loads['name'].iloc[0]!r} (and {len(zip_loads) - 1} "
            "more) has voltage-dependent (ZIP) shares, which the three-phase model does not apply"
        )
        raise ThreePhaseModelError(msg)
    rep = dict(zip(net.bus.index, _bus_groups(net), strict=True))
    name_of = {int(b): str(b) for b in net.bus.index}
    asm = NetworkAssembler(feeder.name)
    for b in feeder.bus_ids:  # node order follows the feeder's bus order
        for p in (1, 2, 3):
            asm.node(name_of[rep[b]], p)
    sw = net.switch
    open_branch = {
        (et, int(e)) for et, e in sw[(sw.et != "b") & ~sw.closed][["et", "element"]].to_numpy()
    }
    f_hz = float(getattr(net, "f_hz", 50.0))

    def nodes(bus) -> list[int]:
        return [asm.node(name_of[rep[int(bus)]], p) for p in (1, 2, 3)]

    energised = set(int(b) for b in feeder.bus_ids)  # the feeder leaves dead islands out
    lines = net.line[
        net.line.in_service & net.line.from_bus.isin(energised) & net.line.to_bus.isin(energised)
    ]
    trafos = net.trafo[
        net.trafo.in_service & net.trafo.hv_bus.isin(energised) & net.trafo.lv_bus.isin(energised)
    ]
    for idx, ln in lines.iterrows():
        if ("l", idx) in open_branch:
            asm.notes.append(f"line {ln['name']} open (switch): left out")
            continue
        par, km = float(ln.parallel), float(ln.length_km)
        z1 = complex(ln.r_ohm_per_km, ln.x_ohm_per_km)
        r0 = ln.get("r0_ohm_per_km", np.nan)
        x0 = ln.get("x0_ohm_per_km", np.nan)
        z0 = complex(
            r0 if np.isfinite(r0) else r0_over_r1 * ln.r_ohm_per_km,
            x0 if np.isfinite(x0) else ln.x_ohm_per_km,
        )
        c1 = float(ln.c_nf_per_km)
        c0 = ln.get("c0_nf_per_km", np.nan)
        c = sequence_to_phase(c1, c0 if np.isfinite(c0) else c1, 3).real
        z = sequence_to_phase(z1, z0, 3) * km / par
        yc = 1j * 2 * np.pi * f_hz * c * 1e-9 * km * par
        n = nodes(ln.from_bus) + nodes(ln.to_bus)
        yprim = line_yprim(z, yc)
        asm.add_primitive(n, yprim)
        rating = float(ln.max_i_ka) * 1000.0 * par * float(ln.get("df", 1.0))
        asm.add_branch(f"line:{ln['name']}", "line", n, [1, 2, 3], yprim, 3, rating)
    for idx, tr in trafos.iterrows():
        if ("t", idx) in open_branch:
            asm.notes.append(f"trafo {tr['name']} open (switch): left out")
            continue
        tap = 1.0
        if np.isfinite(tr.tap_pos) and np.isfinite(tr.tap_step_percent):
            tap += (tr.tap_pos - tr.tap_neutral) * tr.tap_step_percent / 100.0
        taps = (tap, 1.0) if str(tr.tap_side) == "hv" else (1.0, tap)
        vk, vkr = tr.vk_percent / 100.0, tr.vkr_percent / 100.0
        z_pu = complex(vkr, np.sqrt(vk**2 - vkr**2))
        s_phase = tr.sn_mva * 1e6 / 3.0 * tr.parallel
        v_coil = (tr.vn_hv_kv * 1000.0, tr.vn_lv_kv * 1000.0 / SQRT3)
        coils = [[(k, (k + 2) % 3) for k in range(3)], [(3 + k, 6) for k in range(3)]]
        yprim = transformer_yprim(coils, coil_pair_admittance(z_pu, s_phase, v_coil, taps), 7)
        hv = nodes(tr.hv_bus)
        n = hv + nodes(tr.lv_bus) + [-1]
        asm.add_primitive(n, yprim)
        s_mag = tr.i0_percent / 100.0 * tr.sn_mva * 1e6 * tr.parallel
        p_fe = tr.pfe_kw * 1000.0 * tr.parallel
        y_m = complex(p_fe, -np.sqrt(max(s_mag**2 - p_fe**2, 0.0))) / (tr.vn_hv_kv * 1000.0) ** 2
        for node in hv:  # magnetising branch, wye-equivalent at the HV terminals
            asm.add_primitive([node], np.array([[y_m]]))
        rating = tr.sn_mva * 1e6 * tr.parallel / (SQRT3 * tr.vn_hv_kv * 1000.0)
        asm.add_branch(f"trafo:{tr['name']}", "trafo", n, [1, 2, 3], yprim, 3, rating)
    eg = net.ext_grid[net.ext_grid.in_service & net.ext_grid.bus.isin(energised)]
    for _, g in eg.iterrows():
        v = g.vm_pu * net.bus.vn_kv[g.bus] * 1000.0 / SQRT3
        for k, node in enumerate(nodes(g.bus)):
            asm.add_slack(node, v * np.exp(1j * np.deg2rad(g.va_degree - 120.0 * k)))
    slack_reps = {rep[int(b)] for b in eg.bus}
    load_bus = np.array([i for i, b in enumerate(feeder.bus_ids) if rep[b] not in slack_reps])
    for b in load_bus:
        vb = feeder.vn_kv[b] * 1000.0 / SQRT3
        for p, node in enumerate(nodes(feeder.bus_ids[b]), start=1):
            asm.add_load(f"bus{b}.{p}", node, -1, 0.0, 0.0, LOAD_MODEL_PQ, vb, 0.0, np.inf)
    out = asm.build()
    bus_map = np.array([asm.bus_index[name_of[rep[b]]] for b in feeder.bus_ids])
    kv = np.zeros(len(out.bus_names))
    kv[bus_map] = feeder.vn_kv
    out.vbase_v = kv[out.node_bus] * 1000.0 / SQRT3
    return out, bus_map, load_bus


@dataclass
class PhaseAllocation:
    """Phase codes (0-2 one phase, 3 three phases) of customers and of each asset kind."""

    customer: np.ndarray
    assets: dict[str, np.ndarray]

    def summary(self) -> str:
        """One line: how many customers and assets sit on each phase."""

        def count(codes: np.ndarray) -> str:
            n = np.bincount(codes, minlength=4)
            return f"a {n[0]} / b {n[1]} / c {n[2]} / abc {n[3]}"

        assets = np.concatenate(list(self.assets.values()))
        return f"customers {count(self.customer)}; assets {count(assets)}"

    def shares(self, codes: np.ndarray) -> np.ndarray:
        """(n, 3) share of each item's power on each phase."""
        out = np.zeros((len(codes), 3))
        single = codes < THREE
        out[np.nonzero(single)[0], codes[single]] = 1.0
        out[~single] = 1.0 / 3.0
        return out


def allocate_phases(
    feeder: Feeder,
    fleet: Fleet,
    seed: int,
    three_phase_customer_share: float,
    single_phase_max_kw: float,
    single_phase_on: str = "random",
) -> PhaseAllocation:
    """Seeded phase of every customer (a ``three_phase_customer_share`` on three phases) and
    asset (three-phase above ``single_phase_max_kw``); single-phase connections go on a
    random phase, or all on the phase ``single_phase_on`` names (a worst-case study)."""
    rng = np.random.default_rng(seed)

    def pick(n: int) -> np.ndarray:
        drawn = rng.integers(0, 3, n)  # drawn either way: the other draws stay the same
        return drawn if single_phase_on == "random" else np.full(n, "abc".index(single_phase_on))

    n_load = len(feeder.load_bus_pos)
    customer = pick(n_load)
    customer[rng.random(n_load) < three_phase_customer_share] = THREE
    ratings = {
        "pv": fleet.pv.peak_kw,
        "battery": fleet.battery.power_kw,
        "ev": fleet.ev.max_power_kw,
        "deferrable": fleet.deferrable.power_kw,
        "thermal": fleet.thermal.max_power_kw,
    }
    assets = {}
    for kind, kw in ratings.items():
        code = pick(len(kw))
        code[np.asarray(kw) > single_phase_max_kw] = THREE
        assets[kind] = code
    return PhaseAllocation(customer=customer, assets=assets)


def phase_base_loads(
    feeder: Feeder, profiles: pd.DataFrame, scale: float, alloc: PhaseAllocation
) -> tuple[np.ndarray, np.ndarray]:
    """Inflexible customer load per bus and phase, kW and kvar, shape (T, n_bus, 3)."""
    p = profiles[[f"{x}_pload" for x in feeder.load_profile]].to_numpy() * feeder.load_p_kw * scale
    q = (
        profiles[[f"{x}_qload" for x in feeder.load_profile]].to_numpy()
        * feeder.load_q_kvar
        * scale
    )
    inc = np.zeros((len(feeder.load_bus_pos), feeder.n_bus * 3))
    share = alloc.shares(alloc.customer)
    for ph in range(3):
        inc[np.arange(len(feeder.load_bus_pos)), feeder.load_bus_pos * 3 + ph] = share[:, ph]
    shape = (len(profiles), feeder.n_bus, 3)
    return (p @ inc).reshape(shape), (q @ inc).reshape(shape)


@dataclass
class ThreePhaseStep:
    """One snapshot of the three-phase twin (bus order = the feeder's)."""

    vm_pu: np.ndarray  # (n_bus, 3) phase-to-neutral voltage magnitudes
    vuf_pct: np.ndarray  # (n_bus,)
    neutral_current_a: np.ndarray  # (n_branch,) residual (neutral + earth) current
    branch_loading_pct: np.ndarray  # (n_branch,) highest phase current / rating
    feeder_kw: float
    feeder_kvar: float
    losses_kw: float
    v_node: np.ndarray | None = None  # complex node voltages (V) of the solution


@dataclass
class ThreePhaseFeeder:
    """The scenario's feeder three-phase: network, solver, phase allocation, phase loads."""

    net: ThreePhaseNetwork
    solver: ThreePhaseSolver
    alloc: PhaseAllocation
    base_kw: np.ndarray
    base_kvar: np.ndarray
    bus_map: np.ndarray
    load_bus: np.ndarray
    base_share: np.ndarray  # (n_bus, 3) phase shares of the customers' rated load per bus

    def base_at(
        self, step: int, bus_kw: np.ndarray, bus_kvar: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """(n_bus, 3) inflexible kW and kvar at ``step`` whose per-bus sums are the balanced
        scenario's (``bus_kw``/``bus_kvar``): the customers' profiles on their phases, and
        whatever the balanced base holds beyond them (load scaling, profile-less loads, the
        network's PV sgens' reactive power) spread evenly over the three phases."""
        p, q = self.base_kw[step], self.base_kvar[step]
        return (
            p + (np.asarray(bus_kw) - p.sum(axis=1))[:, None] / 3,
            q + (np.asarray(bus_kvar) - q.sum(axis=1))[:, None] / 3,
        )

    def split_estimate(self, bus_kw: np.ndarray) -> np.ndarray:
        """(n_bus, 3) split of an estimated per-bus inflexible load by the customers' phases
        (static connection data, what a controller knows without per-phase metering)."""
        return np.asarray(bus_kw)[:, None] * self.base_share

    def add_assets(
        self, base: np.ndarray, fleet: Fleet, powers: dict[str, np.ndarray]
    ) -> np.ndarray:
        """``base`` (n_bus, 3) plus every asset's kW on its phases."""
        out = np.array(base, dtype=float, copy=True)
        for kind, kw in powers.items():
            bus = getattr(fleet, kind).bus
            share = self.alloc.shares(self.alloc.assets[kind]) * np.asarray(kw)[:, None]
            np.add.at(out, bus, share)
        return out

    def asset_share(self, fleet: Fleet) -> np.ndarray:
        """(n_bus, 3) phase shares of the flexible assets' ratings at each bus (1/3 each where
        a bus has none): how a planner that sees per-bus power splits it over the phases."""
        ratings = {
            "pv": fleet.pv.peak_kw,
            "battery": fleet.battery.power_kw,
            "ev": fleet.ev.max_power_kw,
            "deferrable": fleet.deferrable.power_kw,
            "thermal": fleet.thermal.max_power_kw,
        }
        rated = np.zeros((len(self.bus_map), 3))
        for kind, kw in ratings.items():
            bus = getattr(fleet, kind).bus
            np.add.at(
                rated, bus, self.alloc.shares(self.alloc.assets[kind]) * np.asarray(kw)[:, None]
            )
        total = rated.sum(axis=1, keepdims=True)
        return np.divide(rated, total, out=np.full_like(rated, 1 / 3), where=total > 0)

    def solve_many(
        self, p_kw: np.ndarray, q_kvar: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """T snapshots of (T, n_bus, 3) consumption at once: phase voltages (T, n_bus, 3),
        worst-phase-current loading (T, n_branch) and the converged mask (T,)."""
        p = p_kw[:, self.load_bus].reshape(len(p_kw), -1)
        q = q_kvar[:, self.load_bus].reshape(len(q_kvar), -1)
        res = self.solver.solve(p, q, strict=False)
        pm = self.net.phase_matrix()
        br = self.net.branches
        i_cond = np.abs((br.current @ res.v.T).T)
        i_max = np.zeros((len(br.names), len(p)))
        np.maximum.at(i_max, br.conductor_branch, i_cond.T)
        i_max = i_max.T
        vm = res.vm_pu[:, pm][:, self.bus_map]
        return vm, 100.0 * i_max / br.rating_a, res.converged

    def solve(self, p_bus_phase_kw: np.ndarray, q_bus_phase_kvar: np.ndarray) -> ThreePhaseStep:
        """Solve one snapshot of (n_bus, 3) consumption (kW, kvar) per feeder bus and phase."""
        p = p_bus_phase_kw[self.load_bus].ravel()
        q = q_bus_phase_kvar[self.load_bus].ravel()
        res = self.solver.solve(p, q)
        kpi = unbalance(self.net, res.v)
        pm = self.net.phase_matrix()
        br = self.net.branches
        i_max = np.zeros(len(br.names))
        np.maximum.at(i_max, br.conductor_branch, kpi["phase_current_a"][0])
        s_load = p.sum() + 1j * q.sum()
        s_feed = complex(res.s_slack_kva[0])
        return ThreePhaseStep(
            vm_pu=res.vm_pu[0][pm][self.bus_map],
            vuf_pct=kpi["vuf_pct"][0][self.bus_map],
            neutral_current_a=kpi["residual_current_a"][0],
            branch_loading_pct=100.0 * i_max / br.rating_a,
            feeder_kw=s_feed.real,
            feeder_kvar=s_feed.imag,
            losses_kw=s_feed.real - s_load.real,
            v_node=res.v[0],
        )

    def voltage_sensitivity(self, step: ThreePhaseStep, bus: int, phase: int) -> np.ndarray:
        """(n_bus, 3) change of |V| (p.u.) of ``bus``'s ``phase`` (0-2) per kW of extra
        consumption at each bus and phase, linearised at the solved ``step``: the load
        currents' change conj(dS / V) through the factorised impedance matrix (the step of
        the solver's own fixed point; the loads' current response to the voltage change it
        causes is left out, a second-order effect)."""
        sv = self.solver
        node = self.net.phase_matrix()[self.bus_map[bus], phase]
        out = np.zeros((len(self.bus_map), 3))
        local = np.flatnonzero(sv.free[sv.load_nodes] == node)
        if len(local) == 0:  # a source node: no consumption moves it
            return out
        v = step.v_node
        loads = self.net.loads
        dv = sv.z_comp_t[:, local[0]] * 1000.0 / np.conj(v[loads.node_from])
        d_mag = np.real(np.conj(v[node]) * dv) / np.abs(v[node]) / self.net.vbase_v[node]
        out[self.load_bus] = d_mag.reshape(len(self.load_bus), 3)
        return out


def build_three_phase_feeder(
    feeder: Feeder,
    fleet: Fleet,
    profiles: pd.DataFrame,
    scale: float,
    seed: int,
    three_phase_customer_share: float = 0.25,
    single_phase_max_kw: float = 4.6,
    r0_over_r1: float = 3.0,
    single_phase_on: str = "random",
) -> ThreePhaseFeeder:
    """Everything the twin needs to run ``feeder`` three-phase (see the module docstring)."""
    net, bus_map, load_bus = three_phase_network(feeder, r0_over_r1)
    alloc = allocate_phases(
        feeder, fleet, seed, three_phase_customer_share, single_phase_max_kw, single_phase_on
    )
    base_kw, base_kvar = phase_base_loads(feeder, profiles, scale, alloc)
    rated = np.zeros((feeder.n_bus, 3))
    np.add.at(rated, feeder.load_bus_pos, alloc.shares(alloc.customer) * feeder.load_p_kw[:, None])
    total = rated.sum(axis=1, keepdims=True)
    base_share = np.divide(rated, total, out=np.full_like(rated, 1 / 3), where=total > 0)
    return ThreePhaseFeeder(
        net=net,
        solver=ThreePhaseSolver(net),
        alloc=alloc,
        base_kw=base_kw,
        base_kvar=base_kvar,
        bus_map=bus_map,
        load_bus=load_bus,
        base_share=base_share,
    )


def branch_order(tp: ThreePhaseFeeder, branch_names: np.ndarray) -> np.ndarray | None:
    """Positions of the balanced model's branches (``branch_names``) in the three-phase
    network, or None when the two branch lists differ."""
    names = list(tp.net.branches.names)
    lookup = {n: i for i, n in enumerate(names)}
    if len(lookup) != len(names) or set(branch_names) != set(names):
        return None
    return np.array([lookup[n] for n in branch_names])


def worst_phase_pu(vm_phase_pu: np.ndarray) -> np.ndarray:
    """Per bus, the phase voltage farthest from 1 p.u. ((n_bus, 3) -> (n_bus,))."""
    dev = np.abs(vm_phase_pu - 1.0)
    return vm_phase_pu[np.arange(len(dev)), np.argmax(dev, axis=1)]
