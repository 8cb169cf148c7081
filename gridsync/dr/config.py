"""The demand-response config file (TOML or YAML, validated by pydantic).

It is separate from the scenario file on purpose: the scenario schema is shared by every
agent, while programs, incentive rules and the customer priors the meters cannot reveal belong
to the DR agent. Unknown keys are errors so a typo never silently falls back to a default.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from gridsync.model.scenario_config import format_validation_errors, read_config_mapping

END_USES = ("ev", "hvac", "deferrable", "water_heater", "battery")
EndUse = Literal["ev", "hvac", "deferrable", "water_heater", "battery"]
ProgramKind = Literal[
    "time_of_use",
    "real_time_pricing",
    "critical_peak_pricing",
    "peak_time_rebate",
    "direct_load_control",
    "emergency",
]
PRICE_KINDS = ("real_time_pricing", "critical_peak_pricing")
CONTROL_KINDS = ("direct_load_control", "emergency")


class DRConfigError(ValueError):
    """A DR config file is missing, unreadable or invalid; the message names the field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Spread(_Strict):
    """A declared population parameter: mean and standard deviation across customers."""

    mean: float
    std: float = Field(0.0, ge=0)


class CustomerPriors(_Strict):
    water_heater_share: float = Field(0.4, ge=0, le=1)
    elasticity: Spread = Spread(mean=0.9, std=0.3)
    opt_out_probability: Spread = Spread(mean=0.12, std=0.06)
    fatigue_per_event: Spread = Spread(mean=0.92, std=0.04)
    fatigue_window_days: int = Field(7, ge=1, le=60)
    comfort_setback_c: Spread = Spread(mean=1.5, std=0.5)
    n_segments: int = Field(4, ge=1, le=20)

    @model_validator(mode="after")
    def _ranges(self) -> CustomerPriors:
        if not 0 <= self.opt_out_probability.mean <= 1:
            msg = f"opt_out_probability.mean={self.opt_out_probability.mean} must be in [0, 1]"
            raise ValueError(msg)
        if not 0 < self.fatigue_per_event.mean <= 1:
            msg = f"fatigue_per_event.mean={self.fatigue_per_event.mean} must be in (0, 1]"
            raise ValueError(msg)
        if self.elasticity.mean < 0:
            msg = f"elasticity.mean={self.elasticity.mean} must be >= 0"
            raise ValueError(msg)
        return self


class DispatchRules(_Strict):
    feeder_limit_kw: float = Field(400.0, gt=0)
    feeder_limit_pct_of_transformer: float | None = Field(
        None, gt=0, le=200, description="limit as % of the transformer rating; wins when set"
    )
    price_spike_eur_per_kwh: float | None = Field(None, gt=0)
    planning_hour: float = Field(14.0, ge=0, lt=24)
    min_event_h: float = Field(1.0, gt=0, le=12, description="shortest event window called")
    rebound_h: float = Field(2.0, ge=0, le=12)
    rebound_share: dict[EndUse, float] = Field(
        default_factory=lambda: {
            "ev": 1.0,
            "hvac": 0.6,
            "deferrable": 1.0,
            "water_heater": 0.9,
            "battery": 1.0,
        }
    )
    shortfall_eur_per_kw: float = Field(50.0, gt=0)
    emergency_loading_pct: float = Field(95.0, gt=0)


class Program(_Strict):
    """One DR program: who may join, how early they hear, how long, and what it costs."""

    name: str = Field(min_length=1)
    kind: ProgramKind
    enrolment_share: float = Field(ge=0, le=1)
    end_uses: list[EndUse] = Field(min_length=1)
    notice_h: float = Field(0.0, ge=0, le=48)
    min_duration_h: float = Field(0.25, gt=0)
    max_duration_h: float = Field(4.0, gt=0, le=24)
    max_events_per_week: int = Field(3, ge=0)
    price_levels_eur_per_kwh: list[float] = Field(default_factory=list)
    rebate_levels_eur_per_kwh: list[float] = Field(default_factory=list)
    cost_eur_per_customer_event: float = Field(0.0, ge=0)
    cost_eur_per_kwh: float = Field(0.0, ge=0)
    segments: list[int] | None = Field(None, description="eligible segments; None = all")

    @model_validator(mode="after")
    def _rules(self) -> Program:
        if self.max_duration_h < self.min_duration_h:
            msg = f"max_duration_h ({self.max_duration_h}) must be >= min_duration_h ({self.min_duration_h})"
            raise ValueError(msg)
        if self.kind in PRICE_KINDS and not self.price_levels_eur_per_kwh:
            msg = f"a {self.kind} program needs price_levels_eur_per_kwh (event prices to offer)"
            raise ValueError(msg)
        if self.kind == "peak_time_rebate" and not self.rebate_levels_eur_per_kwh:
            msg = "a peak_time_rebate program needs rebate_levels_eur_per_kwh"
            raise ValueError(msg)
        if any(v <= 0 for v in self.price_levels_eur_per_kwh + self.rebate_levels_eur_per_kwh):
            msg = "price and rebate levels must be > 0 EUR/kWh"
            raise ValueError(msg)
        return self

    @property
    def dispatchable(self) -> bool:
        return self.kind != "time_of_use"

    def incentive_levels(self) -> list[float]:
        """The offers the planner may choose between (one value for fixed-incentive programs)."""
        if self.kind in PRICE_KINDS:
            return list(self.price_levels_eur_per_kwh)
        if self.kind == "peak_time_rebate":
            return list(self.rebate_levels_eur_per_kwh)
        return [self.cost_eur_per_kwh]


class DRConfig(_Strict):
    seed: int = 11
    customers: CustomerPriors = CustomerPriors()
    dispatch: DispatchRules = DispatchRules()
    programs: list[Program] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique(self) -> DRConfig:
        names = [p.name for p in self.programs]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            msg = f"program names must be unique, duplicated: {dup}"
            raise ValueError(msg)
        return self

    def program(self, name: str) -> Program:
        for p in self.programs:
            if p.name == name:
                return p
        msg = f"no DR program named {name!r}; have {[p.name for p in self.programs]}"
        raise KeyError(msg)

    def only(self, names: list[str]) -> DRConfig:
        """A copy keeping only the named programs (for single-program comparisons)."""
        keep = [self.program(n) for n in names]
        return self.model_copy(update={"programs": keep})


def default_dr_config_path() -> Path:
    return Path(str(resources.files("gridsync") / "data" / "dr" / "programs.toml"))


def parse_dr_config(data: dict, source: str = "dr config") -> DRConfig:
    try:
        return DRConfig.model_validate(data)
    except ValidationError as err:
        raise DRConfigError(format_validation_errors(source, err)) from None


def load_dr_config(path: str | Path | None = None) -> DRConfig:
    """Read and validate a DR config (the bundled ``programs.toml`` when ``path`` is None)."""
    path = Path(path) if path else default_dr_config_path()
    data = read_config_mapping(path, "DR config", DRConfigError)
    return parse_dr_config(data, source=path.name)
