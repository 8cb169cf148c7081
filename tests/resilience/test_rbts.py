"""RBTS Bus 2 base case against the published system indices (Allan et al., 1991)."""

from __future__ import annotations

import pytest

from gridsync.resilience.fmea import analytical_indices, outage_matrix
from gridsync.resilience.montecarlo import simulate
from gridsync.resilience.system import load_system

INDICES = ("saifi", "saidi_h", "caidi_h", "asai", "ens_mwh")


@pytest.fixture(scope="module")
def rbts():
    return load_system()


def test_bundled_data_matches_the_paper_totals(rbts):
    # 22 load points, 1908 customers, 12.291 MW average load; 36 line sections, 20 transformers
    assert len(rbts.load_points) == 22
    assert rbts.customers().sum() == 1908
    assert rbts.average_load_kw().sum() == pytest.approx(12291.0)
    assert sum(s.id.startswith("L") for s in rbts.sections) == 36
    assert sum(s.id.startswith("T") for s in rbts.sections) == 20


def test_analytical_within_two_percent_of_published(rbts):
    computed = analytical_indices(rbts).system()
    for name in INDICES:
        published = getattr(rbts.reference, name)
        assert getattr(computed, name) == pytest.approx(published, rel=0.02), name
    # ASAI within 2 % is trivially true; its complement (unavailability) must match too
    assert 1 - computed.asai == pytest.approx(1 - rbts.reference.asai, rel=0.02)


def test_monte_carlo_interval_covers_published(rbts):
    mc = simulate(outage_matrix(rbts), rbts.customers(), rbts.average_load_kw(),
                  years=100_000, seed=11)
    for name in INDICES:
        lo, hi = getattr(mc.ci95_low, name), getattr(mc.ci95_high, name)
        mid, half = (lo + hi) / 2, (hi - lo) / 2
        # 99.9 % interval (3.29 sigma) so that a correct simulator fails once in ~200 seeds
        widened = half * 3.29 / 1.96
        assert mid - widened <= getattr(rbts.reference, name) <= mid + widened, name
