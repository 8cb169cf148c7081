"""Admittance models of a feeder at each tap position of one transformer, built on first use.

A tap changes the transformer's ratio and so its branch stamps in the admittance matrix; the
feeder model is rebuilt through pandapower's converter with the tap set (about 0.2 s on a
111-bus feeder, once per position visited) rather than patched, so the transformer model
stays pandapower's.
"""

from __future__ import annotations

import copy
import dataclasses

from gridsync.grid.powerflow import PowerFlowModel, build_powerflow_model
from gridsync.model.network import Feeder
from gridsync.model.tap_changer import OLTCConfig, TapChanger


class TapModels:
    """``model(tap_pos)``: the feeder's power-flow model with transformer ``trafo`` at
    ``tap_pos``; ``lv_pos``: the feeder bus position of its LV side."""

    def __init__(self, feeder: Feeder, cfg: OLTCConfig) -> None:
        net = copy.deepcopy(feeder.net)
        if not len(net.trafo):
            msg = "grid.oltc.enabled = true, but the network has no two-winding transformer"
            raise ValueError(msg)
        self.trafo = int(net.trafo.index[0] if cfg.trafo is None else cfg.trafo)
        if self.trafo not in net.trafo.index:
            msg = f"grid.oltc.trafo = {cfg.trafo} is not a transformer of the network"
            raise ValueError(msg)
        t = net.trafo.loc[self.trafo]
        step = cfg.tap_step_percent if cfg.tap_step_percent is not None else t.tap_step_percent
        if not step or step != step:
            msg = f"transformer {self.trafo} has no tap step: set grid.oltc.tap_step_percent"
            raise ValueError(msg)
        if cfg.vm_upper_pu - cfg.vm_lower_pu <= step / 100:
            msg = (
                f"grid.oltc band [{cfg.vm_lower_pu}, {cfg.vm_upper_pu}] p.u. is not wider than one "
                f"tap step ({step} %): the tap would hunt; widen the band"
            )
            raise ValueError(msg)
        net.trafo.loc[self.trafo, "tap_step_percent"] = step
        net.trafo.loc[self.trafo, "tap_changer_type"] = "Ratio"
        for key, value in (("tap_min", cfg.tap_min), ("tap_max", cfg.tap_max)):
            if value is not None:
                net.trafo.loc[self.trafo, key] = value
        if "tap_neutral" in net.trafo and net.trafo.tap_neutral.isna().loc[self.trafo]:
            net.trafo.loc[self.trafo, "tap_neutral"] = 0
        t = net.trafo.loc[self.trafo]
        self.tap_min, self.tap_max = int(t.tap_min), int(t.tap_max)
        self.tap_init = int(0 if t.tap_pos != t.tap_pos else t.tap_pos)
        self.raise_lowers_lv = (t.tap_side == "hv") == (step > 0)
        self.lv_pos = int(feeder.bus_pos([int(t.lv_bus)])[0])
        self._feeder, self._net = feeder, net
        self._models: dict[int, PowerFlowModel] = {}

    def model(self, tap_pos: int) -> PowerFlowModel:
        if tap_pos not in self._models:
            net = copy.deepcopy(self._net)
            net.trafo.loc[self.trafo, "tap_pos"] = tap_pos
            self._models[tap_pos] = build_powerflow_model(
                dataclasses.replace(self._feeder, net=net)
            )
        return self._models[tap_pos]

    def changer(self, cfg: OLTCConfig, resolution_s: float) -> TapChanger:
        return TapChanger(
            cfg, self.tap_init, self.tap_min, self.tap_max, self.raise_lowers_lv, resolution_s
        )


class DispatchedTap:
    """A dispatch-controlled OLTC (``grid.oltc.control = "dispatch"``) as a controller keeps
    it: the position it dispatched last, its operations per day against the tap-wear limit
    ``max_operations_per_day``, and the feeder's power-flow model at any position."""

    def __init__(self, scenario) -> None:
        cfg = scenario.config.grid.oltc
        self.models = TapModels(scenario.feeder, cfg)
        self.tap_pos = self.models.tap_init
        self.max_ops_per_day = cfg.max_operations_per_day
        self.steps_per_day = scenario.steps_per_day
        self.ops_by_day: dict[int, int] = {}

    @property
    def lowering_move(self) -> int:
        """The tap change (+1 or -1) that lowers the LV voltages."""
        return 1 if self.models.raise_lowers_lv else -1

    def model(self, tap_pos: int) -> PowerFlowModel:
        return self.models.model(tap_pos)

    def ops_left(self, step: int) -> int:
        return self.max_ops_per_day - self.ops_by_day.get(step // self.steps_per_day, 0)

    def allowed(self, step: int, tap_pos: int) -> bool:
        """Whether dispatching ``tap_pos`` at ``step`` stays inside the tap range and the
        day's wear budget (operations counted from the position dispatched last)."""
        in_range = self.models.tap_min <= tap_pos <= self.models.tap_max
        return in_range and abs(tap_pos - self.tap_pos) <= self.ops_left(step)

    def dispatch(self, step: int, tap_pos: int) -> None:
        day = step // self.steps_per_day
        self.ops_by_day[day] = self.ops_by_day.get(day, 0) + abs(tap_pos - self.tap_pos)
        self.tap_pos = int(tap_pos)
