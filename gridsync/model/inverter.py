"""PV inverter voltage functions of IEEE 1547-2018: Volt-VAR, Volt-Watt and fixed power factor,
with the inverter's apparent-power (kVA) rating limiting active and reactive power together.

Conventions: voltages in p.u. at the inverter's bus, reactive power in the GENERATOR
convention (``q_kvar > 0`` injects, ``< 0`` absorbs, as the standard's curves are drawn),
active power as PV output (kW >= 0). Volt-VAR set-points are fractions of the nameplate
apparent power; Volt-Watt limits are fractions of the rated active power (IEEE 1547-2018
clauses 5.3.3 and 5.4.2, default settings of Tables 8 and 10).

``inverter_output`` is the static curve: the twin solves the steady state of inverters and
power flow around it (``gridsync.sim.inverters``), since at 15-minute steps the inverter's
open-loop response time (seconds) has long elapsed.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

InverterMode = Literal["unity", "fixed-pf", "volt-var", "volt-watt", "volt-var+volt-watt"]

# IEEE 1547-2018 Table 8, default Volt-VAR curves: (V1..V4 in p.u., Q1..Q4 as a fraction of
# the nameplate apparent power, + = injection). Category A has no deadband.
VOLT_VAR_CURVES: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "A": ((0.90, 1.00, 1.00, 1.10), (0.25, 0.0, 0.0, -0.25)),
    "B": ((0.92, 0.98, 1.02, 1.08), (0.44, 0.0, 0.0, -0.44)),
}
# IEEE 1547-2018 Table 10, default Volt-Watt curve (both categories): full rated power up to
# V1 = 1.06 p.u., then linearly down to P2 = 0.2 of rated at V2 = 1.10 p.u. (the P2 of a DER
# that cannot absorb active power).
VOLT_WATT_CURVE: tuple[tuple[float, float], tuple[float, float]] = ((1.06, 1.10), (1.0, 0.2))


class InverterConfig(BaseModel):
    """How the PV inverters respond to their terminal voltage (``[fleet.pv.inverter]``).

    ``kva_per_kwp``: the inverter's apparent-power rating per kWp of modules; ``priority``:
    which of P or Q yields when P and Q together exceed it (``reactive``: Q from the curve is
    kept and P is cut; ``active``: P is kept and Q is cut).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    mode: InverterMode = "unity"
    category: Literal["A", "B"] = Field(
        "B", description="IEEE 1547-2018 normal-performance category"
    )
    power_factor: float = Field(
        0.95, ge=0.8, le=1.0, description="fixed-pf mode: the displacement power factor"
    )
    power_factor_absorbing: bool = Field(True, description="fixed-pf mode: absorb (under-excited)")
    kva_per_kwp: float = Field(1.0, gt=0, le=2.0)
    priority: Literal["reactive", "active"] = "reactive"

    @property
    def active(self) -> bool:
        """Whether the mode does anything beyond unity power factor."""
        return self.mode != "unity"


VOLT_VAR_B = InverterConfig(mode="volt-var", category="B")
UNITY = InverterConfig()


def volt_var_frac(v_pu: np.ndarray, category: str) -> np.ndarray:
    """Reactive power set-point of the default Volt-VAR curve of ``category`` as a fraction of
    the nameplate apparent power (+ = injection); flat beyond V1 and V4."""
    volts, q = VOLT_VAR_CURVES[category]
    return np.interp(v_pu, volts, q)


def volt_watt_frac(v_pu: np.ndarray) -> np.ndarray:
    """Active power limit of the default Volt-Watt curve as a fraction of rated active power."""
    volts, p = VOLT_WATT_CURVE
    return np.interp(v_pu, volts, p)


def inverter_output(
    cfg: InverterConfig, p_avail_kw: np.ndarray, peak_kw: np.ndarray, v_pu: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(active kW, reactive kvar injected) of PV inverters with ``p_avail_kw`` from their
    modules, at terminal voltage ``v_pu``, in mode ``cfg.mode``, inside the kVA rating
    ``cfg.kva_per_kwp * peak_kw`` (rated active power: the smaller of kWp and kVA)."""
    p = np.asarray(p_avail_kw, dtype=float)
    s_kva = cfg.kva_per_kwp * np.asarray(peak_kw, dtype=float)
    v = np.asarray(v_pu, dtype=float)
    if cfg.mode == "unity":
        return np.minimum(p, s_kva), np.zeros_like(p)
    if cfg.mode == "fixed-pf":
        sign = -1.0 if cfg.power_factor_absorbing else 1.0
        q = sign * p * np.tan(np.arccos(cfg.power_factor))
        scale = np.minimum(
            1.0, np.divide(s_kva, np.hypot(p, q), out=np.ones_like(p), where=np.hypot(p, q) > 0)
        )
        return p * scale, q * scale  # both scaled: the power factor is what is fixed
    if "volt-watt" in cfg.mode:
        p = np.minimum(p, volt_watt_frac(v) * np.minimum(peak_kw, s_kva))
    q = volt_var_frac(v, cfg.category) * s_kva if "volt-var" in cfg.mode else np.zeros_like(p)
    if cfg.priority == "reactive":
        p = np.minimum(p, np.sqrt(np.maximum(s_kva**2 - q**2, 0.0)))
    else:
        p = np.minimum(p, s_kva)
        q_max = np.sqrt(np.maximum(s_kva**2 - p**2, 0.0))
        q = np.clip(q, -q_max, q_max)
    return p, q
