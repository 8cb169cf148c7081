"""Prosumer agents: who trades, their preferences and limits, and the orders they post.

One participant per customer bus (the loads, PV and batteries connected there). Preferences
are seeded per participant: how much of the spread between the retail export and import price
they keep when selling (``sell_margin``) or buying (``buy_margin``), whether they let the agent
trade automatically, and a cap on kWh per interval. Because every offer is priced at or above
the export price and every bid at or below the import price less the local network fee the
buyer pays on P2P energy, no trade leaves a participant worse off than trading with the
retailer, as long as the forecast the order came from holds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gridsync.market.orders import BUY, SELL, OrderBook

NET, FLEX = 0, 1


@dataclass
class MarketConfig:
    """Market design and agent preferences (EUR, kWh)."""

    rule: str = "uniform"
    offer_fraction: float = 0.8  # share of the forecast surplus/deficit put on the market
    sell_margin: tuple[float, float] = (0.2, 0.6)  # keep this share of the retail spread
    buy_margin: tuple[float, float] = (0.2, 0.6)
    auto_trade_share: float = 0.9  # participants who let the agent trade for them
    max_trade_kwh: float = 25.0  # per participant and interval
    network_fee_eur_per_kwh: float = 0.05  # local grid fee the buyer pays on P2P energy
    battery_margin: float = 0.25  # battery bids this share of its value above export price
    imbalance_buy_markup: float = 0.25  # shortfall on a sale bought at import * (1 + markup)
    imbalance_sell_markdown: float = 0.5  # unused purchase sold back at export * (1 - markdown)
    credits_per_kwh: float = 1.0
    credit_value_eur: float = 0.01
    reward_credits_per_kwh: float = 0.5
    low_carbon_quantile: float = 0.25  # intervals at or below this carbon quantile count as green
    seed: int = 7

    def __post_init__(self) -> None:
        checks = {
            "rule": (self.rule in ("uniform", "pay_as_bid"), "'uniform' or 'pay_as_bid'"),
            "offer_fraction": (0 < self.offer_fraction <= 1, "in (0, 1]"),
            "auto_trade_share": (0 <= self.auto_trade_share <= 1, "in [0, 1]"),
            "max_trade_kwh": (self.max_trade_kwh > 0, "> 0"),
            "network_fee_eur_per_kwh": (self.network_fee_eur_per_kwh >= 0, ">= 0"),
            "battery_margin": (0 <= self.battery_margin <= 1, "in [0, 1]"),
            "imbalance_buy_markup": (self.imbalance_buy_markup >= 0, ">= 0"),
            "imbalance_sell_markdown": (0 <= self.imbalance_sell_markdown <= 1, "in [0, 1]"),
            "credits_per_kwh": (self.credits_per_kwh >= 0, ">= 0"),
            "credit_value_eur": (self.credit_value_eur >= 0, ">= 0"),
            "low_carbon_quantile": (0 < self.low_carbon_quantile < 1, "in (0, 1)"),
        }
        for margin in ("sell_margin", "buy_margin"):
            lo, hi = getattr(self, margin)
            checks[margin] = (0 <= lo <= hi <= 1, "a (low, high) pair within [0, 1]")
        for name, (ok, expected) in checks.items():
            if not ok:
                msg = f"market.{name} = {getattr(self, name)!r}: expected {expected}"
                raise ValueError(msg)


@dataclass
class Participants:
    """Per-participant arrays; batteries at a bus are pooled into one."""

    bus: np.ndarray
    sell_margin: np.ndarray
    buy_margin: np.ndarray
    auto_trade: np.ndarray
    battery_kwh: np.ndarray
    battery_kw: np.ndarray
    eta_charge: np.ndarray
    eta_discharge: np.ndarray
    energy_min_kwh: np.ndarray
    energy_max_kwh: np.ndarray
    energy_init_kwh: np.ndarray
    degradation_eur_per_kwh: np.ndarray

    def __len__(self) -> int:
        return len(self.bus)


def build_participants(scenario, cfg: MarketConfig) -> Participants:
    """One participant per customer bus of the scenario's feeder, preferences seeded."""
    rng = np.random.default_rng(cfg.seed)
    bus = scenario.feeder.customer_buses
    n = len(bus)
    slot = np.full(scenario.feeder.n_bus, -1)
    slot[bus] = np.arange(n)
    b = scenario.fleet.battery
    where = slot[b.bus]
    if np.any(where < 0):
        msg = "fleet.battery: a battery sits on a bus without customers"
        raise ValueError(msg)

    def pooled(values):
        out = np.zeros(n)
        np.add.at(out, where, values)
        return out

    cap = pooled(b.capacity_kwh)
    has = cap > 0
    safe = np.where(has, cap, 1.0)
    return Participants(
        bus=bus,
        sell_margin=rng.uniform(*cfg.sell_margin, n),
        buy_margin=rng.uniform(*cfg.buy_margin, n),
        auto_trade=rng.random(n) < cfg.auto_trade_share,
        battery_kwh=cap,
        battery_kw=pooled(b.power_kw),
        eta_charge=np.where(has, pooled(b.efficiency_charge * b.capacity_kwh) / safe, 1.0),
        eta_discharge=np.where(has, pooled(b.efficiency_discharge * b.capacity_kwh) / safe, 1.0),
        energy_min_kwh=pooled(b.energy_min_kwh),
        energy_max_kwh=pooled(b.energy_max_kwh),
        energy_init_kwh=pooled(b.capacity_kwh * b.soc_initial_frac),
        degradation_eur_per_kwh=np.where(
            has, pooled(b.degradation_eur_per_kwh * b.capacity_kwh) / safe, 0.0
        ),
    )


