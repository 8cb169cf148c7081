"""Build a ``Scenario`` from a validated config: data, weather, PV and a seeded asset fleet."""

from __future__ import annotations

import logging
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

from gridsync.data.profiles import profiles_on_index, read_load_profiles
from gridsync.data.weather import pv_output_per_kwp, read_weather
from gridsync.grid.sources import load_network
from gridsync.model.assets import (
    BatteryFleet,
    DeferrableFleet,
    EVFleet,
    EVSessions,
    Fleet,
    PVFleet,
    ThermalFleet,
)
from gridsync.model.network import Feeder, fleet_sgen_mask, resolve_data_path
from gridsync.model.physics import hvac_mode
from gridsync.model.scenario_config import (
    FleetConfig,
    Range,
    ScenarioConfig,
    ScenarioError,
    load_scenario_config,
)
from gridsync.model.tariff import build_tariff, carbon_intensity
from gridsync.sim.plant import build_plant
from gridsync.sim.scenario import Scenario

log = logging.getLogger(__name__)

PV_TILTS_DEG = np.array([15.0, 30.0, 45.0])
PV_AZIMUTHS_DEG = np.array([90.0, 135.0, 180.0, 225.0, 270.0])
PV_AZIMUTH_WEIGHTS = np.array([0.1, 0.25, 0.3, 0.25, 0.1])


def default_scenario_path() -> Path:
    return Path(str(resources.files("gridsync") / "data" / "scenarios" / "default.toml"))


def bundled_scenarios() -> dict[str, Path]:
    """Name -> file of every scenario shipped in ``gridsync/data/scenarios``."""
    return {p.stem: p for p in sorted(default_scenario_path().parent.glob("*.toml"))}


def resolve_scenario_path(ref: str | Path | None) -> Path:
    """A scenario file from a path or a bundled scenario's name (``winter-electrified``).

    An existing file wins over a bundled name; None means the bundled default.
    """
    if ref is None or str(ref) == "":
        return default_scenario_path()
    path = Path(ref)
    if path.exists() or path.suffix:
        return path
    bundled = bundled_scenarios()
    if str(ref) in bundled:
        return bundled[str(ref)]
    msg = (
        f"scenario {str(ref)!r} is neither a file nor a bundled scenario; "
        f"bundled: {', '.join(bundled)}"
    )
    raise ScenarioError(msg)


def load_scenario(path: str | Path | None = None, **overrides) -> Scenario:
    """Read, validate and build a scenario file or bundled scenario name (the default when
    ``path`` is None).

    ``overrides`` replace fields of the ``time`` section (e.g. ``days=1``, ``start=date``);
    ``phases=3`` runs the twin's feeder three-phase (``[grid] phases``).
    """
    path = resolve_scenario_path(path)
    cfg = load_scenario_config(path)
    phases = overrides.pop("phases", None)
    if phases is not None:
        cfg = cfg.model_copy(update={"grid": cfg.grid.model_copy(update={"phases": int(phases)})})
    if overrides:
        cfg = cfg.model_copy(update={"time": cfg.time.model_copy(update=overrides)})
    return build_scenario(cfg, base_dir=path.parent)


def _uniform(rng: np.random.Generator, r: Range, n: int) -> np.ndarray:
    return rng.uniform(r.min, r.max, n)


def _time_index(cfg: ScenarioConfig) -> tuple[pd.DatetimeIndex, int, int]:
    t = cfg.time
    freq = pd.Timedelta(seconds=t.resolution_s)
    start = pd.Timestamp(t.start)
    first = start - pd.Timedelta(days=t.history_days)
    end = start + pd.Timedelta(days=t.days) + pd.Timedelta(hours=t.horizon_h)
    index = pd.date_range(first, end, freq=freq, inclusive="left")
    start_step = int(index.get_loc(start))
    n_steps = int(pd.Timedelta(days=t.days) / freq)
    return index, start_step, n_steps


def _check_window(cfg: ScenarioConfig, profile_index: pd.DatetimeIndex) -> None:
    """Raise a ``ScenarioError`` naming ``time.start``/``time.history_days`` and the first start
    date that works when the history before the window begins before the load profiles (past
    their end the profile year repeats, see ``profiles_on_index``)."""
    t = cfg.time
    first = profile_index[0]
    history = pd.Timedelta(days=t.history_days)
    if pd.Timestamp(t.start) - history < first:
        first_ok = (first + history).ceil("D")
        msg = (
            f"time.start = {t.start}: the window needs time.history_days = {t.history_days} days "
            f"of history before it, but the load profiles begin {first:%Y-%m-%d %H:%M}; the "
            f"first start that works is {first_ok:%Y-%m-%d} (or lower time.history_days)"
        )
        raise ScenarioError(msg)


