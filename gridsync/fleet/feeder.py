"""One feeder of the fleet: its twin, and its forecast, dispatch (``mpc``) and safety agents.

``FeederRuntime.step()`` runs one control loop of the feeder (observe, decide with the MPC
behind the safety shield, apply to the twin's AC power flow) and returns what the loop
publishes: the step's telemetry, the executed plan (setpoints), and the flexibility the
coordinator bids into the VPP. ``checkpoint()`` / ``FeederRuntime.restore`` save and rebuild
the complete loop state (asset states, the controller's plan, learned margins and error
memory) without the scenario, forecast model and power-flow model it shares with other
feeders, so a restarted worker resumes a feeder exactly where its last stored step left it.
"""

from __future__ import annotations

import io
import pickle
import time
import zlib
from dataclasses import dataclass, field, replace

import numpy as np

from gridsync.dispatch.mpc import MPCConfig, MPCController
from gridsync.fleet.replicas import FeederSpec
from gridsync.market.vpp import (
    VppConfig,
    battery_flexibility_kw,
    class_costs_eur_per_kwh,
    ev_flexibility_kw,
    thermal_flexibility_kw,
)
from gridsync.safety.sensitivity import GridSensitivity
from gridsync.safety.shield import ShieldedController
from gridsync.sim.scenario import Scenario
from gridsync.sim.twin import SteppedTwin

SETPOINT_KINDS = ("battery_kw", "ev_kw", "deferrable_kw", "thermal_kw", "pv_curtail_kw")
# logs the controllers append to every step; a checkpoint keeps only their tail
_LOG_TAIL = 8


@dataclass
class StepOutput:
    """What one feeder's loop produced at ``step`` (index into the scenario's index).

    ``telemetry``: feeder head kW/kvar, voltage envelope (p.u.), highest loading (%), power
    flow failure. ``plan``: the executed setpoints per asset kind (kW), the MPC plan's status
    and whether this step re-planned. ``flex_up_kw`` / ``flex_down_kw``: kW per class
    (battery, EV, heat pump) the feeder can deliver up (less import) or down (more) for one
    interval. ``planned_import_kw``: the plan's highest import over the next hour.
    ``loop_s`` / ``cpu_s``: wall and CPU seconds of the loop in its worker.
    """

    feeder_id: str
    step: int
    time: str
    telemetry: dict
    plan: dict
    flex_up_kw: list[float]
    flex_down_kw: list[float]
    planned_import_kw: float
    loop_s: float
    cpu_s: float
    extras: dict = field(default_factory=dict)


