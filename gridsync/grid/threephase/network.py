"""Three-phase network as data: nodes (bus, phase), the nodal admittance matrix, the slack
source, single-phase load components and branch-current maps.

Every quantity is in SI units (volts, amperes, siemens) until the solver reports p.u.; one
node is one conductor at a bus (``"632.2"``), ground is not a node. A three-phase load is three
single-phase components, each connected between two nodes (or a node and ground), so wye and
delta loads, single-phase customers on a named phase and three-phase customers are the same
data. Branches are described by ``NetworkAssembler.add_primitive``: any element whose terminal
currents are ``Yprim @ V`` (lines, transformers, the source impedance, capacitors).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

LOAD_MODEL_PQ = 1  # constant power (impedance outside [vmin, vmax], as OpenDSS model 1)
LOAD_MODEL_Z = 2  # constant impedance
# any other model code (OpenDSS 5) is constant current magnitude


@dataclass
class LoadComponents:
    """Single-phase load branches; arrays have one entry per component.

    ``node_to`` is -1 for a component connected to ground (wye with grounded neutral).
    ``p_kw``/``q_kvar`` are nominal consumption at ``vbase_v`` across the component.
    ``element`` indexes ``ThreePhaseNetwork.load_names``.
    """

    node_from: np.ndarray
    node_to: np.ndarray
    p_kw: np.ndarray
    q_kvar: np.ndarray
    model: np.ndarray
    vbase_v: np.ndarray
    vmin_pu: np.ndarray
    vmax_pu: np.ndarray
    element: np.ndarray

    @property
    def n(self) -> int:
        return len(self.node_from)


@dataclass
class Branches:
    """Conductor currents at the sending end of each branch: ``i_from_a = current @ V``.

    ``conductor_branch[k]`` is the branch of row ``k``, ``conductor_node[k]`` its node (-1 =
    ground) and ``conductor_phase[k]`` that node's number at its bus (1-3 phases, 4+ neutral). ``rating_a`` is the branch's current limit (NaN unknown).
    """

    names: np.ndarray
    kind: np.ndarray
    current: sp.csr_matrix
    conductor_branch: np.ndarray
    conductor_phase: np.ndarray
    conductor_node: np.ndarray
    rating_a: np.ndarray


@dataclass
class Winding:
    """One transformer winding, for tap controls: each phase coil's (node a, node b) (-1 =
    ground; coil voltage V_a - V_b), its rated coil voltage (V), the tap range and step (p.u.)
    and the branch (``<transformer>.w<k>``) whose rows are its phase-terminal currents."""

    coils: list[tuple[int, int]]
    rated_v: float
    tap_min: float
    tap_max: float
    tap_step: float
    branch: str


@dataclass
class ThreePhaseNetwork:
    """A three-phase (or mixed-phase) feeder ready to solve."""

    name: str
    bus_names: np.ndarray
    node_bus: np.ndarray
    node_phase: np.ndarray
    vbase_v: np.ndarray
    y: sp.csr_matrix
    slack: np.ndarray
    v_slack: np.ndarray
    loads: LoadComponents
    load_names: np.ndarray
    branches: Branches
    load_shapes: dict[str, np.ndarray] = field(default_factory=dict)
    load_shape_of: np.ndarray | None = None
    notes: list[str] = field(default_factory=list)
    windings: dict[str, Winding] = field(default_factory=dict)

    @property
    def n_node(self) -> int:
        return len(self.node_bus)

    @property
    def node_names(self) -> np.ndarray:
        return np.array(
            [
                f"{self.bus_names[b]}.{p}"
                for b, p in zip(self.node_bus, self.node_phase, strict=True)
            ]
        )

    def node_index(self, names: list[str]) -> np.ndarray:
        lookup = {n: i for i, n in enumerate(self.node_names)}
        missing = [n for n in names if n not in lookup]
        if missing:
            msg = f"nodes {missing[:5]} are not in network {self.name}"
            raise KeyError(msg)
        return np.array([lookup[n] for n in names])

    def phase_matrix(self) -> np.ndarray:
        """(n_bus, 3) node index of phases 1-3 per bus, -1 where the bus lacks that phase."""
        out = np.full((len(self.bus_names), 3), -1)
        sel = (self.node_phase >= 1) & (self.node_phase <= 3)
        out[self.node_bus[sel], self.node_phase[sel] - 1] = np.nonzero(sel)[0]
        return out


class NetworkAssembler:
    """Collects nodes, primitive admittances, loads and branches, then builds the network."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.bus_index: dict[str, int] = {}
        self.node_index: dict[tuple[int, int], int] = {}
        self.node_bus: list[int] = []
        self.node_phase: list[int] = []
        self.rows: list[np.ndarray] = []
        self.cols: list[np.ndarray] = []
        self.vals: list[np.ndarray] = []
        self.slack_nodes: list[int] = []
        self.slack_v: list[complex] = []
        self.load_rows: list[tuple] = []
        self.load_names: list[str] = []
        self.branch_names: list[str] = []
        self.branch_kind: list[str] = []
        self.branch_rating: list[float] = []
        self.cur_rows: list[np.ndarray] = []
        self.cur_cols: list[np.ndarray] = []
        self.cur_vals: list[np.ndarray] = []
        self.cond_branch: list[int] = []
        self.cond_phase: list[int] = []
        self.cond_node: list[int] = []
        self.notes: list[str] = []
        self.windings: dict[str, Winding] = {}

    def bus(self, name: str) -> int:
        name = name.lower()
        if name not in self.bus_index:
            self.bus_index[name] = len(self.bus_index)
        return self.bus_index[name]

    def node(self, bus: str, phase: int) -> int:
        """Index of node ``bus.phase``; -1 for ground (phase 0)."""
        if phase == 0:
            return -1
        key = (self.bus(bus), int(phase))
        if key not in self.node_index:
            self.node_index[key] = len(self.node_bus)
            self.node_bus.append(key[0])
            self.node_phase.append(int(phase))
        return self.node_index[key]

    def add_primitive(self, nodes: list[int], yprim: np.ndarray) -> None:
        """Add ``yprim`` (terminal admittance, S) over ``nodes`` (-1 = ground, dropped)."""
        idx = np.asarray(nodes)
        keep = idx >= 0
        sub = yprim[np.ix_(keep, keep)]
        r, c = np.meshgrid(idx[keep], idx[keep], indexing="ij")
        self.rows.append(r.ravel())
        self.cols.append(c.ravel())
        self.vals.append(sub.ravel())

    def add_branch(
        self,
        name: str,
        kind: str,
        nodes: list[int],
        phases: list[int],
        yprim: np.ndarray,
        n_from: int,
        rating_a: float = float("nan"),
        first: int = 0,
    ) -> None:
        """Record how terminal currents ``first .. first + n_from - 1`` (into the element)
        follow from the node voltages."""
        idx = np.asarray(nodes)
        keep = idx >= 0
        b = len(self.branch_names)
        self.branch_names.append(name)
        self.branch_kind.append(kind)
        self.branch_rating.append(rating_a)
        for j, k in enumerate(range(first, first + n_from)):
            row = len(self.cond_branch)
            self.cond_branch.append(b)
            self.cond_phase.append(phases[j])
            self.cond_node.append(int(idx[k]))
            self.cur_rows.append(np.full(keep.sum(), row))
            self.cur_cols.append(idx[keep])
            self.cur_vals.append(yprim[k, keep])

    def add_slack(self, node: int, v: complex) -> None:
        self.slack_nodes.append(node)
        self.slack_v.append(complex(v))

    def add_load(
        self,
        name: str,
        node_from: int,
        node_to: int,
        p_kw: float,
        q_kvar: float,
        model: int,
        vbase_v: float,
        vmin_pu: float = 0.95,
        vmax_pu: float = 1.05,
    ) -> None:
        """One single-phase load component; components of one element share ``name``."""
        if not self.load_names or self.load_names[-1] != name:
            self.load_names.append(name)
        element = len(self.load_names) - 1
        self.load_rows.append(
            (node_from, node_to, p_kw, q_kvar, model, vbase_v, vmin_pu, vmax_pu, element)
        )

    def build(self, vbase_v: np.ndarray | None = None) -> ThreePhaseNetwork:
        n = len(self.node_bus)
        y = sp.coo_matrix(
            (np.concatenate(self.vals), (np.concatenate(self.rows), np.concatenate(self.cols))),
            shape=(n, n),
        ).tocsr()
        cur = sp.coo_matrix(
            (
                np.concatenate(self.cur_vals),
                (np.concatenate(self.cur_rows), np.concatenate(self.cur_cols)),
            ),
            shape=(len(self.cond_branch), n),
        ).tocsr()
        cols = list(zip(*self.load_rows, strict=True)) if self.load_rows else [()] * 9
        loads = LoadComponents(
            node_from=np.asarray(cols[0], dtype=int),
            node_to=np.asarray(cols[1], dtype=int),
            p_kw=np.asarray(cols[2], dtype=float),
            q_kvar=np.asarray(cols[3], dtype=float),
            model=np.asarray(cols[4], dtype=int),
            vbase_v=np.asarray(cols[5], dtype=float),
            vmin_pu=np.asarray(cols[6], dtype=float),
            vmax_pu=np.asarray(cols[7], dtype=float),
            element=np.asarray(cols[8], dtype=int),
        )
        names = sorted(self.bus_index, key=self.bus_index.get)
        return ThreePhaseNetwork(
            name=self.name,
            bus_names=np.array(names),
            node_bus=np.asarray(self.node_bus),
            node_phase=np.asarray(self.node_phase),
            vbase_v=np.full(n, np.nan) if vbase_v is None else vbase_v,
            y=y,
            slack=np.asarray(self.slack_nodes),
            v_slack=np.asarray(self.slack_v),
            loads=loads,
            load_names=np.array(self.load_names),
            branches=Branches(
                names=np.array(self.branch_names),
                kind=np.array(self.branch_kind),
                current=cur,
                conductor_branch=np.asarray(self.cond_branch),
                conductor_phase=np.asarray(self.cond_phase),
                conductor_node=np.asarray(self.cond_node),
                rating_a=np.asarray(self.branch_rating, dtype=float),
            ),
            notes=list(self.notes),
            windings=dict(self.windings),
        )
