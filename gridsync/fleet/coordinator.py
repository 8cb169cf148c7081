"""The substation coordinator: one VPP bid from the feeders' flexibility, one import limit
shared back among them.

``aggregate_bid`` sums what every feeder reported it can deliver for the next interval per
asset class (battery, EV, heat pump; ``market.vpp``'s flexibility model) into ONE bid of the
virtual power plant, priced as the market agent prices it (up: cost x (1 + margin); down:
value / (1 + margin)), classes below the minimum bid size left out.

``allocate_limits`` splits a substation import limit (kW) among the feeders for the next hour:
below the limit, the headroom is shared in proportion to the feeders' planned imports; above
it, the excess is taken from the feeders in proportion to the flexibility they reported
(never more than a feeder reported); if all of it is not enough, what remains is shared in
proportion to the imports left after flexibility. The limits always sum to the substation's.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gridsync.market.vpp import CLASSES, VppConfig


@dataclass
class VppBid:
    """The fleet's bid for one interval: kW and EUR/kWh per class (battery, EV, heat pump)."""

    step: int
    time: str
    up_kw: list[float]
    down_kw: list[float]
    ask_up_eur_per_kwh: list[float]
    bid_down_eur_per_kwh: list[float]
    n_feeders: int

    def as_dict(self) -> dict:
        return {**self.__dict__, "classes": list(CLASSES)}


def aggregate_bid(
    step: int,
    time: str,
    flex_up_kw: np.ndarray,
    flex_down_kw: np.ndarray,
    up_cost_eur_per_kwh: np.ndarray,
    down_value_eur_per_kwh: np.ndarray,
    cfg: VppConfig | None = None,
) -> VppBid:
    """One bid from per-feeder flexibility ``(n_feeders, 3)`` kW and per-feeder class costs
    ``(n_feeders, 3)`` EUR/kWh (weighted by each feeder's offered kW)."""
    cfg = cfg or VppConfig()
    up, down = np.asarray(flex_up_kw, float), np.asarray(flex_down_kw, float)
    up_total, down_total = up.sum(axis=0), down.sum(axis=0)
    w_up = np.where(up_total > 0, up / np.where(up_total > 0, up_total, 1.0), 1.0 / len(up))
    w_dn = np.where(
        down_total > 0, down / np.where(down_total > 0, down_total, 1.0), 1.0 / len(down)
    )
    up_cost = (w_up * np.asarray(up_cost_eur_per_kwh, float)).sum(axis=0)
    down_value = (w_dn * np.asarray(down_value_eur_per_kwh, float)).sum(axis=0)
    up_kw = np.where(up_total >= cfg.min_bid_kw, up_total, 0.0)
    down_kw = np.where(down_total >= cfg.min_bid_kw, down_total, 0.0)
    return VppBid(
        step=int(step),
        time=str(time),
        up_kw=up_kw.round(3).tolist(),
        down_kw=down_kw.round(3).tolist(),
        ask_up_eur_per_kwh=(up_cost * (1 + cfg.margin)).round(5).tolist(),
        bid_down_eur_per_kwh=(np.maximum(down_value, 0) / (1 + cfg.margin)).round(5).tolist(),
        n_feeders=len(up),
    )


def allocate_limits(
    planned_import_kw: np.ndarray, flex_up_kw: np.ndarray, substation_limit_kw: float
) -> np.ndarray:
    """Import limit per feeder (kW) summing to ``substation_limit_kw`` (see module doc)."""
    if substation_limit_kw <= 0:
        msg = f"substation_limit_kw = {substation_limit_kw!r}: expected > 0"
        raise ValueError(msg)
    p = np.maximum(np.asarray(planned_import_kw, float), 0.0)
    u = np.minimum(np.maximum(np.asarray(flex_up_kw, float), 0.0), p)
    limit = float(substation_limit_kw)
    total = p.sum()
    if total <= limit:
        share = p / total if total > 0 else np.full(len(p), 1.0 / len(p))
        return p + (limit - total) * share
    excess = total - limit
    if u.sum() >= excess:
        return p - excess * u / u.sum()
    rest = p - u
    return rest * limit / rest.sum()
