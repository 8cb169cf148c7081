"""Step a CityLearn dataset hour by hour with a controller and the CityLearn 1.3 battery.

Timing: the controller acts at hour ``t`` knowing exactly what CityLearn observes at ``t``
(this hour's load and PV, every row up to ``t`` of the pricing, carbon and weather files,
including their predicted columns, and the batteries' SoC and capacity); its request
(kWh at the meter, + charge) goes to ``Battery.charge`` and the battery's meter energy
adds to hour ``t``'s net consumption. Rows after ``t`` are never handed to the controller:
``Observation`` holds read-only slices ending at ``t``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from gridsync.citylearn.dataset import CityLearnDataset
from gridsync.citylearn.kpis import kpis
from gridsync.model.citylearn_battery import CityLearnBattery, CityLearnBatteryParams


def _upto(array: np.ndarray, t: int) -> np.ndarray:
    view = array[:, : t + 1]
    view.flags.writeable = False
    return view


@dataclass(frozen=True)
class Observation:
    """What every building's CityLearn observation holds at hour ``t`` (arrays end at ``t``)."""

    t: int
    load_kwh: np.ndarray  # (B, t+1)
    solar_kwh: np.ndarray  # (B, t+1)
    price_per_kwh: np.ndarray  # (B, t+1)
    price_predicted_per_kwh: np.ndarray  # (B, t+1, 3): issued at each row for +6, +12, +24 h
    carbon_kg_per_kwh: np.ndarray  # (B, t+1)
    weather: np.ndarray  # (B, t+1, 16)
    hour_of_day: np.ndarray  # (B, t+1)
    soc_kwh: np.ndarray  # (B,) SoC at the start of hour t (0 without a battery)
    capacity_kwh: np.ndarray  # (B,) current (faded) capacity (0 without a battery)

    @property
    def net_kwh(self) -> np.ndarray:
        return self.load_kwh - self.solar_kwh


@dataclass(frozen=True)
class Site:
    """Static facts a controller may know before the first hour: names, batteries, length."""

    names: list[str]
    batteries: list[CityLearnBatteryParams | None]
    hours: int


class Controller(Protocol):
    name: str

    def reset(self, site: Site) -> None: ...

    def act(self, obs: Observation) -> np.ndarray:
        """Battery requests (B,) in kWh at the meter, + charge; 0 for buildings without one."""
        ...


@dataclass
class RunResult:
    controller: str
    names: list[str]
    request_kwh: np.ndarray  # (B, T) what went to Battery.charge
    battery_kwh: np.ndarray  # (B, T) meter energy the battery drew (+) or delivered (-)
    soc_kwh: np.ndarray  # (B, T) SoC at the end of each hour
    net_kwh: np.ndarray  # (B, T)
    base_net_kwh: np.ndarray  # (B, T) without battery
    kpis: dict
    runtime_s: float


def site_of(dataset: CityLearnDataset) -> Site:
    return Site(dataset.names, [b.battery for b in dataset.buildings], dataset.hours)


def run(dataset: CityLearnDataset, controller: Controller) -> RunResult:
    """Play ``controller`` over the whole dataset; KPIs are normalised by no battery."""
    t0 = time.perf_counter()
    load, solar = dataset.stack("non_shiftable_load_kwh"), dataset.stack("solar_generation_kwh")
    price, carbon = dataset.stack("price_per_kwh"), dataset.stack("carbon_kg_per_kwh")
    predicted, weather = dataset.stack("price_predicted_per_kwh"), dataset.stack("weather")
    hour_of_day = dataset.stack("hour_of_day")
    base = load - solar
    n_b, n_t = base.shape
    batteries = [None if b.battery is None else CityLearnBattery(b.battery) for b in dataset.buildings]
    has = [i for i, b in enumerate(batteries) if b is not None]
    request, drawn = np.zeros((n_b, n_t)), np.zeros((n_b, n_t))
    soc = np.zeros((n_b, n_t))
    controller.reset(site_of(dataset))
    for t in range(n_t):
        soc_now = np.array([b.soc_kwh if b else 0.0 for b in batteries])
        cap_now = np.array([b.capacity_kwh if b else 0.0 for b in batteries])
        obs = Observation(
            t, _upto(load, t), _upto(solar, t), _upto(price, t), _upto(predicted, t),
            _upto(carbon, t), _upto(weather, t), _upto(hour_of_day, t), soc_now, cap_now,
        )
        req = np.asarray(controller.act(obs), dtype=float)
        for i in has:
            request[i, t] = req[i]
            drawn[i, t] = batteries[i].charge(float(req[i]))
            soc[i, t] = batteries[i].soc_kwh
    net = base + drawn
    return RunResult(
        controller=controller.name,
        names=dataset.names,
        request_kwh=request,
        battery_kwh=drawn,
        soc_kwh=soc,
        net_kwh=net,
        base_net_kwh=base,
        kpis={**kpis(net, base, price, carbon, dataset.names), **getattr(controller, "extra_kpis", {})},
        runtime_s=time.perf_counter() - t0,
    )


class NoBattery:
    """Batteries stay idle: the baseline every KPI is normalised by."""

    name = "no-battery"

    def reset(self, site: Site) -> None:
        self._n = len(site.names)

    def act(self, obs: Observation) -> np.ndarray:
        return np.zeros(self._n)


class SelfConsumptionRule:
    """Greedy self-consumption: each battery asks for this hour's PV surplus, or its deficit.

    The request is ``-(load - PV)`` of the current hour; CityLearn's power and SoC limits
    clip it, so the battery soaks up surplus and covers the deficit while it can.
    """

    name = "rule"

    def reset(self, site: Site) -> None:
        self._has = np.array([b is not None for b in site.batteries])

    def act(self, obs: Observation) -> np.ndarray:
        return np.where(self._has, -obs.net_kwh[:, -1], 0.0)
