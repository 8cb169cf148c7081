"""Analytical FMEA and Monte Carlo on a small radial feeder solved by hand."""

from __future__ import annotations

import numpy as np
import pytest

from gridsync.resilience.fmea import REPAIRED, SWITCHED, analytical_indices, outage_matrix
from gridsync.resilience.montecarlo import simulate
from gridsync.resilience.system import ReliabilitySystemError, build_topology, parse_system


def feeder(with_tie: bool) -> dict:
    """S -[breaker]- L1 2 km - n1 -[disc]- L2 1 km - n2; fused laterals L3 (1 km) to A at n1 and
    L4 (0.5 km) to B at n2; optionally a second source S2 - L5 - n3 with a tie n2-n3.
    0.1 f/km·yr, 4 h repair, 0.5 h switching; A: 100 customers 200 kW, B: 50 customers 100 kW."""
    sections = [
        {"id": "L1", "from_node": "S", "to_node": "n1", "component_type": "line", "length_km": 2.0, "device_from": "breaker"},
        {"id": "L2", "from_node": "n1", "to_node": "n2", "component_type": "line", "length_km": 1.0, "device_from": "disconnector"},
        {"id": "L3", "from_node": "n1", "to_node": "a", "component_type": "line", "length_km": 1.0, "device_from": "fuse"},
        {"id": "L4", "from_node": "n2", "to_node": "b", "component_type": "line", "length_km": 0.5, "device_from": "fuse"},
    ]
    data = {
        "name": "hand feeder",
        "switching_time_h": 0.5,
        "component_types": {"line": {"failure_rate_per_km_yr": 0.1, "repair_time_h": 4.0}},
        "sources": [{"node": "S"}],
        "sections": sections,
        "load_points": [
            {"id": "A", "node": "a", "customers": 100, "average_load_kw": 200.0},
            {"id": "B", "node": "b", "customers": 50, "average_load_kw": 100.0},
        ],
    }
    if with_tie:
        # n2 is listed as the far end: the topology must orient L5 from S2 anyway
        sections.append({"id": "L5", "from_node": "n3", "to_node": "S2", "component_type": "line",
                         "length_km": 1.0, "device_to": "breaker"})
        data["sources"].append({"node": "S2"})
        data["ties"] = [{"id": "T", "node_a": "n2", "node_b": "n3"}]
    return data


def test_hand_solved_without_tie():
    system = parse_system(feeder(with_tie=False))
    li = analytical_indices(system)
    # A: L1 0.2 f/yr repair (A's fused lateral cannot be fed), L2 0.1 switched, L3 0.1 repair
    # B: L1 0.2 repair, L2 0.1 repair, L4 0.05 repair; L3 blows only A's fuse
    np.testing.assert_allclose(li.failure_rate_per_yr, [0.4, 0.35])
    np.testing.assert_allclose(li.unavailability_h_per_yr, [0.8 + 0.05 + 0.4, 0.8 + 0.4 + 0.2])
    s = li.system()
    assert s.saifi == pytest.approx((0.4 * 100 + 0.35 * 50) / 150)
    assert s.saidi_h == pytest.approx((1.25 * 100 + 1.4 * 50) / 150)
    assert s.caidi_h == pytest.approx(s.saidi_h / s.saifi)
    assert s.asai == pytest.approx(1 - s.saidi_h / 8760)
    assert s.ens_mwh == pytest.approx(1.25 * 0.2 + 1.4 * 0.1)


def test_tie_restores_downstream_but_not_the_fault_zone():
    system = parse_system(feeder(with_tie=True))
    m = outage_matrix(system)
    b = m.load_point_ids.index("B")
    assert m.category[m.component_ids.index("L1"), b] == SWITCHED  # fed back through the tie
    assert m.category[m.component_ids.index("L2"), b] == REPAIRED  # n2 is in L2's fault zone
    assert not m.category[m.component_ids.index("L5")].any()  # feeder 2 has no load points
    li = analytical_indices(system, m)
    np.testing.assert_allclose(li.unavailability_h_per_yr, [1.25, 0.2 * 0.5 + 0.4 + 0.2])


def test_monte_carlo_agrees_with_the_hand_solution():
    system = parse_system(feeder(with_tie=True))
    m = outage_matrix(system)
    mc = simulate(m, system.customers(), system.average_load_kw(), years=40_000, seed=3)
    exact = analytical_indices(system, m).system()
    for name in ("saifi", "saidi_h", "ens_mwh"):
        lo, hi = getattr(mc.ci95_low, name), getattr(mc.ci95_high, name)
        # 3.5 sigma: a correct simulator fails this about once in 2,000 runs
        half = (hi - lo) / 2 * 3.5 / 1.96
        assert abs(getattr(mc.mean, name) - getattr(exact, name)) < half, name


def test_bad_input_names_the_field():
    data = feeder(with_tie=False)
    data["sections"][1]["component_type"] = "cable"
    with pytest.raises(ReliabilitySystemError, match=r"sections.1 \(L2\).*'cable'"):
        parse_system(data)
    data = feeder(with_tie=False)
    data["load_points"][0]["customers"] = 0
    with pytest.raises(ReliabilitySystemError, match="load_points.0.customers"):
        parse_system(data)


def test_a_loop_is_diagnosed():
    data = feeder(with_tie=False)
    data["sections"].append({"id": "L9", "from_node": "a", "to_node": "b", "component_type": "line", "length_km": 1.0})
    with pytest.raises(ReliabilitySystemError, match="closes a loop"):
        build_topology(parse_system(data))


def test_yaml_system_file_reads_like_toml(tmp_path):
    import yaml

    from gridsync.resilience.system import load_system

    path = tmp_path / "feeder.yaml"
    path.write_text(yaml.safe_dump(feeder(with_tie=False)))
    li = analytical_indices(load_system(path))
    np.testing.assert_allclose(li.unavailability_h_per_yr, [1.25, 1.4])