def post_orders(
    parts: Participants,
    cfg: MarketConfig,
    interval: int,
    net_kwh: np.ndarray,
    import_price: float,
    export_price: float,
    charge_room_kwh: np.ndarray,
    discharge_room_kwh: np.ndarray,
    battery_value_eur_per_kwh: float,
    discharge_floor_eur_per_kwh: np.ndarray,
) -> OrderBook:
    """The orders of one interval (vectorised over participants).

    ``net_kwh`` is each participant's forecast position after its own battery (+ = deficit).
    Surplus is offered and deficit bid (``offer_fraction`` of it, to leave room for forecast
    error). Batteries with room bid to charge at a price between the export price and the value
    of stored energy, and offer stored energy no cheaper than ``discharge_floor``.
    """
    ceiling = import_price - cfg.network_fee_eur_per_kwh  # what a buyer can pay before fees
    spread = max(ceiling - export_price, 0.0)
    active = parts.auto_trade
    surplus = np.minimum(np.maximum(-net_kwh, 0) * cfg.offer_fraction, cfg.max_trade_kwh) * active
    deficit = np.minimum(np.maximum(net_kwh, 0) * cfg.offer_fraction, cfg.max_trade_kwh) * active
    ask = export_price + parts.sell_margin * spread
    bid = ceiling - parts.buy_margin * spread
    batt_value = battery_value_eur_per_kwh - cfg.network_fee_eur_per_kwh
    batt_bid = export_price + cfg.battery_margin * max(batt_value - export_price, 0)
    charge = np.minimum(charge_room_kwh, cfg.max_trade_kwh) * active * (net_kwh >= 0)
    charge *= batt_bid > export_price
    discharge = np.minimum(discharge_room_kwh, cfg.max_trade_kwh) * active * (net_kwh <= 0)
    discharge_ask = np.maximum(ask, discharge_floor_eur_per_kwh)
    discharge *= discharge_ask < ceiling
    n = len(parts)
    p = np.arange(n)
    return OrderBook.build(
        participant=np.concatenate([p, p, p, p]),
        side=np.repeat([SELL, BUY, BUY, SELL], n),
        energy_kwh=np.concatenate([surplus, deficit, charge, discharge]),
        price_eur_per_kwh=np.concatenate([ask, bid, np.full(n, batt_bid), discharge_ask]),
        interval=np.full(4 * n, interval),
        kind=np.repeat([NET, NET, FLEX, FLEX], n),
    ).subset(np.concatenate([surplus, deficit, charge, discharge]) > 1e-9)