def _base_loads(
    feeder: Feeder, profiles: pd.DataFrame, scale: float, default_profile: str = "H0-A"
) -> tuple[np.ndarray, np.ndarray]:
    """Inflexible load per bus (kW, kvar): each load's nominal power (with its ``scaling``)
    times its profile; loads with no profile name (e.g. ``pandapower.networks`` cases) follow
    ``default_profile``."""
    unnamed = np.isin(np.asarray(feeder.load_profile, dtype=str), ["", "nan", "None"])
    names = np.where(unnamed, default_profile, np.asarray(feeder.load_profile, dtype=str))
    missing = sorted({f"{p}_pload" for p in names} - set(profiles.columns))
    if missing:
        msg = f"load profile columns {missing} used by the network's loads are not in the profile file"
        raise ScenarioError(msg)
    n_load = len(feeder.load_bus_pos)
    incidence = np.zeros((n_load, feeder.n_bus))
    incidence[np.arange(n_load), feeder.load_bus_pos] = 1.0
    p_cols = [f"{p}_pload" for p in names]
    q_cols = [f"{p}_qload" for p in names]
    p = profiles[p_cols].to_numpy() * feeder.load_p_kw * scale
    q = profiles[q_cols].to_numpy() * feeder.load_q_kvar * scale
    return p @ incidence, q @ incidence


def _feeder_pv_sgens(feeder: Feeder) -> pd.DataFrame:
    """The network's own PV sgens on energised buses (the first systems of the PV fleet)."""
    sg = feeder.net.sgen
    return sg[fleet_sgen_mask(feeder.net) & sg.bus.isin(feeder.bus_ids).to_numpy()]


def _scaled(df: pd.DataFrame, col: str) -> np.ndarray:
    scaling = df["scaling"].to_numpy(dtype=float) if "scaling" in df else 1.0
    return df[col].to_numpy(dtype=float) * scaling


def _pv_sgen_kvar(
    feeder: Feeder, fleet: Fleet, per_kwp: np.ndarray, orient: np.ndarray
) -> np.ndarray:
    """Reactive consumption per step and bus of the network's own PV sgens: their ``q_mvar``
    at a constant power factor, following their available power (negative = injection)."""
    existing = _feeder_pv_sgens(feeder)
    out = np.zeros((per_kwp.shape[0], feeder.n_bus))
    p_nom, q_nom = _scaled(existing, "p_mw"), _scaled(existing, "q_mvar")
    has_q = np.flatnonzero((q_nom != 0) & (p_nom > 0))
    if len(has_q):
        pv = fleet.pv
        avail_kw = per_kwp[:, orient[has_q]] * pv.peak_kw[has_q]
        np.add.at(out.T, pv.bus[has_q], (-avail_kw * (q_nom / p_nom)[has_q]).T)
    return out


def _pv_fleet(rng, cfg, feeder: Feeder) -> PVFleet:
    n = cfg.pv.count
    customers = rng.integers(0, len(feeder.load_bus_pos), n)
    existing = _feeder_pv_sgens(feeder)
    bus = np.r_[feeder.bus_pos(existing.bus.to_numpy()), feeder.load_bus_pos[customers]]
    peak = np.r_[_scaled(existing, "p_mw") * 1e3, _uniform(rng, cfg.pv.peak_kw, n)]
    tilt = np.r_[np.full(len(existing), 30.0), rng.choice(PV_TILTS_DEG, n)]
    azim = np.r_[
        np.full(len(existing), 180.0), rng.choice(PV_AZIMUTHS_DEG, n, p=PV_AZIMUTH_WEIGHTS)
    ]
    return PVFleet(bus=bus.astype(int), peak_kw=peak, tilt_deg=tilt, azimuth_deg=azim)


def _battery_fleet(rng, cfg, feeder: Feeder) -> BatteryFleet:
    b = cfg.battery
    n = b.count
    cap = _uniform(rng, b.capacity_kwh, n)
    full = np.ones(n)
    return BatteryFleet(
        bus=feeder.load_bus_pos[rng.integers(0, len(feeder.load_bus_pos), n)],
        capacity_kwh=cap,
        power_kw=cap * b.c_rate_per_h,
        efficiency_charge=full * b.efficiency_charge,
        efficiency_discharge=full * b.efficiency_discharge,
        soc_min_frac=full * b.soc_min_frac,
        soc_max_frac=full * b.soc_max_frac,
        soc_initial_frac=full * b.soc_initial_frac,
        degradation_eur_per_kwh=full * b.degradation_cost_eur_per_kwh,
    )


