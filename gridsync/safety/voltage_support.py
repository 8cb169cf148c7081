"""Voltage support in the safety shield: inverter reactive power and the OLTC come before
active power.

The shield corrects a grid violation in stages, each tried until the violation is gone or the
stage has nothing left to give: ``reactive`` (the PV and battery inverters' Q within their kVA
rating; voltage violations only), ``tap`` (one step of a dispatch-controlled OLTC within the
day's tap-wear budget; voltage violations only), ``curtailment`` (PV active power: more
curtailment against over-voltage, less against under-voltage and overload), then ``load``
(batteries, EVs, appliances, heat pumps). A stage takes part only where the controller
dispatches that actuator: reactive power only for setpoints that carry ``pv_kvar`` or
``battery_kvar``, the tap only for setpoints that carry ``tap_pos``, so an active-power-only
controller is corrected with active power only.
"""

from __future__ import annotations

import numpy as np

from gridsync.grid.taps import DispatchedTap
from gridsync.safety.sensitivity import GridSensitivity
from gridsync.sim.forecasts import StepEstimate
from gridsync.sim.inverters import kva_limited_kvar

REACTIVE_KINDS = ("pv_kvar", "battery_kvar")
STAGES = ("reactive", "tap", "curtailment", "load")
# per stage: the kinds that (raise, lower) a bus's net consumption; reactive kinds are
# injections, so raising consumption lowers them
STAGE_KINDS = {
    "reactive": (REACTIVE_KINDS, REACTIVE_KINDS),
    "curtailment": (("pv_curtail_kw",), ("pv_curtail_kw",)),
    "load": (("battery_kw", "ev_kw"), ("battery_kw", "ev_kw", "deferrable_kw", "thermal_kw")),
}


def consumption_sign(kind: str) -> float:
    """+1 for kinds that add to a bus's consumption, -1 for injections (reactive power)."""
    return -1.0 if kind in REACTIVE_KINDS else 1.0


def kvar_bounds(
    fleet, pv_kva: np.ndarray, pv_kw: np.ndarray, battery_kw: np.ndarray
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """(lo, hi) kvar injected per PV and battery inverter: what the kVA rating leaves beside
    the active power it runs at."""
    out = {}
    for kind, s_kva, p_kw in (
        ("pv_kvar", pv_kva, pv_kw),
        ("battery_kvar", fleet.battery.power_kw, battery_kw),
    ):
        room = kva_limited_kvar(np.full(len(s_kva), np.inf), p_kw, s_kva)
        out[kind] = (-room, room)
    return out


class VoltageSupport:
    """The shield's reactive-power and tap stages (mixed into ``SafetyShield``, whose power
    flow, sensitivities and limits they use): ``taps`` is the dispatch-controlled OLTC or
    None, ``_pv_kva`` the PV inverters' ratings."""

    taps: DispatchedTap | None

    def _kvar_bounds(self, est: StepEstimate, sp: dict) -> dict:
        return kvar_bounds(
            self.fleet, self._pv_kva, est.pv_available_kw - sp["pv_curtail_kw"], sp["battery_kw"]
        )

    def _use_tap(self, tap_pos: int | None) -> None:
        """Solve at the dispatched tap position (a dispatch-controlled OLTC only)."""
        self._tap = tap_pos
        if self.taps is None or tap_pos is None:
            return
        self._set_tap_model(int(tap_pos))

    def _set_tap_model(self, tap_pos: int) -> None:
        self._tap = tap_pos
        self.pf = self.taps.model(tap_pos)
        if tap_pos not in self._sens_by_tap:
            self._sens_by_tap[tap_pos] = GridSensitivity(self.pf)
        self.sens = self._sens_by_tap[tap_pos]

    def _tap_step(self, step: int, violation, est, sp, res, v):
        """One tap step against a voltage violation, kept if the worst violation shrinks and
        the day's tap-wear budget allows it; returns (moved, result, voltages)."""
        if self.taps is None or violation[0] not in ("voltage_high", "voltage_low"):
            return False, res, v
        move = self.taps.lowering_move * (1 if violation[0] == "voltage_high" else -1)
        old = self._tap
        if not self.taps.allowed(step, old + move):
            return False, res, v
        self._set_tap_model(old + move)
        new_res, new_v = self._flow(est, sp)
        if self._badness(new_res) < self._badness(res):
            return True, new_res, new_v
        self._set_tap_model(old)
        self._v = v
        return False, res, v

    def _badness(self, res) -> float:
        """The worst violation of ``res`` in the units ``_worst_violation`` ranks by."""
        vm, ld = res.vm_pu, res.branch_loading_pct
        lo = np.where(np.arange(self.n_bus) == self.slack, np.inf, vm).min()
        return max(
            (vm.max() - self.v_hi) / 0.01,
            (self.v_lo - lo) / 0.01,
            ld.max() - self.loading_hi,
            0.0,
        )
