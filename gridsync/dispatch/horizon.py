"""Everything one dispatch solve needs about the next H steps, gathered into arrays.

``HorizonData`` is the boundary between the simulator's world (scenario, observation,
forecasts) and the LP formulation: the formulation reads only this, so tests can build one by
hand and the bench can build one for 10k synthetic assets.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gridsync.dispatch.terminal import TerminalValue
from gridsync.model.assets import Fleet
from gridsync.model.physics import forecast_hvac_mode
from gridsync.sim.forecasts import ExogenousForecast, carbon_day_ahead


@dataclass
class FleetState:
    """Asset states at the start of the first horizon step (see ``Observation``)."""

    battery_energy_kwh: np.ndarray
    ev_delivered_kwh: np.ndarray  # per session
    deferrable_done_kwh: np.ndarray
    thermal_temp_c: np.ndarray


@dataclass
class EVHorizon:
    """Charging sessions that overlap the horizon, with plugged steps ``[first_t, end_t)``.

    ``need_kwh`` is what must be in the car by ``end_t`` (the whole need when the car leaves
    inside the horizon, else what cannot be charged after the horizon at full power).
    """

    session: np.ndarray
    charger: np.ndarray
    first_t: np.ndarray
    end_t: np.ndarray
    delivered0_kwh: np.ndarray
    need_kwh: np.ndarray
    headroom_kwh: np.ndarray
    v2g_floor_kwh: np.ndarray
    departs_in_horizon: np.ndarray
    departure_step: np.ndarray

    def __len__(self) -> int:
        return len(self.session)


@dataclass
class HorizonData:
    """Exogenous inputs, prices and states over the horizon's H blocks from ``step0``.

    A block is ``block_steps[t]`` native steps long (``step_h[t]`` hours): 1 near the present,
    longer further out, so a 24-h horizon needs far fewer LP columns. Series are block means.
    """

    step0: int
    dt_h: float  # native step length (h)
    hour_of_day: np.ndarray  # (H,)
    times: object  # pandas DatetimeIndex of the horizon, for messages
    import_eur_per_kwh: np.ndarray  # (H,)
    export_eur_per_kwh: np.ndarray  # (H,)
    carbon_g_per_kwh: np.ndarray  # (H,)
    inflexible_kw: np.ndarray  # (H, n_bus): base load minus available PV
    base_kvar: np.ndarray  # (H, n_bus)
    pv_available_kw: np.ndarray  # (H, n_pv)
    outdoor_temp_c: np.ndarray  # (H,)
    hvac_mode: np.ndarray  # (H,)
    fleet: Fleet
    state: FleetState
    ev: EVHorizon
    n_bus: int
    peak_floor_kw: float = 0.0
    demand_eur_per_kw: float = 0.0
    losses_kw: np.ndarray | None = None  # (H,) from the last AC check
    block_steps: np.ndarray | None = None  # (H,) native steps per block; None = all 1
    terminal: TerminalValue | None = None  # value of the end state; None = cheapest price

    def __post_init__(self) -> None:
        if self.block_steps is None:
            self.block_steps = np.ones(len(self.hour_of_day), dtype=int)

    @property
    def horizon(self) -> int:
        return len(self.hour_of_day)

    @property
    def step_h(self) -> np.ndarray:
        """Length of each block in hours, (H,)."""
        return self.block_steps * self.dt_h

    @property
    def block_start(self) -> np.ndarray:
        """Offset of each block's first native step from ``step0``, (H,)."""
        return np.r_[0, np.cumsum(self.block_steps)[:-1]].astype(int)

    @property
    def steps_per_day(self) -> int:
        return int(round(24 / self.dt_h))


def ev_horizon(
    fleet: Fleet,
    step0: int,
    horizon: int,
    delivered_kwh: np.ndarray,
    dt_h: float,
    known: bool,
    block_steps: np.ndarray | None = None,
    pro_rata_end: bool = False,
) -> EVHorizon:
    """Sessions plugged in during the horizon (``horizon`` native steps); future arrivals only
    when ``known``. Steps are block indices: a session uses the blocks it is plugged in for
    entirely (``first_t`` = first block starting at or after arrival, ``end_t`` = blocks that
    end by departure). A session still plugged in at the end must have what cannot be charged
    after it at full power, or with ``pro_rata_end`` its need pro rata to its plugged steps
    before the end (``sim.accounting.ev_owed_kwh``, the KPI's window-end rule)."""
    s = fleet.ev.sessions
    end = step0 + horizon
    keep = (s.arrival_step < end) & (s.departure_step > step0)
    if not known:
        keep &= s.arrival_step <= step0
    idx = np.flatnonzero(keep)
    charger = s.charger[idx]
    blocks = np.ones(horizon, dtype=int) if block_steps is None else np.asarray(block_steps)
    edges = np.r_[0, np.cumsum(blocks)]
    arr_off = np.maximum(s.arrival_step[idx] - step0, 0)
    dep_off = np.minimum(s.departure_step[idx] - step0, horizon)
    first = np.searchsorted(edges[:-1], arr_off, side="left")
    stop = np.maximum(np.searchsorted(edges, dep_off, side="right") - 1, first)
    started = s.arrival_step[idx] <= step0
    delivered0 = np.where(started, delivered_kwh[idx] if len(delivered_kwh) else 0.0, 0.0)
    departs = s.departure_step[idx] <= end
    after_h = (np.maximum(s.departure_step[idx] - end, 0) + (dep_off - edges[stop])) * dt_h
    chargeable_after = fleet.ev.efficiency[charger] * fleet.ev.max_power_kw[charger] * after_h
    if pro_rata_end:
        eff_arr = np.maximum(s.arrival_step[idx], step0)
        stay = np.maximum(s.departure_step[idx] - eff_arr, 1)
        later = s.energy_need_kwh[idx] * np.clip((step0 + edges[stop] - eff_arr) / stay, 0, 1)
    else:
        later = s.energy_need_kwh[idx] - chargeable_after
    need = np.where(departs & (after_h == 0), s.energy_need_kwh[idx], later)
    return EVHorizon(
        session=idx,
        charger=charger,
        first_t=first,
        end_t=stop,
        delivered0_kwh=delivered0,
        need_kwh=np.maximum(need, 0.0),
        headroom_kwh=s.headroom_kwh[idx],
        v2g_floor_kwh=s.v2g_floor_kwh[idx],
        departs_in_horizon=departs,
        departure_step=s.departure_step[idx],
    )