def _ev_fleet(
    rng, cfg, feeder: Feeder, index: pd.DatetimeIndex, start_step: int, dt_h: float
) -> EVFleet:
    e = cfg.ev
    n = e.count
    power = rng.choice(np.asarray(e.charger_kw, dtype=float), n)
    v2g = rng.random(n) < e.v2g_share
    n_days = int(np.ceil((len(index) - start_step) * dt_h / 24))
    plug = rng.random((n, n_days)) < e.daily_plug_probability
    arrival_h = np.clip(
        rng.normal(e.arrival_hour_mean, e.arrival_hour_std, (n, n_days)), 12.0, 23.5
    )
    dwell_h = np.clip(rng.normal(e.dwell_h_mean, 2.0, (n, n_days)), 3.0, 16.0)
    # Next day's arrival is never before 12:00, so capping departures at 12:00 avoids overlap.
    depart_h = np.minimum(arrival_h + dwell_h, 24.0 + 12.0)
    soc_arrival = rng.uniform(0.2, 0.6, (n, n_days))
    headroom = e.battery_kwh * (0.95 - soc_arrival)
    reachable = e.efficiency * power[:, None] * (depart_h - arrival_h) * 0.9
    need = np.minimum(
        rng.gamma(4.0, e.energy_need_kwh_mean / 4.0, (n, n_days)), np.minimum(headroom, reachable)
    )
    floor = np.where(v2g[:, None], e.battery_kwh * np.maximum(soc_arrival - 0.2, 0.0), 0.0)
    day0 = np.arange(n_days)[None, :] * 24.0
    charger, day = np.nonzero(plug)
    steps_per_h = 1.0 / dt_h
    arr = start_step + np.round((day0 + arrival_h)[charger, day] * steps_per_h).astype(int)
    dep = start_step + np.round((day0 + depart_h)[charger, day] * steps_per_h).astype(int)
    keep = (arr < len(index)) & (dep > arr)
    sessions = EVSessions(
        charger=charger[keep],
        arrival_step=arr[keep],
        departure_step=dep[keep],
        energy_need_kwh=need[charger, day][keep],
        headroom_kwh=headroom[charger, day][keep],
        v2g_floor_kwh=floor[charger, day][keep],
    )
    return EVFleet(
        bus=feeder.load_bus_pos[rng.integers(0, len(feeder.load_bus_pos), n)],
        max_power_kw=power,
        efficiency=np.full(n, e.efficiency),
        v2g=v2g,
        sessions=sessions,
        v2g_degradation_eur_per_kwh=np.full(n, e.v2g_degradation_cost_eur_per_kwh),
    )


def _deferrable_fleet(rng, cfg, feeder: Feeder) -> DeferrableFleet:
    d = cfg.deferrable
    n = d.count
    power = _uniform(rng, d.power_kw, n)
    start = _uniform(rng, d.window_start_h, n)
    end = np.minimum(start + _uniform(rng, d.window_length_h, n), 24.0)
    run_h = np.minimum(_uniform(rng, d.run_h, n), end - start)
    return DeferrableFleet(
        bus=feeder.load_bus_pos[rng.integers(0, len(feeder.load_bus_pos), n)],
        power_kw=power,
        energy_kwh=power * run_h,
        window_start_h=start,
        window_end_h=end,
    )


def _thermal_fleet(rng, cfg, feeder: Feeder) -> ThermalFleet:
    t = cfg.thermal
    n = t.count
    offset = rng.uniform(-0.5, 0.5, n)
    lo, hi = t.comfort_min_c + offset, t.comfort_max_c + offset
    return ThermalFleet(
        bus=feeder.load_bus_pos[rng.integers(0, len(feeder.load_bus_pos), n)],
        max_power_kw=_uniform(rng, t.max_power_kw, n),
        cop=np.full(n, t.cop),
        resistance_c_per_kw=_uniform(rng, t.resistance_c_per_kw, n),
        capacitance_kwh_per_c=_uniform(rng, t.capacitance_kwh_per_c, n),
        comfort_min_c=lo,
        comfort_max_c=hi,
        initial_temp_c=rng.uniform(lo + 0.5, hi - 0.5),
    )


