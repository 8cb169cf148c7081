"""Virtual power plant: the fleet's flexibility per interval, bid into a balancing market.

Flexibility is computed from the asset arrays against a simple baseline (the dispatch
optimizer is another module; any baseline can be swapped in later):

* batteries idle at their state of charge; up = discharge, down = charge, limited by power
  and stored energy (tracked interval by interval as accepted bids are activated);
* EV sessions charge at full power from arrival until their need is met (the uncontrolled
  baseline); up = pausing that charging when the session can still finish in time (plus V2G
  discharge where allowed and the slack covers it), down = charging faster within headroom;
* heat pumps hold the middle of the comfort band; up/down = the power range that keeps the
  building in the band after the interval (exact RC step).

EV and heat-pump capacity is computed against the baseline state, so after an activation those
classes sit out ``recovery_steps`` intervals (the rebound is not modelled in energy terms);
batteries track their energy exactly.

Bids per interval and asset class, settled as balancing energy at the cleared price:

* up (deliver energy): the VPP is paid; it asks at least its cost times ``1 + margin``
  (battery: degradation plus the energy to refill at the cheapest retail price through the
  round trip; EVs and heat pumps: a configured inconvenience cost);
* down (take energy): the VPP pays; it bids at most the energy's value divided by
  ``1 + margin`` (the cheapest retail price the energy would otherwise cost, less degradation
  or inconvenience).

A bid is accepted when the system needs its direction and the price clears it.
``revenue_eur`` is the cash (up income minus down payments); ``value_eur`` also counts the
retail energy the down purchases replace and the cost of the up deliveries.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

CLASSES = ("battery", "ev", "thermal")


@dataclass
class VppConfig:
    margin: float = 0.2
    ev_up_cost_eur_per_kwh: float = 0.03
    ev_down_cost_eur_per_kwh: float = 0.01
    thermal_cost_eur_per_kwh: float = 0.02
    min_bid_kw: float = 1.0
    recovery_steps: int = 4  # EVs/heat pumps sit out this long after an activation
    seed: int = 11

    def __post_init__(self) -> None:
        for name in (
            "margin",
            "ev_up_cost_eur_per_kwh",
            "ev_down_cost_eur_per_kwh",
            "thermal_cost_eur_per_kwh",
            "min_bid_kw",
        ):
            if getattr(self, name) < 0:
                msg = f"vpp.{name} = {getattr(self, name)!r}: expected >= 0"
                raise ValueError(msg)


@dataclass
class BalancingPrices:
    """Per interval: the direction the system needs (+1 up, -1 down, 0 none) and its price."""

    direction: np.ndarray
    price_eur_per_kwh: np.ndarray


def synthetic_balancing_prices(scenario, seed: int = 11) -> BalancingPrices:
    """A seeded stand-in for a real balancing price series (none ships with the scenario).

    The system is short (needs up) or long (needs down) in runs of about an hour; up prices
    scatter around the retail import price, down prices (what taking extra energy costs)
    around a third of it. Replace with real data when available.
    """
    rng = np.random.default_rng(seed)
    steps = np.arange(scenario.start_step, scenario.end_step)
    n = len(steps)
    per_hour = max(1, int(round(1 / scenario.dt_h)))
    runs = rng.choice([1, -1, 0], size=n // per_hour + 1, p=[0.45, 0.4, 0.15])
    direction = np.repeat(runs, per_hour)[:n]
    imp = scenario.tariff.import_eur_per_kwh[steps]
    noise = rng.lognormal(0.0, 0.5, n)
    price = np.where(direction > 0, imp * noise, np.where(direction < 0, imp / 3 * noise, 0.0))
    return BalancingPrices(direction=direction, price_eur_per_kwh=price)


@dataclass
class VppResult:
    """Per interval and class (T, 3): offered kW and price, accepted kW, revenue."""

    up_kw: np.ndarray
    down_kw: np.ndarray
    up_price_eur_per_kwh: np.ndarray
    down_price_eur_per_kwh: np.ndarray
    accepted_up_kw: np.ndarray
    accepted_down_kw: np.ndarray
    revenue_eur: np.ndarray
    value_eur: np.ndarray
    n_bids: int
    n_accepted: int

    def summary(self, dt_h: float) -> dict:
        return {
            "bids": self.n_bids,
            "accepted": self.n_accepted,
            "acceptance_rate": self.n_accepted / self.n_bids if self.n_bids else float("nan"),
            "revenue_eur": float(self.revenue_eur.sum()),
            "value_eur": float(self.value_eur.sum()),
            "revenue_by_class_eur": dict(
                zip(CLASSES, self.revenue_eur.sum(0).round(4).tolist(), strict=True)
            ),
            "offered_up_kwh": float(self.up_kw.sum() * dt_h),
            "offered_down_kwh": float(self.down_kw.sum() * dt_h),
            "activated_up_kwh": float(self.accepted_up_kw.sum() * dt_h),
            "activated_down_kwh": float(self.accepted_down_kw.sum() * dt_h),
            "mean_up_capacity_kw": float(self.up_kw.sum(1).mean()),
            "mean_down_capacity_kw": float(self.down_kw.sum(1).mean()),
        }


def ev_flexibility_kw(scenario) -> tuple[np.ndarray, np.ndarray]:
    """(T,) up and down kW of the EV fleet over the window against the uncontrolled baseline."""
    ev = scenario.fleet.ev
    s = ev.sessions
    steps = np.arange(scenario.start_step, scenario.end_step)
    dt = scenario.dt_h
    if len(s) == 0:
        return np.zeros(len(steps)), np.zeros(len(steps))
    p_max = ev.max_power_kw[s.charger][None, :]
    eff = ev.efficiency[s.charger][None, :]
    t = steps[:, None]
    plugged = (s.arrival_step[None, :] <= t) & (t < s.departure_step[None, :])
    per_step = p_max * eff * dt
    charged = np.minimum(s.energy_need_kwh[None, :], per_step * (t - s.arrival_step[None, :]))
    remaining = np.maximum(s.energy_need_kwh[None, :] - charged, 0)
    base_kw = np.minimum(p_max, remaining / (eff * dt)) * plugged
    steps_after = np.maximum(s.departure_step[None, :] - t - 1, 0)
    can_pause = remaining <= per_step * steps_after + 1e-9
    up = base_kw * can_pause
    v2g = ev.v2g[s.charger][None, :] & plugged
    v2g_ok = remaining + p_max * dt / eff <= per_step * (steps_after - 1) + 1e-9
    up = up + p_max * (
        v2g & v2g_ok & can_pause & (np.minimum(s.v2g_floor_kwh, 1e9)[None, :] >= p_max * dt)
    )
    room = s.headroom_kwh[None, :] - charged - base_kw * eff * dt
    down = np.clip(np.minimum(p_max - base_kw, room / (eff * dt)), 0, None) * plugged
    return up.sum(1), down.sum(1)


def thermal_band_kw(scenario) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per step and building (T, n): holding power at mid-band and the lowest/highest power
    that keeps the building inside its comfort band after one step (exact RC step)."""
    th = scenario.fleet.thermal
    steps = np.arange(scenario.start_step, scenario.end_step)
    dt = scenario.dt_h
    r, c, cop = th.resistance_c_per_kw, th.capacitance_kwh_per_c, th.cop
    mode = scenario.hvac_mode[steps][:, None]
    t_out = scenario.outdoor_temp_c[steps][:, None]
    t_set = 0.5 * (th.comfort_min_c + th.comfort_max_c)
    a = np.exp(-dt / (r * c))

    def power_for(target):  # electric power that lands on ``target`` after dt from t_set
        return mode * (((target - a * t_set) / (1 - a) - t_out) / r) / cop

    base = np.clip(power_for(t_set), 0, th.max_power_kw)
    p_a, p_b = power_for(th.comfort_min_c), power_for(th.comfort_max_c)
    lo = np.clip(np.minimum(p_a, p_b), 0, th.max_power_kw)
    hi = np.clip(np.maximum(p_a, p_b), 0, th.max_power_kw)
    return base, lo, hi


