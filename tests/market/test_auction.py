"""Double auction: hand-solved books, budget balance, and agreement with the plain reference."""

from __future__ import annotations

import numpy as np
import pytest

from gridsync.market.auction import clear, clear_reference
from gridsync.market.orders import BUY, SELL, OrderBook

# Bids A 5@0.30, B 3@0.25, C 4@0.15; offers X 4@0.10, Y 3@0.20, Z 5@0.28.
# Curves cross after 7 kWh: A-X 4, A-Y 1, B-Y 2; B is the partially filled marginal bid.
BOOK = OrderBook.build(
    participant=[0, 1, 2, 3, 4, 5],
    side=[BUY, BUY, BUY, SELL, SELL, SELL],
    energy_kwh=[5, 3, 4, 4, 3, 5],
    price_eur_per_kwh=[0.30, 0.25, 0.15, 0.10, 0.20, 0.28],
)


def test_uniform_price_hand_solved():
    res = clear(BOOK, "uniform")
    np.testing.assert_allclose(res.filled_kwh, [5, 2, 0, 4, 3, 0])
    # Range of clearing prices: [max(0.20 last offer, 0.25 open bid), min(0.25, 0.28)] = 0.25.
    assert res.clearing_price_eur_per_kwh[0] == pytest.approx(0.25)
    assert res.traded_kwh[0] == pytest.approx(7)
    assert res.buyer_payments_eur == pytest.approx(1.75)
    assert res.operator_surplus_eur == pytest.approx(0.0)
    pairs = set(
        zip(
            res.trades.buy_order, res.trades.sell_order, res.trades.energy_kwh.round(9), strict=True
        )
    )
    assert pairs == {(0, 3, 4.0), (0, 4, 1.0), (1, 4, 2.0)}


def test_uniform_price_midpoint_when_marginal_orders_fill_exactly():
    book = OrderBook.build(
        [0, 1, 2, 3], [BUY, BUY, SELL, SELL], [2, 2, 2, 2], [0.30, 0.20, 0.10, 0.25]
    )
    res = clear(book, "uniform")
    np.testing.assert_allclose(res.filled_kwh, [2, 0, 2, 0])
    # [max(0.10, 0.20), min(0.30, 0.25)] = [0.20, 0.25] -> 0.225
    assert res.clearing_price_eur_per_kwh[0] == pytest.approx(0.225)


def test_pay_as_bid_hand_solved():
    res = clear(BOOK, "pay_as_bid")
    np.testing.assert_allclose(res.filled_kwh, [5, 2, 0, 4, 3, 0])
    assert res.buyer_payments_eur == pytest.approx(5 * 0.30 + 2 * 0.25)
    assert res.seller_receipts_eur == pytest.approx(4 * 0.10 + 3 * 0.20)
    assert res.operator_surplus_eur == pytest.approx(1.0)
    np.testing.assert_allclose(res.price_eur_per_kwh[:2], [0.30, 0.25])


def test_no_cross_and_one_sided_books_trade_nothing():
    res = clear(OrderBook.build([0, 1], [BUY, SELL], [1, 1], [0.1, 0.2]))
    assert res.traded_kwh[0] == 0 and np.isnan(res.clearing_price_eur_per_kwh[0])
    res = clear(OrderBook.build([0, 1], [BUY, BUY], [1, 1], [0.1, 0.2]))
    assert len(res.trades) == 0


def test_intervals_clear_independently():
    book = OrderBook.concat(
        [
            OrderBook.build(
                BOOK.participant,
                BOOK.side,
                BOOK.energy_kwh,
                BOOK.price_eur_per_kwh,
                interval=[7] * 6,
            ),
            OrderBook.build([0, 1], [BUY, SELL], [1, 1], [0.5, 0.1], interval=[3, 3]),
        ]
    )
    res = clear(book)
    assert list(res.intervals) == [3, 7]
    np.testing.assert_allclose(res.clearing_price_eur_per_kwh, [0.3, 0.25])
    np.testing.assert_allclose(res.traded_kwh, [1, 7])


def test_bad_orders_name_the_field():
    with pytest.raises(ValueError, match=r"energy_kwh\[1\] = -2.0"):
        OrderBook.build([0, 1], [BUY, SELL], [1, -2], [0.1, 0.2])
    with pytest.raises(ValueError, match=r"side\[0\]"):
        OrderBook.build([0], [0], [1], [0.1])
    with pytest.raises(ValueError, match="pricing rule"):
        clear(BOOK, "vickrey")


@pytest.mark.parametrize("rule", ["uniform", "pay_as_bid"])
def test_random_books_match_reference_and_stay_rational(rule):
    rng = np.random.default_rng(7)
    for _ in range(30):
        n = int(rng.integers(2, 60))
        side = rng.choice([BUY, SELL], n)
        qty = rng.choice([0.5, 1.0, 1.5, 2.0], n) * rng.integers(0, 3, n)
        price = np.round(rng.uniform(0.05, 0.45, n), 2)
        res = clear(OrderBook.build(np.arange(n), side, qty, price), rule)
        ref_fills, ref_price, _ = clear_reference(list(side), list(qty), list(price), rule)
        np.testing.assert_allclose(res.filled_kwh, ref_fills, atol=1e-9)
        if np.isnan(ref_price):
            assert np.isnan(res.clearing_price_eur_per_kwh).all() or res.traded_kwh.sum() == 0
        else:
            assert res.clearing_price_eur_per_kwh[0] == pytest.approx(ref_price)
        # Individual rationality at the order level, and (weak) budget balance.
        t = res.trades
        assert np.all(t.buyer_price_eur_per_kwh <= price[t.buy_order] + 1e-12)
        assert np.all(t.seller_price_eur_per_kwh >= price[t.sell_order] - 1e-12)
        assert res.operator_surplus_eur >= -1e-9
        # Volume conservation: bought == sold.
        assert res.filled_kwh[side == BUY].sum() == pytest.approx(
            res.filled_kwh[side == SELL].sum()
        )
