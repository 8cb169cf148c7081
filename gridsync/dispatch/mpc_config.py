"""The MPC's configuration (``MPCConfig``): horizon, re-planning, corrections, network, costs."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MPCConfig:
    """Settings of the receding-horizon optimizer.

    ``resolve_every``: re-plan every k steps (default 4, hourly at 15 min) and follow the last
    plan in between; 1 re-plans every step.
    ``realtime``: correct each step's setpoints against the metered load and PV
    (``dispatch.realtime.rebalance``, absorbing ``track_gain`` of the deviation from the plan's
    forecast; ``later_share`` is its margin when slowing EVs and appliances; ``comfort_guard``
    raises heat-pump power to what keeps each building in its band at the metered outdoor
    temperature), and
    ``battery_reserve_frac`` of each battery's capacity is kept out of the plan for it;
    ``error_decay_per_step``: the last measured forecast error of load, PV and temperature is
    carried into this step's estimate and into every re-plan, damped by this factor per step
    (``dispatch.nowcast``; 0 = use the forecasts as issued);
    ``ev_deadline_margin_steps``: the plan treats every car as leaving this many steps before
    its declared departure (drivers leave early; a setpoint may take effect a step late). The
    default, 2 h at 15 min, covers a departure error of 45 min sd (the shipped plant) to
    about 2.7 sd (on the default scenario's first two June days, 1 h left 21.7 EUR of unmet-EV
    penalties from early departures, 2 h 0.9 EUR);
    ``peak_margin_quantile``: the per-step correction holds the expected import this far below
    the peak target, the quantile of how much the measured import exceeded the expected one
    over the last day (None: no margin);
    ``ac_correct``: check the executed setpoints with an AC power flow of the step and correct
    voltage/loading violations by sensitivity (``safety.shield``, no ramp limits).
    ``known_future_sessions`` lets the optimizer see EV sessions before the car arrives
    (the oracle does; a real MPC only knows cars that are plugged in). The first
    ``fine_steps`` steps of the horizon are planned at the native resolution, the rest in
    blocks of ``coarse_steps`` steps (1 h at 15 min), which cuts the LP to about a third.
    The horizon's end state is valued as the KPIs settle the window's end
    (``dispatch.terminal``); with ``settle_at_window_end`` a horizon that reaches the end of
    the simulated window stops there and settles exactly as the KPIs do.
    ``min_network_passes`` > 1 re-solves with the losses of the plan's own AC check.
    ``tie_break_eur_per_kwh``: a tiny cost per kWh of flexible power that makes the LP's
    optimum unique (``dispatch.tiebreak``), so nearly identical states give nearly identical
    plans; 0 leaves the solver's choice among equal-cost plans.
    ``reactive``: the PV and battery inverters' reactive power is a decision wherever a
    voltage row is in the LP (``dispatch.reactive``; balanced feeders only); ``taps``: a
    dispatch-controlled OLTC's position is chosen at each re-plan (``dispatch.oltc``). With
    both off the optimizer acts on active power only (``mpc-p``).
    """

    horizon_steps: int = 96
    fine_steps: int = 16
    coarse_steps: int = 4
    resolve_every: int = 4
    time_limit_s: float = 10.0
    network: bool = True
    max_network_passes: int = 3
    screen_voltage_pu: float = 0.02
    screen_loading_frac: float = 0.8
    voltage_safety_pu: float = 0.003
    loading_safety_pct: float = 2.0
    known_future_sessions: bool = False
    hard_ev_deadlines: bool = False
    feeder_limit_kw: float | None = None
    max_binding: int = 20
    aggregate: bool = False  # per-bus virtual assets + disaggregation (dispatch.aggregate)
    realtime: bool = True
    track_gain: float = 1.0
    later_share: float = 0.25
    comfort_guard: bool = True
    battery_reserve_frac: float = 0.0
    error_decay_per_step: float = 0.9
    peak_margin_quantile: float | None = 0.95
    ev_deadline_margin_steps: int = 8
    ac_correct: bool = True
    settle_at_window_end: bool = True
    min_network_passes: int = 1
    ageing_costs: bool = False  # price battery/V2G ageing by the cell model (dispatch.degradation)
    tie_break_eur_per_kwh: float = 1e-4
    reactive: bool = True  # PV and battery inverter Q in the LP (balanced feeders)
    taps: bool = True  # the OLTC position per re-plan (grid.oltc.control = "dispatch")

    def __post_init__(self) -> None:
        checks = {
            "horizon_steps": (self.horizon_steps, self.horizon_steps >= 1, ">= 1"),
            "resolve_every": (self.resolve_every, self.resolve_every >= 1, ">= 1"),
            "fine_steps": (self.fine_steps, self.fine_steps >= 1, ">= 1"),
            "coarse_steps": (self.coarse_steps, self.coarse_steps >= 1, ">= 1"),
            "time_limit_s": (self.time_limit_s, self.time_limit_s >= 0, ">= 0"),
            "track_gain": (self.track_gain, 0.0 <= self.track_gain <= 1.0, "in [0, 1]"),
            "later_share": (self.later_share, 0.0 <= self.later_share <= 1.0, "in [0, 1]"),
            "ev_deadline_margin_steps": (
                self.ev_deadline_margin_steps,
                self.ev_deadline_margin_steps >= 0,
                ">= 0",
            ),
            "error_decay_per_step": (
                self.error_decay_per_step,
                0.0 <= self.error_decay_per_step < 1.0,
                "in [0, 1)",
            ),
            "battery_reserve_frac": (
                self.battery_reserve_frac,
                0.0 <= self.battery_reserve_frac < 1.0,
                "in [0, 1)",
            ),
            "max_network_passes": (
                self.max_network_passes,
                self.max_network_passes >= 1,
                ">= 1",
            ),
        }
        for name, (value, ok, expected) in checks.items():
            if not ok:
                msg = f"MPCConfig.{name} = {value!r}; expected {expected}"
                raise ValueError(msg)
        if self.ageing_costs and self.aggregate:
            msg = (
                "MPCConfig.ageing_costs = True with aggregate = True; expected one of them: "
                "ageing costs are per battery, the aggregated LP has virtual batteries"
            )
            raise ValueError(msg)
        if self.feeder_limit_kw is not None and self.feeder_limit_kw <= 0:
            msg = f"MPCConfig.feeder_limit_kw = {self.feeder_limit_kw!r}; expected > 0 or None"
            raise ValueError(msg)
