"""Failure modes and effects of every component on every load point (analytical evaluation).

For one failed section the first breaker or fuse between it and the source trips and interrupts
everything below it. The nearest isolating devices (any breaker, fuse or disconnect) around the
failed section bound its fault zone. Load points outside the zone come back after the switching
time: those on the source side by opening the upstream device and reclosing, those beyond the
zone only if a normally open tie reaches a node that is energised after isolation (capacity
assumed available, as in the RBTS base case). Load points in the zone wait for the repair.

The result is an ``OutageMatrix``: per (component, load point) a category 0 (not interrupted),
1 (restored by switching), 2 (out for the repair). The analytical indices and the sequential
Monte Carlo both read it, so they model the same restoration and differ only in method.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gridsync.resilience.indices import LoadPointIndices
from gridsync.resilience.system import ReliabilitySystem, Topology, build_topology

NOT_AFFECTED, SWITCHED, REPAIRED = 0, 1, 2
_PROTECTIVE = ("breaker", "fuse")


@dataclass(frozen=True)
class OutageMatrix:
    """``category[c, i]`` for failed component ``c`` and load point ``i``, with the inputs."""

    category: np.ndarray
    failure_rate_per_yr: np.ndarray
    repair_time_h: np.ndarray
    switching_time_h: float
    component_ids: list[str]
    load_point_ids: list[str]

    def durations_h(self, repair_time_h: np.ndarray | None = None) -> np.ndarray:
        """Outage duration per (component, load point) for given repair times (default: means).

        Switching never takes longer than the repair it avoids: a restored-by-switching load
        point waits ``min(switching time, repair time)``.
        """
        r = self.repair_time_h if repair_time_h is None else repair_time_h
        r = np.asarray(r, dtype=float)[:, None]
        switched = np.minimum(self.switching_time_h, r)
        return np.where(self.category == SWITCHED, switched,
                        np.where(self.category == REPAIRED, r, 0.0))


def _slots_to_source(topo: Topology, section: int) -> list[tuple[int, str]]:
    """Device positions between a failed section and its source, nearest first."""
    slots = [(section, topo.device_upper[section])]
    node = int(topo.upper[section])
    while topo.parent_section[node] >= 0:
        p = int(topo.parent_section[node])
        slots += [(p, topo.device_lower[p]), (p, topo.device_upper[p])]
        node = int(topo.upper[p])
    return slots


def _root(topo: Topology, node: int) -> int:
    while topo.parent_section[node] >= 0:
        node = int(topo.upper[int(topo.parent_section[node])])
    return node


def _downstream_regions(topo: Topology, section: int) -> list[int]:
    """Root nodes of the parts beyond the fault zone that isolating devices can separate."""
    if topo.device_lower[section] != "none":
        return [int(topo.lower[section])]
    regions, stack = [], [int(topo.lower[section])]
    while stack:
        node = stack.pop()
        for c in topo.children[node]:
            if topo.device_upper[c] != "none" or topo.device_lower[c] != "none":
                regions.append(int(topo.lower[c]))
            else:
                stack.append(int(topo.lower[c]))
    return regions


def outage_matrix(system: ReliabilitySystem, topo: Topology | None = None) -> OutageMatrix:
    """Categorise the effect of each section's failure on each load point."""
    topo = topo or build_topology(system)
    n_nodes = len(topo.nodes)
    lp_node = np.array([topo.index[lp.node] for lp in system.load_points])
    tie_ends = [(topo.index[t.node_a], topo.index[t.node_b]) for t in system.ties]
    category = np.zeros((len(system.sections), len(system.load_points)), dtype=np.int8)

    def mask(nodes: list[int]) -> np.ndarray:
        m = np.zeros(n_nodes, dtype=bool)
        m[nodes] = True
        return m

    for c in range(len(system.sections)):
        slots = _slots_to_source(topo, c)
        trip = next((k for k, d in slots if d in _PROTECTIVE), None)
        isolate = next((k for k, d in slots if d != "none"), None)
        root = _root(topo, int(topo.upper[c]))
        tripped = mask(topo.subtree_nodes(root if trip is None else int(topo.lower[trip])))
        isolated = mask(topo.subtree_nodes(root if isolate is None else int(topo.lower[isolate])))
        back = tripped & ~isolated
        for region in _downstream_regions(topo, c):
            region_mask = mask(topo.subtree_nodes(region))
            fed = any((region_mask[a] and not isolated[b]) or (region_mask[b] and not isolated[a])
                      for a, b in tie_ends)
            if fed:
                back |= region_mask
        hit = tripped[lp_node]
        category[c] = np.where(hit & back[lp_node], SWITCHED, np.where(hit, REPAIRED, NOT_AFFECTED))
    return OutageMatrix(
        category=category,
        failure_rate_per_yr=system.failure_rates_per_yr(),
        repair_time_h=system.repair_times_h(),
        switching_time_h=system.switching_time_h,
        component_ids=[s.id for s in system.sections],
        load_point_ids=[lp.id for lp in system.load_points],
    )


def analytical_indices(system: ReliabilitySystem, matrix: OutageMatrix | None = None) -> LoadPointIndices:
    """Expected failure rate (1/yr) and annual outage time (h/yr) per load point."""
    matrix = matrix or outage_matrix(system)
    lam = matrix.failure_rate_per_yr
    return LoadPointIndices(
        ids=matrix.load_point_ids,
        failure_rate_per_yr=lam @ (matrix.category > 0),
        unavailability_h_per_yr=lam @ matrix.durations_h(),
        customers=system.customers(),
        average_load_kw=system.average_load_kw(),
    )
