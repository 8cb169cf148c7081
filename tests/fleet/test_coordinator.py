"""Substation limit allocation and the VPP bid, against hand-solved cases."""

from __future__ import annotations

import numpy as np
import pytest

from gridsync.fleet.coordinator import aggregate_bid, allocate_limits
from gridsync.market.vpp import VppConfig


def test_headroom_is_shared_in_proportion_to_planned_import():
    # 150 kW planned under a 200 kW limit: the 50 kW headroom goes 2:1
    limits = allocate_limits([100.0, 50.0], [20.0, 10.0], 200.0)
    np.testing.assert_allclose(limits, [100 + 50 * 2 / 3, 50 + 50 / 3])


def test_excess_is_taken_in_proportion_to_flexibility():
    # 10 kW over a 140 kW limit, flexibility 20 and 10 kW: cut 20/30 and 10/30 of it
    limits = allocate_limits([100.0, 50.0], [20.0, 10.0], 140.0)
    np.testing.assert_allclose(limits, [100 - 10 * 2 / 3, 50 - 10 / 3])


def test_excess_equal_to_all_flexibility_uses_exactly_all_of_it():
    np.testing.assert_allclose(allocate_limits([100.0, 50.0], [20.0, 10.0], 120.0), [80, 40])


def test_excess_beyond_flexibility_shares_the_rest_by_residual_import():
    # 60 kW over a 90 kW limit, 30 kW flexible: residual imports 80 and 40 share 90 kW 2:1
    limits = allocate_limits([100.0, 50.0], [20.0, 10.0], 90.0)
    np.testing.assert_allclose(limits, [60.0, 30.0])


def test_flexibility_is_capped_at_the_planned_import_and_limit_must_be_positive():
    # a feeder cannot shed more than it imports: 50 kW flexibility on 10 kW counts as 10
    np.testing.assert_allclose(allocate_limits([10.0, 90.0], [50.0, 0.0], 95.0), [5.0, 90.0])
    with pytest.raises(ValueError, match="substation_limit_kw"):
        allocate_limits([1.0], [0.0], 0.0)


def test_bid_sums_feeders_prices_by_offered_weight_and_drops_small_classes():
    cfg = VppConfig(margin=0.25, min_bid_kw=1.0)
    up = np.array([[30.0, 0.4, 2.0], [10.0, 0.4, 0.0]])
    down = np.array([[5.0, 3.0, 1.0], [15.0, 1.0, 1.0]])
    up_cost = np.array([[0.20, 0.03, 0.02], [0.40, 0.03, 0.02]])
    down_value = np.array([[0.10, 0.12, 0.14], [0.30, 0.12, 0.14]])
    bid = aggregate_bid(7, "t", up, down, up_cost, down_value, cfg)
    assert bid.up_kw == [40.0, 0.0, 2.0]  # EV: 0.8 kW in total is below the 1 kW minimum
    assert bid.down_kw == [20.0, 4.0, 2.0]
    # battery ask: (30 x 0.20 + 10 x 0.40) / 40 = 0.25, times 1.25
    assert bid.ask_up_eur_per_kwh[0] == pytest.approx(0.3125)
    # battery down: (5 x 0.10 + 15 x 0.30) / 20 = 0.25, divided by 1.25
    assert bid.bid_down_eur_per_kwh[0] == pytest.approx(0.2)
    assert bid.n_feeders == 2
