"""Periodic double auction: sort-and-cross clearing, vectorised over the orders of an interval.

Bids are sorted by price descending and offers ascending (ties: earlier order first). Walking
both cumulative-volume curves together splits the traded volume into segments; each segment
pairs one bid with one offer, and segments trade while the bid price is at least the offer
price. That gives every order's fill and the bilateral trades (who bought from whom) at once.

Pricing rules:

* ``uniform``: every trade in the interval at one price, the middle of the range of prices
  that clear the market: ``[max(last accepted offer, first unfilled bid),
  min(last accepted bid, first unfilled offer)]``. Buyers pay what sellers receive (strong
  budget balance), nobody pays more than their bid or receives less than their offer.
* ``pay_as_bid``: each buyer pays its own bid and each seller receives its own offer; the
  spread stays with the market operator (weak budget balance, surplus reported).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from gridsync.market.orders import BUY, SELL, OrderBook

PricingRule = Literal["uniform", "pay_as_bid"]
RULES = ("uniform", "pay_as_bid")
_EPS_KWH = 1e-12


@dataclass
class Trades:
    """Bilateral trades (one row per matched bid/offer segment); indices refer to the book."""

    buy_order: np.ndarray
    sell_order: np.ndarray
    energy_kwh: np.ndarray
    buyer_price_eur_per_kwh: np.ndarray
    seller_price_eur_per_kwh: np.ndarray
    interval: np.ndarray

    def __len__(self) -> int:
        return len(self.buy_order)


@dataclass
class ClearingResult:
    """Fills and prices per order (aligned with the book) plus the bilateral trades."""

    filled_kwh: np.ndarray
    price_eur_per_kwh: np.ndarray  # price each order trades at (NaN when unfilled)
    intervals: np.ndarray
    clearing_price_eur_per_kwh: np.ndarray  # per interval; NaN where nothing cleared
    traded_kwh: np.ndarray  # per interval
    trades: Trades
    rule: str

    @property
    def buyer_payments_eur(self) -> float:
        return float(np.nansum(self._value(BUY)))

    @property
    def seller_receipts_eur(self) -> float:
        return float(np.nansum(self._value(SELL)))

    @property
    def operator_surplus_eur(self) -> float:
        """What buyers pay minus what sellers receive (0 under the uniform rule)."""
        return self.buyer_payments_eur - self.seller_receipts_eur

    def _value(self, side: int) -> np.ndarray:
        t = self.trades
        price = t.buyer_price_eur_per_kwh if side == BUY else t.seller_price_eur_per_kwh
        return t.energy_kwh * price


def clear(book: OrderBook, rule: PricingRule = "uniform") -> ClearingResult:
    """Clear every delivery interval of ``book`` independently."""
    if rule not in RULES:
        msg = f"pricing rule {rule!r} unknown; expected one of {', '.join(RULES)}"
        raise ValueError(msg)
    n = len(book)
    filled = np.zeros(n)
    price = np.full(n, np.nan)
    order = np.argsort(book.interval, kind="stable")
    intervals, starts = np.unique(book.interval[order], return_index=True)
    bounds = np.r_[starts, n]
    clearing = np.full(len(intervals), np.nan)
    traded = np.zeros(len(intervals))
    parts: list[tuple[np.ndarray, ...]] = []
    for k, iv in enumerate(intervals):
        idx = order[bounds[k] : bounds[k + 1]]
        res = _clear_one(book.side[idx], book.energy_kwh[idx], book.price_eur_per_kwh[idx], rule)
        fill_k, price_k, p_clear, (b, s, q, pb, ps) = res
        filled[idx] = fill_k
        price[idx] = price_k
        clearing[k] = p_clear
        traded[k] = q.sum()
        parts.append((idx[b], idx[s], q, pb, ps, np.full(len(q), iv, dtype=np.int64)))
    if parts:
        cols = [np.concatenate(c) for c in zip(*parts, strict=True)]
    else:
        cols = [np.zeros(0, np.int64)] * 2 + [np.zeros(0)] * 3 + [np.zeros(0, np.int64)]
    return ClearingResult(
        filled_kwh=filled,
        price_eur_per_kwh=price,
        intervals=intervals,
        clearing_price_eur_per_kwh=clearing,
        traded_kwh=traded,
        trades=Trades(*cols),
        rule=rule,
    )


def _clear_one(side: np.ndarray, qty: np.ndarray, price: np.ndarray, rule: str):
    """Clear one interval; returns fills, per-order prices, the clearing price and the pairs."""
    n = len(side)
    fills = np.zeros(n)
    order_price = np.full(n, np.nan)
    empty = (np.zeros(0, np.int64),) * 2 + (np.zeros(0),) * 3
    bids = np.flatnonzero((side == BUY) & (qty > _EPS_KWH))
    asks = np.flatnonzero((side == SELL) & (qty > _EPS_KWH))
    if len(bids) == 0 or len(asks) == 0:
        return fills, order_price, np.nan, empty
    bids = bids[np.argsort(-price[bids], kind="stable")]
    asks = asks[np.argsort(price[asks], kind="stable")]
    bp, ap = price[bids], price[asks]
    bq, aq = qty[bids], qty[asks]
    b_cum, a_cum = np.cumsum(bq), np.cumsum(aq)
    total = min(b_cum[-1], a_cum[-1])
    ends = np.union1d(b_cum, a_cum)
    ends = ends[ends <= total]
    begins = np.r_[0.0, ends[:-1]]
    keep = ends - begins > _EPS_KWH
    ends, begins = ends[keep], begins[keep]
    mid = 0.5 * (begins + ends)
    bi = np.searchsorted(b_cum, mid)
    ai = np.searchsorted(a_cum, mid)
    n_cross = int(np.count_nonzero(bp[bi] >= ap[ai]))  # a prefix: bid prices fall, offers rise
    if n_cross == 0:
        return fills, order_price, np.nan, empty
    volume = ends[n_cross - 1]
    bi, ai, seg = bi[:n_cross], ai[:n_cross], (ends - begins)[:n_cross]
    fills[bids] = np.clip(volume - (b_cum - bq), 0.0, bq)
    fills[asks] = np.clip(volume - (a_cum - aq), 0.0, aq)
    if rule == "uniform":
        first_open_bid = np.searchsorted(b_cum, volume + _EPS_KWH)
        first_open_ask = np.searchsorted(a_cum, volume + _EPS_KWH)
        next_bid = bp[first_open_bid] if first_open_bid < len(bids) else -np.inf
        next_ask = ap[first_open_ask] if first_open_ask < len(asks) else np.inf
        lo = max(ap[ai[-1]], next_bid)
        hi = min(bp[bi[-1]], next_ask)
        p_clear = 0.5 * (lo + hi)
        traded = fills > _EPS_KWH
        order_price[traded] = p_clear
        buyer_p = seller_p = np.full(n_cross, p_clear)
    else:
        traded = fills > _EPS_KWH
        order_price[traded] = price[traded]
        buyer_p, seller_p = bp[bi], ap[ai]
        p_clear = float(np.sum(seg * (buyer_p + seller_p) / 2) / np.sum(seg))
    return fills, order_price, float(p_clear), (bids[bi], asks[ai], seg, buyer_p, seller_p)


def clear_reference(
    side: list[int], qty: list[float], price: list[float], rule: PricingRule = "uniform"
) -> tuple[list[float], float, list[tuple[int, int, float]]]:
    """Plain-Python matching of one interval (two pointers over sorted lists).

    The independent reference the vectorised ``clear`` is tested and benchmarked against:
    returns fills per order, the clearing price (uniform rule) or volume-weighted mean pair
    price (pay-as-bid), and the (bid, offer, kWh) pairs.
    """
    bids = sorted(
        (i for i in range(len(side)) if side[i] == BUY and qty[i] > 0), key=lambda i: (-price[i], i)
    )
    asks = sorted(
        (i for i in range(len(side)) if side[i] == SELL and qty[i] > 0), key=lambda i: (price[i], i)
    )
    left = list(qty)
    fills = [0.0] * len(side)
    pairs = []
    ib = ia = 0
    while ib < len(bids) and ia < len(asks) and price[bids[ib]] >= price[asks[ia]]:
        b, a = bids[ib], asks[ia]
        q = min(left[b], left[a])
        pairs.append((b, a, q))
        for o in (b, a):
            left[o] -= q
            fills[o] += q
        if left[b] <= _EPS_KWH:
            ib += 1
        if left[a] <= _EPS_KWH:
            ia += 1
    if not pairs:
        return fills, float("nan"), pairs
    if rule == "pay_as_bid":
        volume = sum(q for _, _, q in pairs)
        mean = sum(q * (price[b] + price[a]) / 2 for b, a, q in pairs) / volume
        return fills, mean, pairs
    last_b, last_a = pairs[-1][0], pairs[-1][1]
    next_bid = price[bids[ib]] if ib < len(bids) else float("-inf")
    next_ask = price[asks[ia]] if ia < len(asks) else float("inf")
    lo = max(price[last_a], next_bid)
    hi = min(price[last_b], next_ask)
    return fills, (lo + hi) / 2, pairs