def block_lengths(horizon: int, fine_steps: int, coarse_steps: int) -> np.ndarray:
    """Native steps per block: ``fine_steps`` single steps, then blocks of ``coarse_steps``."""
    fine = min(fine_steps, horizon)
    rest = horizon - fine
    n_coarse, tail = divmod(rest, max(coarse_steps, 1))
    return np.r_[
        np.ones(fine, dtype=int), np.full(n_coarse, coarse_steps, dtype=int), [tail] * (tail > 0)
    ].astype(int)


def block_mean(x: np.ndarray, block_steps: np.ndarray) -> np.ndarray:
    """Mean of ``x`` (native steps on axis 0) over consecutive blocks."""
    starts = np.r_[0, np.cumsum(block_steps)[:-1]]
    sums = np.add.reduceat(np.asarray(x, dtype=float), starts, axis=0)
    shape = (-1,) + (1,) * (np.ndim(x) - 1)
    return sums / block_steps.reshape(shape)


def horizon_from_scenario(
    scenario,
    step: int,
    horizon: int,
    state: FleetState,
    forecast: ExogenousForecast,
    known_future_sessions: bool,
    peak_floor_kw: float = 0.0,
    fine_steps: int | None = None,
    coarse_steps: int = 1,
    terminal: TerminalValue | None = None,
    hvac_mode0: float | None = None,
) -> HorizonData:
    """Assemble the horizon from the published tariff, a forecast and the fleet state.

    Nothing realised at or after ``step`` is read: carbon intensity comes from the forecast
    (else the day-ahead signal), heat-pump season modes from measured past and forecast
    temperatures (``hvac_mode0``, the mode the devices report now, for the first step). The
    first ``fine_steps`` steps keep the native resolution, later ones are averaged into
    blocks of ``coarse_steps`` (all native when ``fine_steps`` is None). The horizon is cut to
    what the forecast covers (the scenario's look-ahead data ends).
    """
    h = min(horizon, forecast.horizon)
    if h <= 0:
        msg = f"no forecast data at step {step}: the scenario index ends at {len(scenario.index)}"
        raise ValueError(msg)
    blocks = block_lengths(h, h if fine_steps is None else fine_steps, coarse_steps)
    starts = np.r_[0, np.cumsum(blocks)[:-1]]
    sl = slice(step, step + h)
    fleet = scenario.fleet
    pv_avail = forecast.pv_per_kwp[:h][:, scenario.pv_orientation] * fleet.pv.peak_kw
    n_bus = scenario.feeder.n_bus
    pv_bus = np.zeros((h, n_bus))
    if len(fleet.pv):
        weights = np.zeros((len(fleet.pv), n_bus))
        weights[np.arange(len(fleet.pv)), fleet.pv.bus] = 1.0
        pv_bus = pv_avail @ weights
    times = scenario.index[step + starts]
    hours = np.asarray(times.hour + times.minute / 60 + times.second / 3600, dtype=float)
    tariff = scenario.tariff
    carbon = forecast.carbon_g_per_kwh
    carbon = carbon_day_ahead(scenario, step, h) if carbon is None else carbon[:h]
    mode = forecast_hvac_mode(
        scenario.outdoor_temp_c[:step], forecast.outdoor_temp_c[:h], scenario.steps_per_day
    )
    if hvac_mode0 is not None and h:
        mode[0] = hvac_mode0
    window_days = scenario.n_steps * scenario.dt_h / 24.0
    return HorizonData(
        step0=step,
        dt_h=scenario.dt_h,
        hour_of_day=hours,
        times=times,
        import_eur_per_kwh=block_mean(tariff.import_eur_per_kwh[sl], blocks),
        export_eur_per_kwh=block_mean(tariff.export_eur_per_kwh[sl], blocks),
        carbon_g_per_kwh=block_mean(carbon, blocks),
        inflexible_kw=block_mean(forecast.base_load_kw[:h] - pv_bus, blocks),
        base_kvar=block_mean(forecast.base_load_kvar[:h], blocks),
        pv_available_kw=block_mean(pv_avail, blocks),
        outdoor_temp_c=block_mean(forecast.outdoor_temp_c[:h], blocks),
        hvac_mode=mode[starts],
        fleet=fleet,
        state=state,
        ev=ev_horizon(
            fleet,
            step,
            h,
            state.ev_delivered_kwh,
            scenario.dt_h,
            known_future_sessions,
            blocks,
            terminal is not None and terminal.pro_rata_end,
        ),
        n_bus=n_bus,
        peak_floor_kw=peak_floor_kw,
        demand_eur_per_kw=tariff.demand_charge_eur(1.0, window_days),
        block_steps=blocks,
        terminal=terminal,
    )
