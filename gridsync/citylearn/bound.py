"""References that see the future: the perfect-foresight bound and the MPC with perfect forecasts.

``PerfectForesightBound`` is one LP over the whole episode with the realised data.

It knows every future load, PV, price and carbon value (so it is a reference, not a
controller one could run), plans all batteries jointly with ``BuildingsPlanner`` over the
whole episode (no terminal value: the episode ends) and plays the plan's requests through
the exact CityLearn battery. The LP carries the efficiency curve's hull, a relaxation, so
its own optimum (``lp_score_2022``, the score of the LP's net consumption) is a lower bound
on the 2022 score of any controller; the played plan scores a little worse because the
real battery is less efficient at low power than the hull says. With ``peak_cap=True`` the district import is held (softly,
at 10x the highest price per kWh above it) at the no-battery peak of the episode.

``OracleMPC`` is ``CityLearnMPC`` unchanged except that its load, PV and carbon forecasts are
the realised rows (and so carry no spread). It splits the MPC's distance to the bound in two:
oracle MPC vs bound is what planning 24 h at a time costs (horizon, terminal value, carbon
weight observed so far, the efficiency hull), MPC vs oracle MPC is what forecast errors cost.
"""

from __future__ import annotations

import numpy as np

from gridsync.citylearn.dataset import CityLearnDataset
from gridsync.citylearn.kpis import kpis
from gridsync.citylearn.mpc import CityLearnMPC
from gridsync.citylearn.simulate import Observation, Site
from gridsync.dispatch.buildings import BuildingsPlanner, buildings_horizon


class PerfectForesightBound:
    """Plays the whole-episode LP optimum hour by hour."""

    def __init__(self, dataset: CityLearnDataset, peak_cap: bool = False) -> None:
        self.name = "bound-peak-cap" if peak_cap else "bound"
        self._dataset = dataset
        self._peak_cap = peak_cap
        self.extra_kpis: dict = {}

    def reset(self, site: Site) -> None:
        ds = self._dataset
        has = np.array([b.battery is not None for b in ds.buildings])
        self._has = has
        self._plan = np.zeros((len(has), ds.hours))
        if not has.any():
            return
        net, price = ds.stack("base_net_kwh"), ds.stack("price_per_kwh")
        carbon = ds.stack("carbon_kg_per_kwh")
        bill0 = float(np.clip((net * price).sum(axis=0), 0, None).sum())
        co2_0 = float(np.clip(net * carbon, 0, None).sum())
        cap = float(net.sum(axis=0).max()) if self._peak_cap else np.inf
        params = [b.battery for b in ds.buildings if b.battery is not None]
        planner = BuildingsPlanner(
            params, ds.hours,
            carbon_price_per_kg=bill0 / co2_0 if co2_0 > 0 else 0.0,
            peak_penalty_per_kwh=10.0 * float(price.max()),
            time_limit_s=3600.0,
            options={"solver": "ipm", "presolve": "on"},
        )
        others = ~has
        horizon = buildings_horizon(
            net[has], price[has], carbon_g_per_kwh=carbon[has] * 1000.0,
            soc_kwh=[p.initial_soc_kwh for p in params],
            other_net_kwh=net[others].sum(axis=0),
            other_price_per_kwh=price[others].mean(axis=0) if others.any() else None,
            peak_cap_kw=cap,
        )
        schedule = planner.plan(horizon)
        self._plan[has] = schedule.battery_kwh
        lp_net = net.copy()
        lp_net[has] = schedule.net_kwh
        relaxed = kpis(lp_net, net, price, carbon, ds.names)
        self.extra_kpis = {
            "lp_objective": schedule.objective,
            "lp_score_2022": relaxed["score_2022"],
            "lp_peak_import_kw": relaxed["peak_import_kw"],
        }

    def act(self, obs: Observation) -> np.ndarray:
        return self._plan[:, obs.t]


class RealisedRows:
    """A forecaster that returns the realised rows after the history it is given."""

    def __init__(self, series: np.ndarray, horizon: int) -> None:
        # past the end, repeat the last row (the MPC's horizon runs beyond the episode)
        self._series = np.pad(series, ((0, 0), (0, horizon)), mode="edge")
        self.horizon = horizon

    def forecast(self, history: np.ndarray) -> np.ndarray:
        n = np.atleast_2d(history).shape[1]
        return self._series[:, n : n + self.horizon].copy()


class OracleMPC(CityLearnMPC):
    """``CityLearnMPC`` with perfect load, PV and carbon forecasts (a reference, see above)."""

    name = "mpc-oracle"

    def __init__(self, dataset: CityLearnDataset) -> None:
        super().__init__(spread_factor=0.0)
        self._dataset = dataset

    def reset(self, site: Site) -> None:
        super().reset(site)
        ds, lead = self._dataset, self.horizon - 1
        self._load_fc = RealisedRows(ds.stack("non_shiftable_load_kwh"), lead)
        self._solar_fc = RealisedRows(ds.stack("solar_generation_kwh"), lead)
        self._carbon_fc = RealisedRows(ds.stack("carbon_kg_per_kwh"), lead)
