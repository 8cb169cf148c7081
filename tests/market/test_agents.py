"""Agents: orders stay inside the retail price band, respect limits and opt-outs."""

from __future__ import annotations

import numpy as np
import pytest

from gridsync.market.agents import FLEX, NET, MarketConfig, build_participants, post_orders
from gridsync.market.orders import BUY, SELL


def test_orders_are_individually_rational_and_capped(scenario_1day):
    cfg = MarketConfig(max_trade_kwh=2.0, network_fee_eur_per_kwh=0.05)
    parts = build_participants(scenario_1day, cfg)
    n = len(parts)
    assert n == len(scenario_1day.feeder.customer_buses)
    assert parts.battery_kwh.sum() == pytest.approx(scenario_1day.fleet.battery.capacity_kwh.sum())
    rng = np.random.default_rng(0)
    net = rng.normal(0, 3, n)
    book = post_orders(
        parts, cfg, 5, net, 0.28, 0.08, np.full(n, 1.0), np.full(n, 1.0), 0.36, np.full(n, 0.1)
    )
    sells = book.side == SELL
    buys = book.side == BUY
    assert np.all(book.price_eur_per_kwh[sells] >= 0.08)
    assert np.all(book.price_eur_per_kwh[buys] + 0.05 <= 0.28 + 1e-12)
    assert np.all(book.energy_kwh <= 2.0 + 1e-12) and np.all(book.energy_kwh > 0)
    assert np.all(book.interval == 5)
    # Net orders follow the forecast sign: surplus is offered, deficit bid.
    net_orders = book.kind == NET
    assert np.all(net[book.participant[net_orders & sells]] < 0)
    assert np.all(net[book.participant[net_orders & buys]] > 0)
    # Batteries only bid to charge when their owner is not selling, and never above their value.
    flex_buy = (book.kind == FLEX) & buys
    assert np.all(net[book.participant[flex_buy]] >= 0)
    assert np.all(book.price_eur_per_kwh[flex_buy] <= 0.36 - 0.05)
    # Participants who opted out post nothing.
    assert not np.any(~parts.auto_trade[book.participant])


def test_bad_config_names_the_field():
    with pytest.raises(ValueError, match=r"market.offer_fraction = 1.5: expected in \(0, 1\]"):
        MarketConfig(offer_fraction=1.5)
    with pytest.raises(ValueError, match="market.rule = 'vickrey'"):
        MarketConfig(rule="vickrey")
    with pytest.raises(ValueError, match="market.sell_margin"):
        MarketConfig(sell_margin=(0.7, 0.2))
