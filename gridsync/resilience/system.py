"""Reliability description of a radial distribution system: components, protection, load points.

A system file (TOML or YAML, validated here) lists component types (failure rate per km·yr for
lines or per yr for units, mean repair time in h), sections between nodes (a line or a
transformer, with the protective or isolating device at either end), normally open ties, the
source nodes (feeder breakers' bus side) and load points (customers, average load in kW). This is
the data an analytical failure-modes-and-effects evaluation and a sequential Monte Carlo need;
the bundled example is the RBTS Bus 2 network (``gridsync/data/reliability/rbts_bus2.toml``).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from gridsync.model.scenario_config import format_validation_errors, read_config_mapping

DATA_DIR = Path(__file__).resolve().parent.parent / "data" / "reliability"
RBTS_BUS2 = DATA_DIR / "rbts_bus2.toml"
HOURS_PER_YEAR = 8760.0

Device = Literal["none", "breaker", "fuse", "disconnector"]


class ReliabilitySystemError(ValueError):
    """The system file is missing, malformed, or its topology is not radial."""


class ComponentType(BaseModel):
    model_config = ConfigDict(extra="forbid")
    failure_rate_per_km_yr: float | None = Field(None, ge=0)
    failure_rate_per_yr: float | None = Field(None, ge=0)
    repair_time_h: float = Field(gt=0)

    @model_validator(mode="after")
    def _one_rate(self) -> ComponentType:
        if (self.failure_rate_per_km_yr is None) == (self.failure_rate_per_yr is None):
            msg = "give exactly one of failure_rate_per_km_yr (lines) or failure_rate_per_yr (units)"
            raise ValueError(msg)
        return self


class Section(BaseModel):
    """A failing element between two nodes; ``device_from``/``device_to`` sit at its ends."""

    model_config = ConfigDict(extra="forbid")
    id: str
    from_node: str
    to_node: str
    component_type: str
    length_km: float = Field(0.0, ge=0)
    device_from: Device = "none"
    device_to: Device = "none"


class Tie(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str
    node_a: str
    node_b: str


class Source(BaseModel):
    model_config = ConfigDict(extra="forbid")
    node: str


class LoadPoint(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str
    node: str
    customers: int = Field(gt=0)
    average_load_kw: float = Field(ge=0)
    peak_load_kw: float | None = Field(None, ge=0)
    customer_type: str = "unspecified"


class Reference(BaseModel):
    """Published system indices the file reproduces (for validation only)."""

    model_config = ConfigDict(extra="forbid")
    source: str
    saifi: float
    saidi_h: float
    caidi_h: float
    asai: float
    ens_mwh: float


class ReliabilitySystem(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    switching_time_h: float = Field(gt=0)
    component_types: dict[str, ComponentType]
    sources: list[Source] = Field(min_length=1)
    sections: list[Section] = Field(min_length=1)
    ties: list[Tie] = []
    load_points: list[LoadPoint] = Field(min_length=1)
    reference: Reference | None = None

    @model_validator(mode="after")
    def _references(self) -> ReliabilitySystem:
        for i, s in enumerate(self.sections):
            if s.component_type not in self.component_types:
                known = ", ".join(sorted(self.component_types))
                msg = f"sections.{i} ({s.id}): component_type {s.component_type!r} is not one of [{known}]"
                raise ValueError(msg)
            ct = self.component_types[s.component_type]
            if ct.failure_rate_per_km_yr is not None and s.length_km <= 0:
                msg = f"sections.{i} ({s.id}): a per-km component type needs length_km > 0 (got {s.length_km})"
                raise ValueError(msg)
        nodes = {s.from_node for s in self.sections} | {s.to_node for s in self.sections}
        for kind, items in (("sources", self.sources), ("load_points", self.load_points)):
            for i, item in enumerate(items):
                if item.node not in nodes:
                    msg = f"{kind}.{i}: node {item.node!r} is not an end of any section"
                    raise ValueError(msg)
        for i, t in enumerate(self.ties):
            for end in (t.node_a, t.node_b):
                if end not in nodes:
                    msg = f"ties.{i} ({t.id}): node {end!r} is not an end of any section"
                    raise ValueError(msg)
        for kind, items in (("sections", self.sections), ("load_points", self.load_points)):
            ids = [x.id for x in items]
            dup = sorted({x for x in ids if ids.count(x) > 1})
            if dup:
                msg = f"{kind}: duplicate id(s) {dup}"
                raise ValueError(msg)
        return self

    def failure_rates_per_yr(self) -> np.ndarray:
        out = np.empty(len(self.sections))
        for i, s in enumerate(self.sections):
            ct = self.component_types[s.component_type]
            if ct.failure_rate_per_km_yr is not None:
                out[i] = ct.failure_rate_per_km_yr * s.length_km
            else:
                out[i] = ct.failure_rate_per_yr
        return out

    def repair_times_h(self) -> np.ndarray:
        return np.array([self.component_types[s.component_type].repair_time_h for s in self.sections])

    def customers(self) -> np.ndarray:
        return np.array([lp.customers for lp in self.load_points], dtype=float)

    def average_load_kw(self) -> np.ndarray:
        return np.array([lp.average_load_kw for lp in self.load_points])


def parse_system(data: dict, source: str = "reliability system") -> ReliabilitySystem:
    try:
        return ReliabilitySystem.model_validate(data)
    except ValidationError as err:
        raise ReliabilitySystemError(format_validation_errors(source, err)) from None


def load_system(path: str | Path = RBTS_BUS2) -> ReliabilitySystem:
    """Read and validate a reliability system file (``.toml``/``.yaml``)."""
    data = read_config_mapping(path, "reliability system", ReliabilitySystemError)
    return parse_system(data, Path(path).name)


@dataclass(frozen=True)
class Topology:
    """The radial tree of a system with the ties open.

    ``parent_section[n]`` is the section feeding node ``n`` (-1 at a source), ``upper[s]`` and
    ``lower[s]`` the node indices at the source side and the far side of section ``s``,
    ``children[n]`` the sections leaving node ``n`` away from the source.
    """

    nodes: list[str]
    index: dict[str, int]
    parent_section: np.ndarray
    upper: np.ndarray
    lower: np.ndarray
    children: list[list[int]]
    device_upper: list[str]
    device_lower: list[str]

    def subtree_nodes(self, node: int) -> list[int]:
        out, stack = [], [node]
        while stack:
            n = stack.pop()
            out.append(n)
            stack.extend(int(self.lower[s]) for s in self.children[n])
        return out


def build_topology(system: ReliabilitySystem) -> Topology:
    """Orient every section away from its source; fail with a diagnosis unless radial."""
    nodes = sorted({s.from_node for s in system.sections} | {s.to_node for s in system.sections})
    index = {n: i for i, n in enumerate(nodes)}
    adjacency: list[list[int]] = [[] for _ in nodes]
    for k, s in enumerate(system.sections):
        adjacency[index[s.from_node]].append(k)
        adjacency[index[s.to_node]].append(k)
    parent = np.full(len(nodes), -2, dtype=int)
    upper = np.full(len(system.sections), -1, dtype=int)
    lower = np.full(len(system.sections), -1, dtype=int)
    queue: deque[int] = deque()
    for src in system.sources:
        parent[index[src.node]] = -1
        queue.append(index[src.node])
    while queue:
        n = queue.popleft()
        for k in adjacency[n]:
            if k == parent[n]:
                continue
            s = system.sections[k]
            other = index[s.to_node] if index[s.from_node] == n else index[s.from_node]
            if parent[other] != -2:
                msg = (f"section {s.id} closes a loop (node {nodes[other]!r} is already fed); "
                       "a reliability system must be radial with its ties open")
                raise ReliabilitySystemError(msg)
            parent[other] = k
            upper[k], lower[k] = n, other
            queue.append(other)
    unfed = [nodes[i] for i in np.flatnonzero(parent == -2)]
    if unfed:
        msg = f"node(s) {unfed[:5]} are not connected to any source"
        raise ReliabilitySystemError(msg)
    children: list[list[int]] = [[] for _ in nodes]
    dev_up, dev_low = [], []
    for k, s in enumerate(system.sections):
        children[upper[k]].append(k)
        flipped = index[s.from_node] != upper[k]
        dev_up.append(s.device_to if flipped else s.device_from)
        dev_low.append(s.device_from if flipped else s.device_to)
    return Topology(nodes, index, parent, upper, lower, children, dev_up, dev_low)
