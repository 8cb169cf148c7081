"""On-load tap changer (OLTC) on the feeder transformer: a local controller that keeps the
voltage of the transformer's LV bus inside a band, one tap step at a time after a time delay.

Settings as in the field (and pandapower's ``DiscreteTapControl``): band ``[vm_lower_pu,
vm_upper_pu]`` (wider than one tap step, else the tap hunts), tap range and step (default:
the network's transformer data), and ``time_delay_s``, how long the voltage must stay out of
the band before each operation. At a step of ``resolution_s`` the changer can make up to
``resolution_s / time_delay_s`` operations in one twin step (the voltage is re-solved after
each); with a delay longer than the step it acts after enough consecutive out-of-band steps.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class OLTCConfig(BaseModel):
    """``[grid.oltc]``: the feeder transformer's tap changer (off unless ``enabled``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = False
    trafo: int | None = Field(None, description="pandapower trafo index (default: the first)")
    vm_lower_pu: float = Field(0.98, gt=0.8, lt=1.2)
    vm_upper_pu: float = Field(1.02, gt=0.8, lt=1.2)
    tap_min: int | None = Field(None, description="lowest position (default: the network's)")
    tap_max: int | None = Field(None, description="highest position (default: the network's)")
    tap_step_percent: float | None = Field(None, gt=0, le=10, description="default: network's")
    time_delay_s: float = Field(60.0, gt=0, description="out-of-band time before each operation")
    control: Literal["local", "dispatch"] = Field(
        "local",
        description="local: the band controller above; dispatch: the tap moves only when a "
        "controller's setpoint commands a position (SCADA remote control, band unused)",
    )
    max_operations_per_day: int = Field(
        30, ge=0, description="tap-wear limit a dispatching controller must respect"
    )

    @model_validator(mode="after")
    def _band(self) -> OLTCConfig:
        if self.vm_upper_pu <= self.vm_lower_pu:
            msg = f"vm_upper_pu ({self.vm_upper_pu}) must be > vm_lower_pu ({self.vm_lower_pu})"
            raise ValueError(msg)
        if self.tap_min is not None and self.tap_max is not None and self.tap_max < self.tap_min:
            msg = f"tap_max ({self.tap_max}) must be >= tap_min ({self.tap_min})"
            raise ValueError(msg)
        return self


class TapChanger:
    """The tap position and the time out of band of one OLTC; ``operations`` counts steps made.

    ``raise_lowers_lv``: whether a higher tap position lowers the LV voltage (tap on the HV side
    with a positive step, the usual case)."""

    def __init__(
        self,
        cfg: OLTCConfig,
        tap_pos: int,
        tap_min: int,
        tap_max: int,
        raise_lowers_lv: bool,
        resolution_s: float,
    ) -> None:
        self.cfg, self.tap_pos = cfg, int(tap_pos)
        self.tap_min, self.tap_max = int(tap_min), int(tap_max)
        self.sign = 1 if raise_lowers_lv else -1
        self.resolution_s = float(resolution_s)
        self.pending_s = 0.0
        self.operations = 0

    def direction(self, vm_lv_pu: float) -> int:
        """Tap change that moves ``vm_lv_pu`` toward the band (0 inside it or at the range end)."""
        if vm_lv_pu > self.cfg.vm_upper_pu:
            move = self.sign
        elif vm_lv_pu < self.cfg.vm_lower_pu:
            move = -self.sign
        else:
            return 0
        return move if self.tap_min <= self.tap_pos + move <= self.tap_max else 0

    def step(self, solve_at, max_ops: int | None = None):
        """Solve the step (``solve_at(tap_pos) -> (result, vm_lv_pu)``) and change taps while the
        LV voltage is out of band and the time delay allows; returns the final result."""
        res, vm = solve_at(self.tap_pos)
        if self.direction(vm) == 0:
            self.pending_s = 0.0
            return res
        self.pending_s += self.resolution_s
        ops = 0
        while self.pending_s >= self.cfg.time_delay_s and (max_ops is None or ops < max_ops):
            move = self.direction(vm)
            if move == 0:
                self.pending_s = 0.0
                break
            self.tap_pos += move
            self.operations += 1
            ops += 1
            self.pending_s -= self.cfg.time_delay_s
            res, vm = solve_at(self.tap_pos)
        return res
