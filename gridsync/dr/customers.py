"""Customers as arrays: metered load, the devices behind each meter, day-type load shapes and
segments.

A customer is one load connection of the feeder (``Feeder.load_bus_pos``); its metered base
load is its SimBench profile times its nominal power (exactly what ``Scenario.base_load_kw``
sums per bus). Fleet assets sit on buses, so each asset is assigned to one of the customers on
its bus (seeded draw when a bus has several).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.cluster.vq import kmeans2

from gridsync.data.profiles import profiles_on_index, read_load_profiles
from gridsync.dr.config import END_USES, DRConfig
from gridsync.model.network import resolve_data_path

N_END_USES = len(END_USES)
EU = {name: i for i, name in enumerate(END_USES)}


@dataclass
class CustomerBook:
    """Per-customer data the DR agent works from; ``n`` customers, ``T`` steps of the index.

    ``base_kw`` is the metered inflexible load (T, n). ``*_customer`` map each asset of the
    fleet to its customer. ``device_kw`` is each customer's rated power per end use (n, 5),
    in the order of ``END_USES``. ``shape_kw`` is the mean hourly load by day type
    (n, 2, 24; 0 = weekday, 1 = weekend) over the history before the simulated window.
    """

    bus: np.ndarray
    profile: np.ndarray
    base_kw: np.ndarray
    ev_customer: np.ndarray
    thermal_customer: np.ndarray
    deferrable_customer: np.ndarray
    water_heater: np.ndarray
    battery_customer: np.ndarray
    device_kw: np.ndarray
    shape_kw: np.ndarray
    segment: np.ndarray
    segment_centres: np.ndarray

    @property
    def n(self) -> int:
        return len(self.bus)

    def has_end_use(self, end_uses: list[str]) -> np.ndarray:
        """Customers owning at least one device of the given end uses."""
        cols = [EU[e] for e in end_uses]
        return self.device_kw[:, cols].sum(axis=1) > 0


def customer_base_loads(scenario) -> np.ndarray:
    """Metered base load per customer (T, n_load) from the scenario's own profile file."""
    cfg = scenario.config
    feeder = scenario.feeder
    raw = read_load_profiles(resolve_data_path(cfg.loads.profiles, None))
    prof = profiles_on_index(raw, scenario.index)
    cols = [f"{p}_pload" for p in feeder.load_profile]
    return prof[cols].to_numpy() * feeder.load_p_kw * cfg.loads.scale


def assign_to_customers(
    asset_bus: np.ndarray, customer_bus: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Customer index for each asset: uniformly among the customers connected at its bus."""
    order = np.argsort(customer_bus, kind="stable")
    sorted_bus = customer_bus[order]
    first = np.searchsorted(sorted_bus, asset_bus, side="left")
    count = np.searchsorted(sorted_bus, asset_bus, side="right") - first
    if np.any(count == 0):
        bad = asset_bus[count == 0][0]
        msg = f"an asset sits on bus position {bad}, which has no customer load"
        raise ValueError(msg)
    pick = np.floor(rng.random(len(asset_bus)) * count).astype(int)
    return order[first + pick]


def day_type_shapes(
    base_kw: np.ndarray, index, start: int, end: int, steps_per_day: int
) -> np.ndarray:
    """Mean hourly load (n, 2, 24) over whole days in ``[start, end)``: weekday, weekend."""
    start = start + (-start) % steps_per_day
    n_days = (end - start) // steps_per_day
    n = base_kw.shape[1]
    out = np.zeros((n, 2, 24))
    if n_days <= 0:
        return out
    sl = slice(start, start + n_days * steps_per_day)
    per_h = steps_per_day // 24
    hourly = base_kw[sl].reshape(n_days, 24, per_h, n).mean(axis=2)
    weekend = np.asarray(index[sl][::steps_per_day].dayofweek >= 5)
    for kind, mask in ((0, ~weekend), (1, weekend)):
        if mask.any():
            out[:, kind, :] = hourly[mask].mean(axis=0).T
    return out


def segment_customers(
    shape_kw: np.ndarray, device_kw: np.ndarray, k: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """k-means on the normalised weekday shape plus each customer's end-use mix.

    Shapes are divided by their mean (so a big and a small household with the same habits
    cluster together); the flexible share adds how much of the peak is controllable.
    """
    weekday = shape_kw[:, 0, :]
    shape = weekday / np.maximum(weekday.mean(axis=1, keepdims=True), 1e-9)
    flex_share = device_kw / np.maximum(
        device_kw.sum(axis=1, keepdims=True) + weekday.max(1)[:, None], 1e-9
    )
    features = np.c_[shape, 3.0 * flex_share]
    k = max(1, min(k, len(features)))
    centres, labels = kmeans2(features, k, seed=seed, minit="++")
    return labels.astype(int), centres


def build_customer_book(scenario, cfg: DRConfig) -> CustomerBook:
    """Index the scenario's customers, their devices and history for the DR agent."""
    feeder, fleet = scenario.feeder, scenario.fleet
    rng = np.random.default_rng(cfg.seed)
    cust_bus = np.asarray(feeder.load_bus_pos)
    base = customer_base_loads(scenario)
    ev_c = assign_to_customers(fleet.ev.bus, cust_bus, rng)
    th_c = assign_to_customers(fleet.thermal.bus, cust_bus, rng)
    df_c = assign_to_customers(fleet.deferrable.bus, cust_bus, rng)
    bat_c = assign_to_customers(fleet.battery.bus, cust_bus, rng)
    water = rng.random(len(fleet.deferrable)) < cfg.customers.water_heater_share
    n = len(cust_bus)
    dev = np.zeros((n, N_END_USES))
    np.add.at(dev[:, EU["ev"]], ev_c, fleet.ev.max_power_kw)
    np.add.at(dev[:, EU["hvac"]], th_c, fleet.thermal.max_power_kw)
    np.add.at(dev[:, EU["deferrable"]], df_c[~water], fleet.deferrable.power_kw[~water])
    np.add.at(dev[:, EU["water_heater"]], df_c[water], fleet.deferrable.power_kw[water])
    np.add.at(dev[:, EU["battery"]], bat_c, fleet.battery.power_kw)
    spd = scenario.steps_per_day
    shape = day_type_shapes(base, scenario.index, 0, scenario.start_step, spd)
    seg, centres = segment_customers(shape, dev, cfg.customers.n_segments, cfg.seed)
    return CustomerBook(
        bus=cust_bus,
        profile=np.asarray(feeder.load_profile),
        base_kw=base,
        ev_customer=ev_c,
        thermal_customer=th_c,
        deferrable_customer=df_c,
        water_heater=water,
        battery_customer=bat_c,
        device_kw=dev,
        shape_kw=shape,
        segment=seg,
        segment_centres=centres,
    )
