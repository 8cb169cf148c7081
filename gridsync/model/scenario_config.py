"""Scenario files (TOML or YAML) and their validation.

A scenario declares the feeder, the load profiles, the weather, the asset fleet to generate
(deterministically from ``seed``), the tariff, the carbon signal, the network limits and the
dispatch objective. Unknown keys are errors, so a typo never silently falls back to a default.
"""

from __future__ import annotations

import datetime as dt
import tomllib
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from gridsync.model.inverter import InverterConfig
from gridsync.model.tap_changer import OLTCConfig


class ScenarioError(ValueError):
    """A scenario file is missing, unreadable or invalid; the message names the field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Range(_Strict):
    """A closed interval ``[min, max]`` that per-asset values are drawn from uniformly."""

    min: float
    max: float

    @model_validator(mode="after")
    def _ordered(self) -> Range:
        if self.max < self.min:
            msg = f"max ({self.max}) must be >= min ({self.min})"
            raise ValueError(msg)
        return self


class TimeConfig(_Strict):
    start: dt.date = dt.date(2016, 6, 6)
    days: int = Field(7, ge=1, le=366, description="simulated days")
    resolution_s: int = Field(900, ge=1, le=3600, description="simulation step in seconds")
    history_days: int = Field(28, ge=0, le=180, description="history before start for forecasters")
    horizon_h: float = Field(24.0, gt=0, le=72, description="look-ahead data kept after the end")

    @model_validator(mode="after")
    def _divides_hour(self) -> TimeConfig:
        if 3600 % self.resolution_s:
            msg = f"resolution_s={self.resolution_s} must divide 3600 (e.g. 5, 60, 300, 900)"
            raise ValueError(msg)
        return self


class NetworkConfig(_Strict):
    path: str = "bundled:feeders/simbench_lv_semiurb5.json"
    feeder: str | None = Field(
        None,
        description=(
            "bring your own network, overrides path: 'pandapower:<function>' (e.g. "
            "'pandapower:case33bw'), 'simbench:<code>' (with its load profiles), a pandapower "
            ".json or a MATPOWER .m/.mat file"
        ),
    )

    @property
    def ref(self) -> str:
        return self.feeder or self.path


class GridConfig(_Strict):
    """How the twin's physics solves the feeder: ``phases = 1`` balanced (positive sequence),
    ``phases = 3`` unbalanced three-phase with customers and assets on phases
    (``gridsync.grid.threephase.feeder``); the controllers keep the balanced model."""

    phases: Literal[1, 3] = 1
    three_phase_customer_share: float = Field(
        0.25, ge=0, le=1, description="share of customers connected on three phases"
    )
    single_phase_max_kw: float = Field(
        4.6, ge=0, description="assets rated above this run on three phases (VDE-AR-N 4105)"
    )
    r0_over_r1: float = Field(
        3.0, gt=0, description="zero- over positive-sequence resistance of lines without r0"
    )
    phase_seed: int | None = Field(None, description="seed of the phase allocation (default: seed)")
    single_phase_on: Literal["random", "a", "b", "c"] = Field(
        "random", description="phase of single-phase connections: seeded random, or all on one"
    )
    oltc: OLTCConfig = Field(OLTCConfig(), description="the feeder transformer's tap changer")


class LoadsConfig(_Strict):
    profiles: str = "bundled:profiles/simbench_lv_semiurb5_load_2016.csv.gz"
    scale: float = Field(1.0, gt=0, description="multiplier on every inflexible load")
    default_profile: str = Field(
        "H0-A", description="profile for loads whose own profile is not in the profile file"
    )


class WeatherConfig(_Strict):
    tmy: str = Field("pvlib:723170TYA.CSV", description="TMY3 file; 'pvlib:' = bundled with pvlib")


class PVConfig(_Strict):
    count: int = Field(70, ge=0)
    peak_kw: Range = Range(min=3.0, max=10.0)
    inverter: InverterConfig = Field(
        InverterConfig(), description="IEEE 1547 voltage function of every PV inverter"
    )


def throughput_cost_eur_per_kwh(
    pack_cost_eur_per_kwh: float, cycle_life: float, cycle_depth_frac: float
) -> float:
    """Battery wear per kWh charged or discharged: a pack that lasts ``cycle_life`` cycles of
    ``cycle_depth_frac`` passes ``cycle_life * 2 * cycle_depth_frac`` kWh (in plus out) per kWh
    of capacity before it must be replaced at ``pack_cost_eur_per_kwh``."""
    return pack_cost_eur_per_kwh / (cycle_life * 2.0 * cycle_depth_frac)


class BatteryConfig(_Strict):
    count: int = Field(50, ge=0)
    capacity_kwh: Range = Range(min=5.0, max=15.0)
    c_rate_per_h: float = Field(0.5, gt=0, le=4)
    efficiency_charge: float = Field(0.95, gt=0, le=1)
    efficiency_discharge: float = Field(0.95, gt=0, le=1)
    soc_min_frac: float = Field(0.1, ge=0, lt=1)
    soc_max_frac: float = Field(0.95, gt=0, le=1)
    soc_initial_frac: float = Field(0.5, ge=0, le=1)
    pack_cost_eur_per_kwh: float = Field(300.0, ge=0, description="pack replacement cost")
    cycle_life: float = Field(6000.0, gt=0, description="equivalent full cycles to end of life")
    cycle_depth_frac: float = Field(0.8, gt=0, le=1, description="depth of those cycles")
    degradation_eur_per_kwh: float | None = Field(
        None, ge=0, description="per kWh of throughput; default derived from the pack"
    )
    chemistry: Literal["LFP", "NMC"] = Field("LFP", description="ageing model (gridsync.storage)")
    warranty_years: float = Field(10.0, gt=0, description="alert if 80 % is projected before")
    cell_temp_c: float = Field(25.0, ge=-20, le=60, description="cell temperature for ageing")

    @property
    def degradation_cost_eur_per_kwh(self) -> float:
        """Wear per kWh through the inverter, each direction: the pack's cost spread over its
        lifetime throughput ``cycle_life * 2 * cycle_depth_frac`` kWh per kWh of capacity."""
        if self.degradation_eur_per_kwh is not None:
            return self.degradation_eur_per_kwh
        return throughput_cost_eur_per_kwh(
            self.pack_cost_eur_per_kwh, self.cycle_life, self.cycle_depth_frac
        )

    @model_validator(mode="after")
    def _soc_order(self) -> BatteryConfig:
        if not self.soc_min_frac <= self.soc_initial_frac <= self.soc_max_frac:
            msg = "need soc_min_frac <= soc_initial_frac <= soc_max_frac"
            raise ValueError(msg)
        return self


class EVConfig(_Strict):
    count: int = Field(70, ge=0, description="home chargers")
    charger_kw: list[float] = Field([3.7, 7.4, 11.0], min_length=1)
    v2g_share: float = Field(0.2, ge=0, le=1)
    efficiency: float = Field(0.92, gt=0, le=1)
    battery_kwh: float = Field(60.0, gt=0)
    pack_cost_eur_per_kwh: float = Field(150.0, ge=0, description="EV pack replacement cost")
    cycle_life: float = Field(2000.0, gt=0, description="equivalent full cycles to end of life")
    cycle_depth_frac: float = Field(0.8, gt=0, le=1)
    v2g_degradation_eur_per_kwh: float | None = Field(
        None, ge=0, description="per kWh discharged by V2G; default derived from the pack"
    )
    chemistry: Literal["LFP", "NMC"] = Field("NMC", description="ageing model (gridsync.storage)")
    warranty_years: float = Field(8.0, gt=0, description="car battery warranty")

    @property
    def v2g_degradation_cost_eur_per_kwh(self) -> float:
        """Wear per kWh a car gives back: it is discharged once and charged again later, two
        kWh of throughput the car would not otherwise see."""
        if self.v2g_degradation_eur_per_kwh is not None:
            return self.v2g_degradation_eur_per_kwh
        return 2.0 * throughput_cost_eur_per_kwh(
            self.pack_cost_eur_per_kwh, self.cycle_life, self.cycle_depth_frac
        )

    daily_plug_probability: float = Field(0.8, ge=0, le=1)
    arrival_hour_mean: float = Field(18.0, ge=0, lt=24)
    arrival_hour_std: float = Field(1.5, ge=0)
    dwell_h_mean: float = Field(12.5, gt=0)
    energy_need_kwh_mean: float = Field(12.0, gt=0)


class DeferrableConfig(_Strict):
    count: int = Field(100, ge=0)
    power_kw: Range = Range(min=1.0, max=2.5)
    run_h: Range = Range(min=1.0, max=2.5)
    window_start_h: Range = Range(min=6.0, max=12.0)
    window_length_h: Range = Range(min=6.0, max=12.0)


class ThermalConfig(_Strict):
    count: int = Field(80, ge=0)
    max_power_kw: Range = Range(min=1.5, max=4.0)
    cop: float = Field(3.0, gt=0)
    resistance_c_per_kw: Range = Range(min=4.0, max=8.0)
    capacitance_kwh_per_c: Range = Range(min=3.0, max=8.0)
    comfort_min_c: float = 20.0
    comfort_max_c: float = 24.0

    @model_validator(mode="after")
    def _band(self) -> ThermalConfig:
        if self.comfort_max_c <= self.comfort_min_c:
            msg = "comfort_max_c must be above comfort_min_c"
            raise ValueError(msg)
        return self


class FleetConfig(_Strict):
    pv: PVConfig = PVConfig()
    battery: BatteryConfig = BatteryConfig()
    ev: EVConfig = EVConfig()
    deferrable: DeferrableConfig = DeferrableConfig()
    thermal: ThermalConfig = ThermalConfig()


class TouPeriod(_Strict):
    start_h: float = Field(ge=0, lt=24)
    end_h: float = Field(gt=0, le=24)
    price_eur_per_kwh: float
    days: Literal["all", "weekday", "weekend"] = "all"

    @model_validator(mode="after")
    def _order(self) -> TouPeriod:
        if self.end_h <= self.start_h:
            msg = f"end_h ({self.end_h}) must be after start_h ({self.start_h})"
            raise ValueError(msg)
        return self


def _default_periods() -> list[TouPeriod]:
    return [
        TouPeriod(start_h=0, end_h=7, price_eur_per_kwh=0.18),
        TouPeriod(start_h=7, end_h=17, price_eur_per_kwh=0.28),
        TouPeriod(start_h=17, end_h=21, price_eur_per_kwh=0.42),
        TouPeriod(start_h=21, end_h=24, price_eur_per_kwh=0.28),
    ]


class TariffConfig(_Strict):
    periods: list[TouPeriod] = Field(default_factory=_default_periods, min_length=1)
    export_price_eur_per_kwh: float = 0.08
    demand_charge_eur_per_kw_month: float = Field(
        10.0, ge=0, description="per kW of peak import per 30 days, prorated to the window"
    )
    real_time_csv: str | None = Field(None, description="optional CSV time,price_eur_per_kwh")


class CarbonConfig(_Strict):
    """Grid carbon intensity: modelled (a base, lowered by solar output, raised in the evening)
    unless ``csv`` gives a measured series."""

    base_g_per_kwh: float = Field(380.0, ge=0)
    solar_dip_g_per_kwh: float = Field(160.0, ge=0)
    evening_peak_g_per_kwh: float = Field(90.0, ge=0)
    csv: str | None = Field(
        None, description="optional CSV time,carbon_g_per_kwh of measured intensity (replaces the model)"
    )


class LimitsConfig(_Strict):
    voltage_min_pu: float = Field(0.95, gt=0.5, lt=1.0)
    voltage_max_pu: float = Field(1.05, gt=1.0, lt=1.5)
    loading_max_pct: float = Field(100.0, gt=0)


class TelemetryConfig(_Strict):
    """How measurements reach the controller (see ``gridsync.sim.telemetry``)."""

    latency_steps: int = Field(
        0, ge=0, le=96, description="extra steps before an interval's readings arrive"
    )
    loss_frac: float = Field(
        0.0, ge=0, lt=1, description="share of readings lost (the last value is held)"
    )


class ObjectiveConfig(_Strict):
    """Weights of the dispatch objective, all in EUR per unit named."""

    carbon_price_eur_per_kg: float = Field(0.08, ge=0)
    unmet_ev_eur_per_kwh: float = Field(1.0, ge=0)
    unmet_deferrable_eur_per_kwh: float = Field(1.0, ge=0)
    comfort_eur_per_degree_hour: float = Field(0.5, ge=0)
    curtailment_eur_per_kwh: float = Field(0.0, ge=0)


class AccountingConfig(_Strict):
    """How the state left at the end of the window is settled in the KPIs and objectives.

    ``mean_import_price``: battery energy above (below) its start level is credited (charged)
    at the window's mean import price; EV energy beyond what sessions crossing the end owe
    pro rata is credited up to their need; a building cooler (heating) or warmer (cooling)
    than its start temperature (clipped into the comfort band) is charged the electricity
    that heat would cost. ``start_level``: nothing is credited, every shortfall is charged
    at ``shortfall_eur_per_kwh``.
    """

    end_valuation: Literal["mean_import_price", "start_level"] = "mean_import_price"
    shortfall_eur_per_kwh: float = Field(1.0, ge=0, description="used by start_level")


class PlantConfig(_Strict):
    """How the real plant differs from the model the controllers are given (all seeded).

    Every magnitude set to 0 turns that part off; ``enabled = false`` turns the whole plant
    off (the twin then is the model). Uniform errors are ``+-`` half-widths, the others are
    standard deviations. The defaults are moderate, field-typical values; the reason for each
    is given next to it.
    """

    enabled: bool = True
    seed: int = Field(7, description="plant draws; independent of the fleet seed")
    # datasheet tolerance plus a few years of calendar fade (Li-ion loses ~1-3 %/yr)
    battery_capacity_error_frac: float = Field(0.05, ge=0, lt=1)
    # measured AC round-trip efficiencies of home storage spread a few points around the
    # datasheet's; absolute points of round trip, split evenly over charge and discharge
    battery_efficiency_error: float = Field(0.02, ge=0, lt=1)
    # grey-box RC fits of buildings typically leave 10-20 % uncertainty on R and C
    thermal_rc_error_frac: float = Field(0.15, ge=0, lt=1)
    # soiling loss per system drawn from [0, max] (PVWatts' default soiling loss is 2 %)
    pv_soiling_max_frac: float = Field(0.05, ge=0, lt=1)
    # roof tilt/azimuth as registered vs as built (aerial imagery / owner declarations)
    pv_tilt_error_deg: float = Field(5.0, ge=0, le=45)
    pv_azimuth_error_deg: float = Field(15.0, ge=0, le=90)
    # class 1 / class B energy meters (IEC 62053-21, EN 50470-3): +-1 % at rated conditions
    meter_noise_frac: float = Field(0.01, ge=0, le=0.5)
    # share of interval readings lost (AMI read rates ~99.5 %); the last reading is held
    meter_dropout_prob: float = Field(0.005, ge=0, lt=1)
    # a setpoint decided at step t takes effect at t + latency (device runs the older one)
    command_latency_steps: int = Field(1, ge=0, le=96)
    # inverter / charger setpoint accuracy, incl. the 1 A pilot-current steps of IEC 61851
    tracking_error_frac: float = Field(0.02, ge=0, le=0.5)
    # actual minus declared EV departure; user-entered departures in ACN-Data (Lee et al.
    # 2019) are often off by an hour or more, 45 min is a moderate choice
    ev_departure_error_sd_min: float = Field(45.0, ge=0, le=720)
    # actual energy the driver needs (the car's own charge limit) vs the declared energy
    ev_energy_error_frac: float = Field(0.15, ge=0, le=1)
    # a declared daily appliance job that is never loaded
    deferrable_noshow_prob: float = Field(0.1, ge=0, lt=1)


class ScenarioConfig(_Strict):
    name: str = "default"
    description: str = ""
    seed: int = 42
    time: TimeConfig = TimeConfig()
    network: NetworkConfig = NetworkConfig()
    grid: GridConfig = GridConfig()
    loads: LoadsConfig = LoadsConfig()
    weather: WeatherConfig = WeatherConfig()
    fleet: FleetConfig = FleetConfig()
    tariff: TariffConfig = TariffConfig()
    carbon: CarbonConfig = CarbonConfig()
    limits: LimitsConfig = LimitsConfig()
    objective: ObjectiveConfig = ObjectiveConfig()
    accounting: AccountingConfig = AccountingConfig()
    plant: PlantConfig = PlantConfig()
    telemetry: TelemetryConfig = TelemetryConfig()

    @model_validator(mode="after")
    def _plant_efficiency(self) -> ScenarioConfig:
        """The worst-case efficiency error must keep every efficiency in (0, 1]."""
        b, err = self.fleet.battery, self.plant.battery_efficiency_error
        round_trip = b.efficiency_charge * b.efficiency_discharge
        ceiling = round_trip * (1.0 / max(b.efficiency_charge, b.efficiency_discharge) ** 2 - 1.0)
        if err > ceiling + 1e-12 or err >= round_trip:
            msg = (
                f"plant.battery_efficiency_error = {err} would push a battery efficiency above 1 "
                f"or to 0 (fleet.battery efficiency_charge = {b.efficiency_charge}, "
                f"efficiency_discharge = {b.efficiency_discharge}); expected 0 <= value <= "
                f"{ceiling:.4f}"
            )
            raise ValueError(msg)
        return self

    @model_validator(mode="after")
    def _inverter_phases(self) -> ScenarioConfig:
        """Voltage-responsive inverters run in the balanced twin only (see ``SteppedTwin``)."""
        mode = self.fleet.pv.inverter.mode
        if self.grid.oltc.enabled and self.grid.phases == 3:
            msg = (
                "grid.oltc.enabled needs the balanced twin (grid.phases = 1): taps are not in "
                "the three-phase model yet"
            )
            raise ValueError(msg)
        if mode != "unity" and self.grid.phases == 3:
            msg = (
                f"fleet.pv.inverter.mode = {mode!r} needs the balanced twin (grid.phases = 1); "
                "the three-phase twin does not model inverter reactive power yet"
            )
            raise ValueError(msg)
        return self


def format_validation_errors(source: str, err: ValidationError) -> str:
    lines = [f"{source}: {err.error_count()} invalid field(s)"]
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"]) or "(top level)"
        got = e.get("input")
        got_txt = "" if isinstance(got, dict) else f" (got {got!r})"
        lines.append(f"  - {loc}: {e['msg']}{got_txt}")
    return "\n".join(lines)


def parse_scenario(data: dict, source: str = "scenario") -> ScenarioConfig:
    """Validate a mapping as a scenario; raise ``ScenarioError`` listing every bad field."""
    try:
        return ScenarioConfig.model_validate(data)
    except ValidationError as err:
        raise ScenarioError(format_validation_errors(source, err)) from None


def read_config_mapping(path: str | Path, what: str, error: type[ValueError]) -> dict:
    """Read a ``.toml``/``.yaml``/``.yml`` file into a mapping, raising ``error`` with the file,
    the problem and what was expected (``what`` names the kind of file in messages)."""
    path = Path(path)
    if not path.exists():
        msg = f"{what} file {str(path)!r} does not exist"
        raise error(msg)
    text = path.read_text(encoding="utf-8")
    suffix = path.suffix.lower()
    try:
        if suffix == ".toml":
            data = tomllib.loads(text)
        elif suffix in (".yaml", ".yml"):
            data = yaml.safe_load(text) or {}
        else:
            msg = f"{what} file {path.name}: unknown extension {suffix!r}; expected .toml, .yaml or .yml"
            raise error(msg)
    except (tomllib.TOMLDecodeError, yaml.YAMLError) as err:
        msg = f"{what} file {path.name} is not valid {suffix[1:].upper()}: {err}"
        raise error(msg) from None
    if not isinstance(data, dict):
        msg = f"{what} file {path.name}: top level must be a mapping, got {type(data).__name__}"
        raise error(msg)
    return data


def load_scenario_config(path: str | Path) -> ScenarioConfig:
    """Read and validate a ``.toml``, ``.yaml`` or ``.yml`` scenario file."""
    path = Path(path)
    return parse_scenario(read_config_mapping(path, "scenario", ScenarioError), source=path.name)
