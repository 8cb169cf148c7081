"""The real plant behind the twin: a seeded mismatch with the model the controllers are given.

Controllers plan on ``Scenario.fleet`` (datasheet parameters, declared EV sessions and appliance
jobs). The twin's physics runs on ``Plant``: other battery capacities and efficiencies, other
building R and C, PV systems with soiling and a different tilt/azimuth, EV drivers who leave
earlier or later and need another amount of energy than they declared, appliance jobs that
never appear, meters with noise and lost readings, setpoints that take effect a step late and
are tracked with an error. Everything is drawn from ``PlantConfig.seed``; per-step noise is
drawn from (seed, step, stream), so every controller run on a scenario meets the same plant and
'violations caused by dispatch' (a run against ``uncontrolled``) stays a like-for-like count.
"""

from __future__ import annotations

import dataclasses
import zlib
from collections import deque
from dataclasses import dataclass

import numpy as np

from gridsync.model.assets import DeferrableFleet, EVSessions, Fleet
from gridsync.model.scenario_config import PlantConfig
from gridsync.sim.controller import Setpoints

# Setpoint arrays that an inverter, charger or heat pump tracks with an error; appliances run
# at their rating (on/off), so they have none.
TRACKED = ("battery_kw", "ev_kw", "thermal_kw", "pv_curtail_kw")


def _stream_id(name: str) -> int:
    return zlib.crc32(name.encode())