class FeederRuntime:
    """A feeder's loop state. ``forecaster`` is the fleet's shared forecast agent."""

    def __init__(
        self,
        spec: FeederSpec,
        scenario: Scenario,
        forecaster,
        mpc_config: MPCConfig | None = None,
        vpp_config: VppConfig | None = None,
    ) -> None:
        self.spec, self.scenario, self.forecaster = spec, scenario, forecaster
        self.mpc = MPCController(forecaster, mpc_config or MPCConfig())
        self.controller = ShieldedController(self.mpc)
        self.controller.reset(scenario)
        self.twin = SteppedTwin(scenario)
        self.limit_kw: float | None = None
        self._flex_tables(vpp_config or VppConfig())

    def _flex_tables(self, vpp: VppConfig) -> None:
        sc = self.scenario
        self._ev_flex = ev_flexibility_kw(sc)
        self._th_flex = thermal_flexibility_kw(sc)
        self.up_cost_eur_per_kwh, self.down_value_eur_per_kwh = class_costs_eur_per_kwh(sc, vpp)

    @property
    def step_index(self) -> int:
        """Steps done in the window (0 .. n_steps)."""
        return self.twin.step - self.scenario.start_step

    @property
    def finished(self) -> bool:
        return self.twin.finished

    def set_limit(self, limit_kw: float | None) -> None:
        """The substation's allocation: an import limit (kW) the next re-plan must respect,
        elastically (exceeding it costs the objective's feeder-excess penalty, so a limit
        below what the feeder can reach still yields a plan)."""
        self.limit_kw = None if limit_kw is None else float(limit_kw)
        self.mpc.options = replace(
            self.mpc.options,
            feeder_limit_kw=self.limit_kw,
            elastic_feeder_limit=self.limit_kw is not None,
        )

    def step(self) -> StepOutput:
        """Run one loop: observe, MPC + shield, apply to the twin (AC power flow)."""
        t0, c0 = time.perf_counter(), time.process_time()
        sc, twin = self.scenario, self.twin
        obs = twin.observe()
        sp = self.controller.act(obs)
        rec = twin.advance(obs, sp)
        plan = self.mpc.last_plan
        k = obs.step - sc.start_step
        dis_kw, ch_kw = battery_flexibility_kw(
            sc.fleet.battery, np.asarray(obs.battery_energy_kwh, float), sc.dt_h
        )
        up = [float(dis_kw.sum()), float(self._ev_flex[0][k]), float(self._th_flex[0][k])]
        down = [float(ch_kw.sum()), float(self._ev_flex[1][k]), float(self._th_flex[1][k])]
        ahead = max(1, int(round(1.0 / sc.dt_h)))
        planned = np.asarray(plan.feeder_kw, float) if plan is not None else np.zeros(0)
        off = obs.step - plan.step if plan is not None else 0
        nxt = planned[off + 1 : off + 1 + ahead]
        planned_kw = float(np.nanmax(nxt)) if len(nxt) else float(rec.feeder_kw)
        vm = rec.vm_pu
        out = StepOutput(
            feeder_id=self.spec.feeder_id,
            step=int(obs.step),
            time=str(obs.time),
            telemetry={
                "feeder_kw": rec.feeder_kw,
                "feeder_kvar": rec.feeder_kvar,
                "vm_min_pu": float(np.nanmin(vm)) if not rec.pf_failed else None,
                "vm_max_pu": float(np.nanmax(vm)) if not rec.pf_failed else None,
                "max_loading_pct": float(np.nanmax(rec.branch_loading_pct))
                if not rec.pf_failed
                else None,
                "pf_failed": bool(rec.pf_failed),
            },
            plan={
                "status": plan.status if plan is not None else "none",
                "replanned": bool(self.mpc._solved_at == obs.step),
                "limit_kw": self.limit_kw,
                **{kind: np.asarray(getattr(sp, kind), float).round(4) for kind in SETPOINT_KINDS},
            },
            flex_up_kw=up,
            flex_down_kw=down,
            planned_import_kw=planned_kw,
            loop_s=0.0,
            cpu_s=0.0,
            extras={
                "up_cost_eur_per_kwh": self.up_cost_eur_per_kwh.tolist(),
                "down_value_eur_per_kwh": self.down_value_eur_per_kwh.tolist(),
            },
        )
        out.loop_s = time.perf_counter() - t0
        out.cpu_s = time.process_time() - c0
        return out

    # -- checkpoints -------------------------------------------------------------------------

    def _shared(self) -> dict[int, str]:
        """Objects the loop references but does not own: restored by reference, not stored."""
        sc = self.scenario
        named: dict[str, object] = {
            "scenario": sc,
            "feeder": sc.feeder,
            "fleet": sc.fleet,
            "config": sc.config,
            "tariff": sc.tariff,
            "index": sc.index,
            "powerflow": sc.powerflow(),
            "forecaster": self.forecaster,
        }
        for name in (
            "base_load_kw",
            "base_load_kvar",
            "pv_per_kwp",
            "pv_orientation",
            "outdoor_temp_c",
            "hvac_mode",
            "ghi_w_m2",
            "carbon_g_per_kwh",
        ):
            named[f"sc.{name}"] = getattr(sc, name)
        if sc.plant is not None:
            named["plant"] = sc.plant
            named["plant.fleet"] = sc.plant.fleet
            named["plant.pv_per_kwp"] = sc.plant.pv_per_kwp
        # the shields' sensitivity caches depend on the network only and are refactorised
        # at every use: a restored loop gets fresh ones
        controller = getattr(self, "controller", None)
        for k, shield in enumerate(_shields(controller)):
            named[f"sensitivity.{k}"] = shield.sens
        return {id(obj): key for key, obj in named.items()}, named

    def checkpoint(self) -> bytes:
        """The loop state as compressed bytes (shared objects by reference)."""
        for log_list in (self.mpc.corrections, self.mpc.solve_log, self.controller.decisions):
            del log_list[:-_LOG_TAIL]
        # forecast rows the loop will never read: intervals older than the newest one
        # telemetry can still deliver (nowcast.ErrorPersistence compares that one at most),
        # and steps from the next due re-plan on (its forecast overwrites them)
        oldest = self.twin.step - 2 - self.scenario.config.telemetry.latency_steps
        replan = self.mpc._solved_at + self.mpc.config.resolve_every
        rows = self.mpc.persist._rows
        for s in [s for s in rows if s < oldest or s >= replan]:
            del rows[s]
        ids, _ = self._shared()
        buf = io.BytesIO()
        pickler = pickle.Pickler(buf, protocol=pickle.HIGHEST_PROTOCOL)
        pickler.persistent_id = lambda obj: ids.get(id(obj))
        pickler.dump(
            {
                "feeder_id": self.spec.feeder_id,
                "twin": self.twin.__dict__,
                "controller": self.controller,
                "limit_kw": self.limit_kw,
            }
        )
        return zlib.compress(buf.getvalue(), 1)

    @classmethod
    def restore(
        cls,
        blob: bytes,
        spec: FeederSpec,
        scenario: Scenario,
        forecaster,
        vpp_config: VppConfig | None = None,
    ) -> FeederRuntime:
        """A runtime continuing from ``checkpoint()`` bytes, on this process's ``scenario``
        and ``forecaster`` (built from the same spec and source as the saved one)."""
        self = cls.__new__(cls)
        self.spec, self.scenario, self.forecaster = spec, scenario, forecaster
        _, named = self._shared()
        pf = scenario.powerflow()
        named.update({f"sensitivity.{k}": GridSensitivity(pf) for k in range(2)})
        unpickler = pickle.Unpickler(io.BytesIO(zlib.decompress(blob)))
        unpickler.persistent_load = named.__getitem__
        state = unpickler.load()
        if state["feeder_id"] != spec.feeder_id:
            msg = f"checkpoint of feeder {state['feeder_id']!r} restored as {spec.feeder_id!r}"
            raise ValueError(msg)
        self.controller = state["controller"]
        self.mpc = self.controller.inner
        self.twin = SteppedTwin.__new__(SteppedTwin)
        self.twin.__dict__.update(state["twin"])
        self.limit_kw = state["limit_kw"]
        self._flex_tables(vpp_config or VppConfig())
        return self


def _shields(controller) -> list:
    """The safety shields of a feeder's controller: the MPC's own AC correction (if on) and
    the shield around it."""
    if controller is None:
        return []
    inner = getattr(controller.inner, "shield", None)
    return [x for x in (inner, controller.shield) if x is not None]
