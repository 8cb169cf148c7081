"""Telemetry: what the controller has measured when it decides, built in one place.

A 15-minute meter average is only known when its interval ends, so at the start of step t the
newest reading a controller can hold is of interval t-1, or t-1-L with a telemetry latency of
L steps (``scenario.config.telemetry.latency_steps``). Readings are lost at random with
``loss_frac`` (seeded per step); a lost reading keeps its last received value, as a SCADA
historian holds the last good value, and its ``fresh_*`` flag is False.

``measure_interval`` is the single function that turns what happened in one interval (the
twin's ``StepRecord``, or the scenario's history before the window) into readings;
``TelemetryLink`` then applies the plant's meter noise and dropouts (``sim.plant``) and the
transmission loss.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np


@dataclass
class Telemetry:
    """Readings of one past interval ``step`` (averages over it), as received.

    Load convention, kW. ``pv_available_kw`` is what each inverter reports it could have
    produced (its output plus what it curtailed). Grid quantities are None before the twin has
    solved a step in this run.
    """

    step: int
    base_load_kw: np.ndarray  # (n_bus,) metered inflexible load per bus
    base_load_kvar: np.ndarray  # (n_bus,)
    pv_kw: np.ndarray  # (n_pv,) metered PV output
    pv_available_kw: np.ndarray  # (n_pv,)
    outdoor_temp_c: float
    vm_pu: np.ndarray | None = None
    branch_loading_pct: np.ndarray | None = None
    feeder_kw: float | None = None
    fresh_bus: np.ndarray | None = None  # (n_bus,) False where the load reading was lost
    fresh_pv: np.ndarray | None = None  # (n_pv,)
    fresh_grid: bool = True  # False when voltages/loadings/feeder power were lost


def measure_interval(scenario, step: int, record=None) -> Telemetry:
    """Meter readings of interval ``step``: from the twin's ``record`` of that step when there
    is one, else from the scenario's history (before the window nothing was curtailed and no
    power flow of this run exists)."""
    if record is not None and record.step != step:
        msg = f"record is of step {record.step}, not of the measured step {step}"
        raise ValueError(msg)
    temp = float(scenario.outdoor_temp_c[step])
    base_kw = np.asarray(scenario.base_load_kw[step], float)
    base_kvar = np.asarray(scenario.base_load_kvar[step], float)
    if record is None:
        plant = getattr(scenario, "plant", None)
        pv = plant.pv_available_kw(step) if plant is not None else scenario.pv_available_kw(step)
        pv = np.asarray(pv, float)
        return Telemetry(step, base_kw, base_kvar, pv, pv, temp)
    failed = bool(record.pf_failed)
    return Telemetry(
        step=step,
        base_load_kw=base_kw,
        base_load_kvar=base_kvar,
        pv_kw=np.asarray(record.pv_kw, float),
        pv_available_kw=np.asarray(record.pv_kw + record.curtailed_kw, float),
        outdoor_temp_c=temp,
        vm_pu=None if failed else np.asarray(record.vm_pu, float),
        branch_loading_pct=None if failed else np.asarray(record.branch_loading_pct, float),
        feeder_kw=None if failed else float(record.feeder_kw),
    )


def receive(
    reading: Telemetry, previous: Telemetry | None, loss_frac: float, seed: int
) -> Telemetry:
    """``reading`` after transmission: each reading is lost with probability ``loss_frac``
    (seeded by ``seed`` and the step) and then keeps its value from ``previous``."""
    n_bus, n_pv = len(reading.base_load_kw), len(reading.pv_kw)
    if loss_frac <= 0 or previous is None:
        return replace(
            reading,
            fresh_bus=np.ones(n_bus, bool),
            fresh_pv=np.ones(n_pv, bool),
            fresh_grid=True,
        )
    rng = np.random.default_rng([seed, reading.step])
    fresh_bus = rng.random(n_bus) >= loss_frac
    fresh_pv = rng.random(n_pv) >= loss_frac
    fresh_temp, fresh_grid = rng.random(2) >= loss_frac
    hold = lambda new, old, ok: np.where(ok, new, old)  # noqa: E731
    grid_ok = fresh_grid or previous.vm_pu is None
    return Telemetry(
        step=reading.step,
        base_load_kw=hold(reading.base_load_kw, previous.base_load_kw, fresh_bus),
        base_load_kvar=hold(reading.base_load_kvar, previous.base_load_kvar, fresh_bus),
        pv_kw=hold(reading.pv_kw, previous.pv_kw, fresh_pv),
        pv_available_kw=hold(reading.pv_available_kw, previous.pv_available_kw, fresh_pv),
        outdoor_temp_c=reading.outdoor_temp_c if fresh_temp else previous.outdoor_temp_c,
        vm_pu=reading.vm_pu if grid_ok else previous.vm_pu,
        branch_loading_pct=reading.branch_loading_pct if grid_ok else previous.branch_loading_pct,
        feeder_kw=reading.feeder_kw if grid_ok else previous.feeder_kw,
        fresh_bus=fresh_bus,
        fresh_pv=fresh_pv,
        fresh_grid=bool(grid_ok),
    )


class TelemetryLink:
    """Delivers, at the start of each step, the newest interval the controller can know.

    Keeps the twin's last ``latency_steps + 1`` records; ``latest(step)`` returns readings of
    interval ``step - 1 - latency_steps`` after loss. Scenarios built by ``load_scenario`` carry
    history before the window; for an index without any (hand-built test cases) the readings
    before it are zero load and PV and the first temperature.
    """

    def __init__(self, scenario) -> None:
        cfg = scenario.config.telemetry
        self.scenario = scenario
        self.latency_steps = cfg.latency_steps
        self.loss_frac = cfg.loss_frac
        self.seed = scenario.config.seed + 7
        self._records: dict[int, object] = {}
        self._received: Telemetry | None = None

    def record(self, rec) -> None:
        """Store the twin's record of the interval that just ended."""
        self._records[rec.step] = rec
        keep = rec.step - self.latency_steps - 1
        for s in [s for s in self._records if s < keep]:
            del self._records[s]

    def latest(self, step: int) -> Telemetry:
        """Telemetry available at the start of ``step``."""
        measured = step - 1 - self.latency_steps
        prev = self._received
        if prev is not None and prev.step == measured:
            return prev
        if measured < 0:
            # an index without history (hand-built test cases): nothing was metered; only the
            # thermometer's reading at the start instant is known
            first = measure_interval(self.scenario, 0)
            zero = lambda a: np.zeros_like(a)  # noqa: E731
            reading = Telemetry(
                measured,
                zero(first.base_load_kw),
                zero(first.base_load_kvar),
                zero(first.pv_kw),
                zero(first.pv_available_kw),
                first.outdoor_temp_c,
            )
        else:
            reading = measure_interval(self.scenario, measured, self._records.get(measured))
        self._received = receive(self._metered(reading, prev), prev, self.loss_frac, self.seed)
        return self._received

    def _metered(self, reading: Telemetry, prev: Telemetry | None) -> Telemetry:
        """``reading`` with the plant's meter noise and dropouts (held at ``prev``)."""
        plant = getattr(self.scenario, "plant", None)
        if plant is None:
            return reading
        held = lambda name: None if prev is None else getattr(prev, name)  # noqa: E731
        meter = lambda name, stream: plant.corrupt_meter(  # noqa: E731
            getattr(reading, name), reading.step, stream, held(name)
        )
        return replace(
            reading,
            base_load_kw=meter("base_load_kw", "base_load"),
            base_load_kvar=meter("base_load_kvar", "base_load_kvar"),
            pv_kw=meter("pv_kw", "pv"),
            pv_available_kw=meter("pv_available_kw", "pv_available"),
        )
