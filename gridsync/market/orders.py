"""Orders as arrays: one element per bid (buy) or offer (sell) for one delivery interval."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

BUY, SELL = 1, -1


@dataclass
class OrderBook:
    """Limit orders. ``side`` is +1 (bid, buy) or -1 (offer, sell); ``interval`` is the delivery
    interval (a step of the scenario index); ``kind`` tags where an order came from (0 = net
    position from the forecast, 1 = battery flexibility), so the network check knows which
    orders move power physically.
    """

    participant: np.ndarray
    side: np.ndarray
    energy_kwh: np.ndarray
    price_eur_per_kwh: np.ndarray
    interval: np.ndarray
    kind: np.ndarray

    def __post_init__(self) -> None:
        n = len(self.participant)
        for name in ("side", "energy_kwh", "price_eur_per_kwh", "interval", "kind"):
            if len(getattr(self, name)) != n:
                msg = f"OrderBook.{name}: length {len(getattr(self, name))}, expected {n} (one per order)"
                raise ValueError(msg)
        _check(self.side, np.isin(self.side, (BUY, SELL)), "side", "+1 (buy) or -1 (sell)")
        _check(
            self.energy_kwh,
            np.isfinite(self.energy_kwh) & (self.energy_kwh >= 0),
            "energy_kwh",
            "a finite value >= 0",
        )
        _check(
            self.price_eur_per_kwh,
            np.isfinite(self.price_eur_per_kwh),
            "price_eur_per_kwh",
            "a finite price",
        )

    def __len__(self) -> int:
        return len(self.participant)

    @classmethod
    def build(
        cls,
        participant,
        side,
        energy_kwh,
        price_eur_per_kwh,
        interval=None,
        kind=None,
    ) -> OrderBook:
        """Arrays (or lists) to an order book; scalars ``interval``/``kind`` default to 0."""
        participant = np.asarray(participant, dtype=np.int64)
        n = len(participant)
        return cls(
            participant=participant,
            side=np.asarray(side, dtype=np.int8),
            energy_kwh=np.asarray(energy_kwh, dtype=float),
            price_eur_per_kwh=np.asarray(price_eur_per_kwh, dtype=float),
            interval=np.zeros(n, np.int64) if interval is None else np.asarray(interval, np.int64),
            kind=np.zeros(n, np.int8) if kind is None else np.asarray(kind, np.int8),
        )

    def subset(self, mask_or_index) -> OrderBook:
        return OrderBook(
            participant=self.participant[mask_or_index],
            side=self.side[mask_or_index],
            energy_kwh=self.energy_kwh[mask_or_index],
            price_eur_per_kwh=self.price_eur_per_kwh[mask_or_index],
            interval=self.interval[mask_or_index],
            kind=self.kind[mask_or_index],
        )

    @classmethod
    def concat(cls, books: list[OrderBook]) -> OrderBook:
        return cls(
            **{
                name: np.concatenate([getattr(b, name) for b in books])
                for name in (
                    "participant",
                    "side",
                    "energy_kwh",
                    "price_eur_per_kwh",
                    "interval",
                    "kind",
                )
            }
        )


def _check(values: np.ndarray, ok: np.ndarray, name: str, expected: str) -> None:
    if not np.all(ok):
        k = int(np.flatnonzero(~ok)[0])
        msg = f"OrderBook.{name}[{k}] = {values[k].item()!r}: expected {expected}"
        raise ValueError(msg)