def thermal_flexibility_kw(scenario) -> tuple[np.ndarray, np.ndarray]:
    """(T,) up and down kW of the heat pumps holding mid-band."""
    if len(scenario.fleet.thermal) == 0:
        n = scenario.end_step - scenario.start_step
        return np.zeros(n), np.zeros(n)
    base, lo, hi = thermal_band_kw(scenario)
    return (base - lo).sum(1), (hi - base).sum(1)


def battery_flexibility_kw(battery, energy_kwh: np.ndarray, dt_h: float):
    """Per battery: (discharge, charge) kW it can hold for one interval of ``dt_h`` hours from
    ``energy_kwh`` stored, within its power rating and state-of-charge window."""
    b = battery
    dis_kw = np.maximum(
        np.minimum(b.power_kw, (energy_kwh - b.energy_min_kwh) * b.efficiency_discharge / dt_h), 0
    )
    ch_kw = np.maximum(
        np.minimum(b.power_kw, (b.energy_max_kwh - energy_kwh) / b.efficiency_charge / dt_h), 0
    )
    return dis_kw, ch_kw


def class_costs_eur_per_kwh(scenario, cfg: VppConfig) -> tuple[np.ndarray, np.ndarray]:
    """Per class (battery, EV, heat pump): the cost of delivering a kWh up and the value of
    taking a kWh down (EUR/kWh). Batteries: degradation plus refilling at the window's
    cheapest import price through the round trip; EVs and heat pumps: the configured
    inconvenience costs."""
    steps = np.arange(scenario.start_step, scenario.end_step)
    refill_eur = float(scenario.tariff.import_eur_per_kwh[steps].min())
    b = scenario.fleet.battery
    has = b.capacity_kwh > 0
    rt = b.efficiency_charge * b.efficiency_discharge
    degr = float(np.mean(b.degradation_eur_per_kwh)) if has.any() else 0.0
    mean_rt = float(np.mean(rt)) if has.any() else 1.0
    up_cost = np.array(
        [degr + refill_eur / mean_rt, cfg.ev_up_cost_eur_per_kwh, cfg.thermal_cost_eur_per_kwh]
    )
    down_value = refill_eur - np.array(
        [degr, cfg.ev_down_cost_eur_per_kwh, cfg.thermal_cost_eur_per_kwh]
    )
    return up_cost, down_value


