"""Settlement: metered energy settles trades, deviations pay imbalance prices, statements.

Per participant and interval, with market net purchase ``n = bought - sold`` and metered
consumption ``m`` (kWh, + = import):

* residual ``r = m - n`` is what the retailer supplies (``r > 0``) or takes (``r < 0``);
* a net seller whose meter did not deliver what it sold (``r > 0`` while ``n < 0``) covers the
  shortfall ``min(r, -n)`` at the imbalance price ``import * (1 + markup)``;
* a net buyer that did not use what it bought (``r < 0`` while ``n > 0``) sells the unused
  part ``min(-r, n)`` back at ``export * (1 - markdown)``;
* the rest of ``r`` is retail: imports at the import price, exports at the export price.

The bill adds the market payments minus receipts and the local network fee on energy bought. Battery energy is carried at cost (what was
paid for it, or the export price forgone for own PV), and the change of that book value over the
window is credited, so a market run and its no-market counterfactual compare fairly when the
battery ends the window fuller or emptier.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gridsync.market.agents import MarketConfig
from gridsync.market.p2p import P2PResult


@dataclass
class Settlement:
    """Per-participant totals over the window (EUR, kWh), shape (P,)."""

    market_eur: np.ndarray  # paid minus received in the auction
    network_fee_eur: np.ndarray  # local grid fee on P2P purchases
    retail_import_eur: np.ndarray
    retail_export_eur: np.ndarray  # revenue (positive)
    imbalance_eur: np.ndarray  # net imbalance charge (shortfall cost - spill revenue)
    storage_credit_eur: np.ndarray
    shortfall_kwh: np.ndarray
    spill_kwh: np.ndarray
    metered_import_kwh: np.ndarray
    metered_export_kwh: np.ndarray
    make_whole_eur: np.ndarray | None = None  # refund to anyone the market left worse off

    @property
    def bill_eur(self) -> np.ndarray:
        return (
            self.market_eur
            + self.network_fee_eur
            + self.retail_import_eur
            - self.retail_export_eur
            + self.imbalance_eur
            - self.storage_credit_eur
            - (0.0 if self.make_whole_eur is None else self.make_whole_eur)
        )


def make_whole(market: Settlement, no_market: Settlement) -> Settlement:
    """Refund every participant whose market bill exceeds their no-market bill, from the pot
    of local network fees (pro rata if the pot is short).

    Forecast errors make imbalance charges unavoidable, so individual rationality cannot hold
    order by order; this after-the-fact guarantee restores it at the community's expense, and
    never pays out more than the fees collected, so the market stays budget balanced.
    """
    loss = np.maximum(market.bill_eur - no_market.bill_eur, 0.0)
    pot = float(market.network_fee_eur.sum())
    need = float(loss.sum())
    refund = loss if need <= pot else loss * (pot / need)
    market.make_whole_eur = refund
    return market


def settle(result: P2PResult, scenario, cfg: MarketConfig) -> Settlement:
    steps = result.steps
    imp = scenario.tariff.import_eur_per_kwh[steps][:, None]
    exp = scenario.tariff.export_eur_per_kwh[steps][:, None]
    metered = result.metered_kwh
    n = result.bought_kwh - result.sold_kwh
    r = metered - n
    short = np.where(n < 0, np.clip(r, 0, np.maximum(-n, 0)), 0.0)
    spill = np.where(n > 0, np.clip(-r, 0, np.maximum(n, 0)), 0.0)
    retail_import = np.maximum(r, 0) - short
    retail_export = np.maximum(-r, 0) - spill
    return Settlement(
        market_eur=(result.paid_eur - result.received_eur).sum(0),
        network_fee_eur=result.bought_kwh.sum(0) * cfg.network_fee_eur_per_kwh,
        retail_import_eur=(retail_import * imp).sum(0),
        retail_export_eur=(retail_export * exp).sum(0),
        imbalance_eur=(
            short * imp * (1 + cfg.imbalance_buy_markup)
            - spill * exp * (1 - cfg.imbalance_sell_markdown)
        ).sum(0),
        storage_credit_eur=result.stored_cost_end_eur - result.stored_cost_start_eur,
        shortfall_kwh=short.sum(0),
        spill_kwh=spill.sum(0),
        metered_import_kwh=np.maximum(metered, 0).sum(0),
        metered_export_kwh=np.maximum(-metered, 0).sum(0),
    )


def statement(
    participant: int, result: P2PResult, market: Settlement, no_market: Settlement
) -> dict:
    """One participant's own statement: their trades and bill, nobody else's data."""
    t = result.trades
    mine_buy = t["buyer"] == participant
    mine_sell = t["seller"] == participant
    return {
        "participant": int(participant),
        "bought_kwh": float(t["energy_kwh"][mine_buy].sum()),
        "sold_kwh": float(t["energy_kwh"][mine_sell].sum()),
        "market_eur": float(market.market_eur[participant]),
        "network_fee_eur": float(market.network_fee_eur[participant]),
        "retail_import_eur": float(market.retail_import_eur[participant]),
        "retail_export_eur": float(market.retail_export_eur[participant]),
        "imbalance_eur": float(market.imbalance_eur[participant]),
        "storage_credit_eur": float(market.storage_credit_eur[participant]),
        "make_whole_eur": float(
            0.0 if market.make_whole_eur is None else market.make_whole_eur[participant]
        ),
        "bill_eur": float(market.bill_eur[participant]),
        "bill_without_market_eur": float(no_market.bill_eur[participant]),
        "saving_eur": float(no_market.bill_eur[participant] - market.bill_eur[participant]),
        "trades": [
            {
                "step": int(t["step"][k]),
                "side": "buy" if mine_buy[k] else "sell",
                "energy_kwh": float(t["energy_kwh"][k]),
                "price_eur_per_kwh": float(
                    t["buyer_price_eur_per_kwh"][k]
                    if mine_buy[k]
                    else t["seller_price_eur_per_kwh"][k]
                ),
            }
            for k in np.flatnonzero(mine_buy | mine_sell)
        ],
    }