def build_fleet(
    cfg: FleetConfig,
    seed: int,
    feeder: Feeder,
    index: pd.DatetimeIndex,
    start_step: int,
    dt_h: float,
) -> Fleet:
    """Draw the asset fleet deterministically from ``seed`` onto the feeder's customer buses."""
    rng = np.random.default_rng(seed)
    if len(feeder.load_bus_pos) == 0:
        msg = "the network has no loads: assets are placed at customer load points"
        raise ScenarioError(msg)
    return Fleet(
        pv=_pv_fleet(rng, cfg, feeder),
        battery=_battery_fleet(rng, cfg, feeder),
        ev=_ev_fleet(rng, cfg, feeder, index, start_step, dt_h),
        deferrable=_deferrable_fleet(rng, cfg, feeder),
        thermal=_thermal_fleet(rng, cfg, feeder),
    )


def build_scenario(cfg: ScenarioConfig, base_dir: Path | None = None) -> Scenario:
    """Materialise every series and the fleet for ``cfg``; paths resolve against ``base_dir``."""
    index, start_step, n_steps = _time_index(cfg)
    dt_h = cfg.time.resolution_s / 3600
    try:
        source = load_network(cfg.network.ref, base_dir)
        feeder = source.feeder
        default_profiles = type(cfg.loads).model_fields["profiles"].default
        if source.profiles is not None and cfg.loads.profiles == default_profiles:
            # a SimBench grid comes with its own profiles unless the scenario names a file
            raw = source.profiles
        else:
            raw = read_load_profiles(resolve_data_path(cfg.loads.profiles, base_dir))
        _check_window(cfg, raw.index)
        profiles = profiles_on_index(raw, index)
        weather = read_weather(cfg.weather.tmy, index)
    except (FileNotFoundError, ValueError) as err:
        raise ScenarioError(str(err)) from None
    base_p, base_q = _base_loads(feeder, profiles, cfg.loads.scale, cfg.loads.default_profile)
    fleet = build_fleet(cfg.fleet, cfg.seed, feeder, index, start_step, dt_h)
    pv = fleet.pv
    orient, inverse = np.unique(np.c_[pv.tilt_deg, pv.azimuth_deg], axis=0, return_inverse=True)
    per_kwp = pv_output_per_kwp(weather, orient[:, 0], orient[:, 1])
    sgen_kvar = _pv_sgen_kvar(feeder, fleet, per_kwp, inverse.ravel().astype(int))
    base_q = base_q + sgen_kvar
    ghi = weather.frame.ghi_w_m2.to_numpy()
    plant = build_plant(
        cfg.plant,
        fleet,
        dt_h,
        len(index),
        per_kwp,
        inverse.ravel().astype(int),
        lambda tilts, azimuths: pv_output_per_kwp(weather, tilts, azimuths),
    )
    three_phase = None
    if cfg.grid.phases == 3:
        three_phase = _three_phase(cfg, feeder, fleet, profiles)
    log.info("built scenario %s: %s", cfg.name, fleet.counts())
    return Scenario(
        config=cfg,
        feeder=feeder,
        index=index,
        start_step=start_step,
        n_steps=n_steps,
        dt_h=dt_h,
        base_load_kw=base_p,
        base_load_kvar=base_q,
        pv_per_kwp=per_kwp,
        pv_orientation=inverse.ravel().astype(int),
        outdoor_temp_c=weather.frame.temp_air_c.to_numpy(),
        hvac_mode=hvac_mode(weather.frame.temp_air_c.to_numpy(), int(round(24 / dt_h))),
        ghi_w_m2=ghi,
        tariff=build_tariff(cfg.tariff, index, base_dir),
        carbon_g_per_kwh=carbon_intensity(cfg.carbon, index, ghi, base_dir),
        fleet=fleet,
        weather_station=weather.station,
        plant=plant,
        three_phase=three_phase,
        sgen_kvar=sgen_kvar if np.any(sgen_kvar) else None,
    )


def _three_phase(cfg: ScenarioConfig, feeder: Feeder, fleet: Fleet, profiles: pd.DataFrame):
    """The feeder, customers and assets on phases for a ``[grid] phases = 3`` scenario."""
    from gridsync.grid.threephase.feeder import ThreePhaseModelError, build_three_phase_feeder

    g = cfg.grid
    try:
        return build_three_phase_feeder(
            feeder,
            fleet,
            profiles,
            cfg.loads.scale,
            cfg.seed + 1 if g.phase_seed is None else g.phase_seed,
            g.three_phase_customer_share,
            g.single_phase_max_kw,
            g.r0_over_r1,
            g.single_phase_on,
        )
    except ThreePhaseModelError as err:
        raise ScenarioError(f"grid.phases = 3: {err}") from None
