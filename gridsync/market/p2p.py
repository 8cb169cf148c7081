"""The peer-to-peer market over a scenario window: post, clear, check on the twin, deliver.

Each interval (one scenario step) the agents post orders from their forecast position, the
double auction clears them, the twin rejects flexible trades that would break network limits
(``gridsync.market.network``), and batteries move by what they traded. Behind the meter every
battery stores its owner's surplus and, in the day's peak-price intervals, covers its owner's
deficit: agents plan that on the forecast and offer the remaining room to the neighbours; in
real time the battery first delivers what it traded, then balances its owner's actual residual
(which also covers shortfalls on sales made on a too-optimistic forecast).
Participants are handled as arrays; the only Python loop is over intervals.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from gridsync.market.agents import (
    FLEX,
    MarketConfig,
    Participants,
    build_participants,
    post_orders,
)
from gridsync.market.network import Limits, Rejection, enforce_limits
from gridsync.market.orders import BUY, SELL
from gridsync.market.twin_state import lagged


@dataclass
class P2PResult:
    """Per interval and participant (shape (T, P), kWh and EUR) plus the bilateral trades."""

    steps: np.ndarray
    participants: Participants
    forecast_kwh: np.ndarray  # inflexible net position the orders came from
    actual_kwh: np.ndarray  # inflexible net position that happened
    battery_kwh: np.ndarray  # battery consumption at the meter (+ charge, - discharge)
    bought_kwh: np.ndarray
    sold_kwh: np.ndarray
    paid_eur: np.ndarray
    received_eur: np.ndarray
    battery_bought_kwh: np.ndarray  # purchases that charged a battery (load shifted in time)
    clearing_price_eur_per_kwh: np.ndarray  # (T,), NaN where nothing cleared
    trades: dict[str, np.ndarray]
    rejections: list[Rejection] = field(default_factory=list)
    operator_surplus_eur: float = 0.0
    n_orders: int = 0
    energy_end_kwh: np.ndarray | None = None
    stored_cost_start_eur: np.ndarray | None = None  # book value of stored energy (at cost)
    stored_cost_end_eur: np.ndarray | None = None

    @property
    def metered_kwh(self) -> np.ndarray:
        return self.actual_kwh + self.battery_kwh

    @property
    def scheduled_kwh(self) -> np.ndarray:
        return self.forecast_kwh + self.battery_kwh


def persistence_forecast_kw(scenario, asset_kw: np.ndarray | None = None) -> np.ndarray:
    """Net load per bus for the window, forecast as the previous interval's metered value.

    ``asset_kw`` (n_steps, n_bus) is the twin's EV, heat-pump and appliance load; its previous
    interval is known from the second interval on (the first has no asset telemetry yet)."""
    s = scenario.start_step
    base = scenario.net_inflexible_kw(slice(s - 1, scenario.end_step - 1))
    return base if asset_kw is None else base + lagged(asset_kw, 1)


def day_ahead_forecast_kw(scenario, forecaster) -> np.ndarray:
    """Net inflexible load per bus for the window from any ``ExogenousForecaster``.

    Issued once per day at the first interval of the day for the whole day (day-ahead), so
    learned forecasters from ``gridsync.forecast`` plug in unchanged.
    """
    pv = scenario.fleet.pv
    n_bus = scenario.feeder.n_bus
    weights = np.zeros((scenario.pv_per_kwp.shape[1], n_bus))
    np.add.at(weights, (scenario.pv_orientation, pv.bus), pv.peak_kw)
    out = np.empty((scenario.n_steps, n_bus))
    day = scenario.steps_per_day
    for first in range(0, scenario.n_steps, day):
        h = min(day, scenario.n_steps - first)
        fc = forecaster.forecast(scenario, scenario.start_step + first, h)
        out[first : first + h] = fc.base_load_kw[:h] - fc.pv_per_kwp[:h] @ weights
    return out


def run_p2p(
    scenario,
    cfg: MarketConfig | None = None,
    forecast_net_kw: np.ndarray | None = None,
    limits: Limits | None = None,
    asset_kw: np.ndarray | None = None,
) -> P2PResult:
    """Run the market over the scenario window.

    ``asset_kw`` (n_steps, n_bus) is the load of the participants' other assets (EVs, heat
    pumps, appliances) on the twin (``twin_state.asset_load_by_bus_kw``); it is part of every
    meter, of the network check and of the positions agents trade. ``forecast_net_kw``
    (n_steps, n_bus) is the forecast net load per bus that agents trade on (any forecaster;
    default: persistence of the last metered interval, assets included).
    """
    cfg = cfg or MarketConfig()
    lim = limits or Limits(**scenario.config.limits.model_dump())
    parts = build_participants(scenario, cfg)
    window = slice(scenario.start_step, scenario.end_step)
    n_t, n_p, dt = scenario.n_steps, len(parts), scenario.dt_h
    want = (n_t, scenario.feeder.n_bus)
    if asset_kw is None:
        asset_kw = np.zeros(want)
    asset_kw = _checked("asset_kw", asset_kw, want)
    if forecast_net_kw is None:
        forecast_net_kw = persistence_forecast_kw(scenario, asset_kw)
    forecast_net_kw = _checked("forecast_net_kw", forecast_net_kw, want)
    actual_bus_kw = scenario.net_inflexible_kw(window) + asset_kw
    q_kvar = scenario.base_load_kvar[window]
    imp = scenario.tariff.import_eur_per_kwh[window]
    exp = scenario.tariff.export_eur_per_kwh[window]
    spd = scenario.steps_per_day
    day = (np.arange(n_t) + scenario.start_step % spd) // spd
    first = np.flatnonzero(np.r_[True, day[1:] != day[:-1]])
    day_peak = np.maximum.reduceat(imp, first)[day - day[0]]
    is_peak = imp >= day_peak - 1e-12
    own_peak_need = _own_outlook_kwh(scenario, parts.bus, asset_kw, surplus=False, mask=is_peak)
    has_batt = parts.battery_kwh > 0
    eta_rt = (
        float(np.mean(parts.eta_charge[has_batt] * parts.eta_discharge[has_batt]))
        if has_batt.any()
        else 1.0
    )
    degr = float(np.mean(parts.degradation_eur_per_kwh[has_batt])) if has_batt.any() else 0.0

    pf = scenario.powerflow()
    bus_of = parts.bus
    energy = parts.energy_init_kwh.copy()
    cost = (energy - parts.energy_min_kwh) * exp[0]
    cost_start = cost.copy()
    power_kwh = parts.battery_kw * dt
    out = {
        k: np.zeros((n_t, n_p))
        for k in ("battery", "bought", "sold", "paid", "received", "batt_bought")
    }
    clearing = np.full(n_t, np.nan)
    trade_parts: list[dict[str, np.ndarray]] = []
    rejections: list[Rejection] = []
    surplus_eur = 0.0
    n_orders = 0
    f_kwh = forecast_net_kw[:, bus_of] * dt
    actual_kwh = actual_bus_kw[:, bus_of] * dt
    own_pv_outlook = _own_outlook_kwh(scenario, bus_of, asset_kw, surplus=True)
    for t in range(n_t):
        step = scenario.start_step + t
        f = f_kwh[t]
        stored_room = parts.energy_max_kwh - energy
        self_charge = np.minimum.reduce(
            [np.maximum(-f, 0), power_kwh, stored_room / parts.eta_charge]
        )
        avail = np.maximum(energy - parts.energy_min_kwh, 0) * parts.eta_discharge
        self_dis = np.minimum.reduce([np.maximum(f, 0), power_kwh, avail]) * is_peak[t]
        net = f + self_charge - self_dis
        # Buy only what the owner's own evening peak needs beyond what is stored and what its
        # own PV is expected to add later today (both seasonal-naive outlooks).
        have = energy - parts.energy_min_kwh + (self_charge + own_pv_outlook[t]) * parts.eta_charge
        want = own_peak_need[t] / parts.eta_discharge
        charge_room = np.minimum.reduce(
            [
                power_kwh - self_charge,
                (stored_room - self_charge * parts.eta_charge) / parts.eta_charge,
                (want - have) / parts.eta_charge,
            ]
        )
        dis_room = np.minimum(power_kwh - self_dis, avail - self_dis) * is_peak[t]
        stored_above_min = np.maximum(energy - parts.energy_min_kwh, 1e-9)
        floor = cost / stored_above_min / parts.eta_discharge + parts.degradation_eur_per_kwh
        book = post_orders(
            parts,
            cfg,
            step,
            net,
            imp[t],
            exp[t],
            np.maximum(charge_room, 0),
            np.maximum(dis_room, 0),
            eta_rt * day_peak[t] - degr,
            floor,
        )
        n_orders += len(book)
        p_ref = forecast_net_kw[t].copy()
        np.add.at(p_ref, bus_of, (self_charge - self_dis) / dt)
        book, res, rej = enforce_limits(pf, book, p_ref, q_kvar[t], bus_of, dt, lim, cfg.rule)
        rejections.extend(rej)
        surplus_eur += res.operator_surplus_eur
        if len(res.intervals):
            clearing[t] = res.clearing_price_eur_per_kwh[0]
        fill, who = res.filled_kwh, book.participant
        value = fill * np.nan_to_num(res.price_eur_per_kwh)
        buy, sell, flex = book.side == BUY, book.side == SELL, book.kind == FLEX
        np.add.at(out["bought"][t], who[buy], fill[buy])
        np.add.at(out["sold"][t], who[sell], fill[sell])
        np.add.at(out["paid"][t], who[buy], value[buy])
        np.add.at(out["received"][t], who[sell], value[sell])
        charge_fill = np.zeros(n_p)
        dis_fill = np.zeros(n_p)
        np.add.at(charge_fill, who[buy & flex], fill[buy & flex])
        np.add.at(dis_fill, who[sell & flex], fill[sell & flex])
        out["batt_bought"][t] = charge_fill
        # Physics: traded battery energy moves as committed; then the battery balances the
        # owner's real residual (own surplus in, shortfalls on sales and peak deficits out).
        traded = np.zeros(n_p)
        np.add.at(traded, who[buy], fill[buy])
        np.add.at(traded, who[sell], -fill[sell])
        room_in = np.maximum(
            np.minimum(
                power_kwh - charge_fill,
                (parts.energy_max_kwh - energy) / parts.eta_charge - charge_fill,
            ),
            0,
        )
        room_out = np.maximum(np.minimum(power_kwh - dis_fill, avail - dis_fill), 0)
        residual = actual_kwh[t] + charge_fill - dis_fill - traded
        own_charge = np.minimum(np.maximum(-residual, 0), room_in)
        cover = np.where(is_peak[t], residual, np.minimum(residual, np.maximum(-traded, 0)))
        own_dis = np.minimum(np.maximum(cover, 0), room_out)
        drawn = (own_dis + dis_fill) / parts.eta_discharge
        cost *= 1 - np.minimum(drawn / stored_above_min, 1)
        charge_value = np.zeros(n_p)
        np.add.at(charge_value, who[buy & flex], value[buy & flex])
        charge_value += cfg.network_fee_eur_per_kwh * charge_fill
        # Energy a battery soaks up from an unused purchase is carried at its purchase price.
        bought_now = np.zeros(n_p)
        paid_now = np.zeros(n_p)
        np.add.at(bought_now, who[buy], fill[buy])
        np.add.at(paid_now, who[buy], value[buy])
        unit_price = cfg.network_fee_eur_per_kwh + np.divide(
            paid_now, bought_now, out=np.zeros(n_p), where=bought_now > 0
        )
        from_purchase = np.minimum(own_charge, np.clip(-residual, 0, np.maximum(traded, 0)))
        cost += from_purchase * unit_price + (own_charge - from_purchase) * exp[t] + charge_value
        energy = energy + (own_charge + charge_fill) * parts.eta_charge - drawn
        out["battery"][t] = own_charge + charge_fill - own_dis - dis_fill
        tr = res.trades
        trade_parts.append(
            {
                "step": tr.interval,
                "buyer": who[tr.buy_order],
                "seller": who[tr.sell_order],
                "energy_kwh": tr.energy_kwh,
                "buyer_price_eur_per_kwh": tr.buyer_price_eur_per_kwh,
                "seller_price_eur_per_kwh": tr.seller_price_eur_per_kwh,
            }
        )
    trades = (
        {k: np.concatenate([p[k] for p in trade_parts]) for k in trade_parts[0]}
        if trade_parts
        else {}
    )
    return P2PResult(
        steps=np.arange(scenario.start_step, scenario.end_step),
        participants=parts,
        forecast_kwh=f_kwh,
        actual_kwh=actual_kwh,
        battery_kwh=out["battery"],
        bought_kwh=out["bought"],
        sold_kwh=out["sold"],
        paid_eur=out["paid"],
        received_eur=out["received"],
        battery_bought_kwh=out["batt_bought"],
        clearing_price_eur_per_kwh=clearing,
        trades=trades,
        rejections=rejections,
        operator_surplus_eur=surplus_eur,
        n_orders=n_orders,
        energy_end_kwh=energy,
        stored_cost_start_eur=cost_start,
        stored_cost_end_eur=cost,
    )


def _checked(name: str, values: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    values = np.asarray(values, dtype=float)
    if values.shape != shape or not np.all(np.isfinite(values)):
        msg = f"{name}: shape {values.shape} with finite values expected {shape}"
        raise ValueError(msg)
    return values


def _own_outlook_kwh(
    scenario,
    bus_of: np.ndarray,
    asset_kw: np.ndarray,
    surplus: bool,
    mask: np.ndarray | None = None,
) -> np.ndarray:
    """Surplus (or, with ``surplus=False``, deficit in ``mask`` steps) each participant
    expects for the rest of the day after each interval.

    Seasonal naive: what the same bus did in the same steps yesterday (known history; the
    twin's asset load from the second day of the window on).
    """
    day = scenario.steps_per_day
    s0 = scenario.start_step
    if s0 < day:
        msg = f"the market needs one day of history before the window; history has {s0} steps"
        raise ValueError(msg)
    past = scenario.net_inflexible_kw(slice(s0 - day, scenario.end_step - day))
    past = (past + lagged(asset_kw, day))[:, bus_of]
    amount = np.maximum(-past if surplus else past, 0) * scenario.dt_h
    if mask is not None:
        amount = amount * mask[:, None]
    n_t = scenario.n_steps
    day_of = (np.arange(n_t) + (s0 % day)) // day
    out = np.zeros_like(amount)
    for d in np.unique(day_of):
        rows = np.flatnonzero(day_of == d)
        tail = np.cumsum(amount[rows][::-1], axis=0)[::-1]
        out[rows] = tail - amount[rows]
    return out