@dataclass(frozen=True)
class Plant:
    """The true parameters of the fleet and the seeded per-step disturbances.

    ``fleet`` is the true fleet (same assets, same session indices as the model's).
    ``pv_per_kwp[:, pv_orientation]`` is each PV system's true kW/kWp (as-built orientation),
    scaled by ``pv_derate`` (1 - soiling). ``deferrable_shows[i, d]`` is False when appliance
    ``i``'s job of day ``d`` (days counted from the scenario index start) does not appear.
    ``battery_energy_scale`` (model / true capacity) turns the battery management system's
    state of charge into the energy the controller's model expects.
    """

    config: PlantConfig
    fleet: Fleet
    pv_per_kwp: np.ndarray
    pv_orientation: np.ndarray
    pv_derate: np.ndarray
    deferrable_shows: np.ndarray
    battery_energy_scale: np.ndarray
    steps_per_day: int

    def rng(self, step: int, stream: str) -> np.random.Generator:
        """The random stream ``stream`` of step ``step`` (independent of call order)."""
        return np.random.default_rng([self.config.seed, int(step), _stream_id(stream)])

    def pv_available_kw(self, step: int) -> np.ndarray:
        """True available PV power per system at ``step`` (kW)."""
        per_kwp = self.pv_per_kwp[step, self.pv_orientation]
        return per_kwp * self.fleet.pv.peak_kw * self.pv_derate

    def deferrable_fleet(self, step: int) -> DeferrableFleet:
        """Appliances with the energy their job of ``step``'s day really needs (0: no-show)."""
        d = self.fleet.deferrable
        shows = self.deferrable_shows[:, step // self.steps_per_day]
        return dataclasses.replace(d, energy_kwh=np.where(shows, d.energy_kwh, 0.0))

    def track(self, sp: Setpoints, step: int) -> Setpoints:
        """Setpoints as the devices realise them: each tracked power off by a relative error
        (sd ``tracking_error_frac``); the twin's physics then clips to device limits."""
        sigma = self.config.tracking_error_frac
        if sigma == 0.0:
            return sp
        arrays = [np.asarray(getattr(sp, k), dtype=float) for k in TRACKED]
        rel = self.rng(step, "tracking").normal(0.0, sigma, sum(len(a) for a in arrays))
        parts = np.split(rel, np.cumsum([len(a) for a in arrays])[:-1])
        return dataclasses.replace(
            sp, **{k: a * (1.0 + e) for k, a, e in zip(TRACKED, arrays, parts, strict=True)}
        )

    def corrupt_meter(
        self, values: np.ndarray, step: int, stream: str, held: np.ndarray | None = None
    ) -> np.ndarray:
        """Meter readings of ``values`` at ``step``: relative Gaussian noise (sd
        ``meter_noise_frac``) and, with probability ``meter_dropout_prob`` per reading, a lost
        reading replaced by ``held`` (the last one reported; kept noisy when ``held`` is None).
        ``stream`` names the meter group so different quantities get independent noise."""
        c = self.config
        values = np.asarray(values, dtype=float)
        if c.meter_noise_frac == 0.0 and c.meter_dropout_prob == 0.0:
            return values
        rng = self.rng(step, stream)
        noisy = values * (1.0 + rng.normal(0.0, c.meter_noise_frac, values.shape))
        lost = rng.random(values.shape) < c.meter_dropout_prob
        if held is None:
            return noisy
        return np.where(lost, held, noisy)


class CommandDelay:
    """Setpoints take effect ``steps`` steps after they are decided; until then each device
    keeps running the command before (the first command runs from the start)."""

    def __init__(self, steps: int) -> None:
        self.steps = int(steps)
        self._queue: deque[Setpoints] = deque()

    def __call__(self, sp: Setpoints) -> Setpoints:
        self._queue.append(sp)
        if len(self._queue) > self.steps:
            return self._queue.popleft()
        return self._queue[0]


def _true_sessions(
    rng: np.random.Generator, s: EVSessions, cfg: PlantConfig, dt_h: float
) -> EVSessions:
    """Sessions as drivers really behave. Departure: declared + N(0, sd), at least one step
    after arrival and never into the charger's next session (a driver leaving early takes
    what was delivered). Energy: the driver really needs ``A`` = declared x N(1, sd); the car's
    own charge limit stops charging there (headroom), and the need counted as unmet is
    ``min(declared, A)``: what was asked for and the car would take."""
    n = len(s)
    shift = np.round(rng.normal(0.0, cfg.ev_departure_error_sd_min / 60.0, n) / dt_h)
    order = np.lexsort((s.arrival_step, s.charger))
    next_arrival = np.full(n, np.iinfo(np.int64).max)
    same = s.charger[order][1:] == s.charger[order][:-1]
    next_arrival[order[:-1][same]] = s.arrival_step[order][1:][same]
    departure = np.clip(s.departure_step + shift.astype(np.int64), s.arrival_step + 1, next_arrival)
    s = dataclasses.replace(s, departure_step=departure.astype(s.departure_step.dtype))
    factor = 1.0 + rng.normal(0.0, cfg.ev_energy_error_frac, n)
    if cfg.ev_energy_error_frac == 0.0:
        return s
    actual = np.clip(s.energy_need_kwh * factor, 0.0, s.headroom_kwh)
    return dataclasses.replace(
        s, energy_need_kwh=np.minimum(s.energy_need_kwh, actual), headroom_kwh=actual
    )


def _round_trip_scale(rng, fleet, cfg: PlantConfig) -> np.ndarray:
    """Per-battery factor on both legs' efficiency giving round trip +- the configured error."""
    b = fleet.battery
    round_trip = b.efficiency_charge * b.efficiency_discharge
    err = rng.uniform(-cfg.battery_efficiency_error, cfg.battery_efficiency_error, len(b))
    return np.sqrt((round_trip + err) / round_trip)


def _relative(rng, half_width: float, n: int) -> np.ndarray:
    return 1.0 + rng.uniform(-half_width, half_width, n)


def build_plant(
    cfg: PlantConfig,
    fleet: Fleet,
    dt_h: float,
    n_steps_total: int,
    pv_per_kwp: np.ndarray,
    pv_orientation: np.ndarray,
    pv_output_per_kwp,
) -> Plant | None:
    """Draw the true plant for ``fleet`` (None when ``cfg.enabled`` is false).

    ``pv_per_kwp``/``pv_orientation`` are the model's PV profiles; ``pv_output_per_kwp(tilts,
    azimuths)`` computes profiles for the as-built orientations when they differ.
    """
    if not cfg.enabled:
        return None
    rng = np.random.default_rng(cfg.seed)
    bat, th, pv = fleet.battery, fleet.thermal, fleet.pv
    cap = bat.capacity_kwh * _relative(rng, cfg.battery_capacity_error_frac, len(bat))
    eta = _round_trip_scale(rng, fleet, cfg)
    battery = dataclasses.replace(
        bat,
        capacity_kwh=cap,
        power_kw=bat.power_kw.copy(),
        efficiency_charge=bat.efficiency_charge * eta,
        efficiency_discharge=bat.efficiency_discharge * eta,
    )
    thermal = dataclasses.replace(
        th,
        resistance_c_per_kw=th.resistance_c_per_kw
        * _relative(rng, cfg.thermal_rc_error_frac, len(th)),
        capacitance_kwh_per_c=th.capacitance_kwh_per_c
        * _relative(rng, cfg.thermal_rc_error_frac, len(th)),
    )
    derate = 1.0 - rng.uniform(0.0, cfg.pv_soiling_max_frac, len(pv))
    tilt = np.clip(pv.tilt_deg + rng.uniform(-1, 1, len(pv)) * cfg.pv_tilt_error_deg, 0.0, 90.0)
    azimuth = (pv.azimuth_deg + rng.uniform(-1, 1, len(pv)) * cfg.pv_azimuth_error_deg) % 360.0
    if cfg.pv_tilt_error_deg or cfg.pv_azimuth_error_deg:
        orient, inverse = np.unique(np.c_[tilt, azimuth], axis=0, return_inverse=True)
        pv_per_kwp, pv_orientation = pv_output_per_kwp(orient[:, 0], orient[:, 1]), inverse.ravel()
    pv_true = dataclasses.replace(pv, tilt_deg=tilt, azimuth_deg=azimuth)
    sessions = _true_sessions(rng, fleet.ev.sessions, cfg, dt_h)
    steps_per_day = int(round(24 / dt_h))
    n_days = -(-n_steps_total // steps_per_day)
    shows = rng.random((len(fleet.deferrable), n_days)) >= cfg.deferrable_noshow_prob
    true_fleet = dataclasses.replace(
        fleet,
        pv=pv_true,
        battery=battery,
        thermal=thermal,
        ev=dataclasses.replace(fleet.ev, sessions=sessions),
    )
    return Plant(
        config=cfg,
        fleet=true_fleet,
        pv_per_kwp=pv_per_kwp,
        pv_orientation=np.asarray(pv_orientation, dtype=int),
        pv_derate=derate,
        deferrable_shows=shows,
        battery_energy_scale=bat.capacity_kwh / cap,
        steps_per_day=steps_per_day,
    )