def run_vpp(
    scenario, prices: BalancingPrices | None = None, cfg: VppConfig | None = None
) -> VppResult:
    """Bid the fleet's flexibility every interval and settle against ``prices``."""
    cfg = cfg or VppConfig()
    prices = prices or synthetic_balancing_prices(scenario, cfg.seed)
    steps = np.arange(scenario.start_step, scenario.end_step)
    n_t, dt = len(steps), scenario.dt_h
    if len(prices.direction) != n_t or len(prices.price_eur_per_kwh) != n_t:
        msg = f"balancing prices: {len(prices.direction)} intervals given, the window has {n_t}"
        raise ValueError(msg)
    b = scenario.fleet.battery
    energy = b.capacity_kwh * b.soc_initial_frac
    up = np.zeros((n_t, 3))
    down = np.zeros((n_t, 3))
    up[:, 1], down[:, 1] = ev_flexibility_kw(scenario)
    up[:, 2], down[:, 2] = thermal_flexibility_kw(scenario)
    up_cost, down_value = class_costs_eur_per_kwh(scenario, cfg)
    ask_up = up_cost * (1 + cfg.margin)
    bid_down = np.maximum(down_value, 0) / (1 + cfg.margin)
    acc_up = np.zeros((n_t, 3))
    acc_down = np.zeros((n_t, 3))
    locked_until = np.zeros(3, dtype=int)
    for t in range(n_t):
        free = t >= locked_until
        up[t, 1:] *= free[1:]
        down[t, 1:] *= free[1:]
        dis_kw, ch_kw = battery_flexibility_kw(b, energy, dt)
        up[t, 0], down[t, 0] = dis_kw.sum(), ch_kw.sum()
        d, p = prices.direction[t], prices.price_eur_per_kwh[t]
        if d > 0:
            acc_up[t] = np.where((p >= ask_up) & (up[t] >= cfg.min_bid_kw), up[t], 0.0)
        elif d < 0:
            acc_down[t] = np.where((p <= bid_down) & (down[t] >= cfg.min_bid_kw), down[t], 0.0)
        active = (acc_up[t] > 0) | (acc_down[t] > 0)
        active[0] = False
        locked_until[active] = t + 1 + cfg.recovery_steps
        if acc_up[t, 0] > 0:
            energy -= dis_kw * dt / b.efficiency_discharge
        if acc_down[t, 0] > 0:
            energy += ch_kw * dt * b.efficiency_charge
    price = prices.price_eur_per_kwh[:, None]
    revenue = (acc_up - acc_down) * dt * price
    value = acc_up * dt * (price - up_cost) + acc_down * dt * (down_value - price)
    offered = (up >= cfg.min_bid_kw).sum() + (down >= cfg.min_bid_kw).sum()
    accepted = (acc_up > 0).sum() + (acc_down > 0).sum()
    up_price = np.broadcast_to(ask_up, up.shape).copy()
    down_price = np.broadcast_to(bid_down, down.shape).copy()
    return VppResult(
        up_kw=up,
        down_kw=down,
        up_price_eur_per_kwh=up_price,
        down_price_eur_per_kwh=down_price,
        accepted_up_kw=acc_up,
        accepted_down_kw=acc_down,
        revenue_eur=revenue,
        value_eur=value,
        n_bids=int(offered),
        n_accepted=int(accepted),
    )
