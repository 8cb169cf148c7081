"""Controller registry by name (``gridsync simulate --controller NAME``, the live runtime, DR runs).

It lives below the agents so that agents and faces alike can look a controller up without
importing ``gridsync.cli``. Entries are import paths so that heavy controllers load only when
asked for.
"""

from __future__ import annotations

from importlib import import_module

CONTROLLERS: dict[str, tuple[str, str]] = {
    "tou+dr": (
        "gridsync.dr.twin:tou_dr",
        "tou devices plus the demand-response agent (events on forecast feeder peaks)",
    ),
    "uncontrolled+dr": (
        "gridsync.dr.twin:uncontrolled_dr",
        "uncontrolled devices plus the demand-response agent",
    ),
    "uncontrolled": (
        "gridsync.dispatch.rules:UncontrolledController",
        "EVs charge on arrival, batteries self-consume PV",
    ),
    "volt-var": (
        "gridsync.dispatch.rules:VoltVarController",
        "uncontrolled devices, every PV inverter on the IEEE 1547-2018 Category B Volt-VAR curve",
    ),
    "tou": ("gridsync.dispatch.rules:TouController", "rule-based time-of-use shifting"),
    "smart-rule": (
        "gridsync.dispatch.smart_rule:SmartRuleController",
        "home energy manager rules: self-consumption + peak shaving, EVs spread to departure, "
        "pre-heating, §14a dimming and the 70 % PV limit on the last measured interval",
    ),
    "mpc": (
        "gridsync.dispatch.mpc:MPCController",
        "network-aware 24 h receding-horizon optimizer (HiGHS) on seasonal-naive forecasts, "
        "corrected every step against metered load/PV and an AC check; regulates voltage with "
        "inverter reactive power and, on a dispatch-controlled OLTC, the tap position",
    ),
    "mpc-p": (
        "gridsync.dispatch.mpc:mpc_p",
        "mpc restricted to active power (inverters at unity power factor, OLTC held)",
    ),
    "mpc-ageing": (
        "gridsync.dispatch.degradation:mpc_ageing",
        "mpc pricing battery and V2G ageing by the cell model (cycle depth, calendar SoC) "
        "instead of a constant per kWh",
    ),
    "oracle": (
        "gridsync.dispatch.oracle:PerfectForesightBound",
        "one full-window LP with perfect information: a lower bound on "
        "total_cost_incl_penalties for the nominal model",
    ),
    "oracle-receding": (
        "gridsync.dispatch.mpc:RecedingOracleController",
        "the receding 24 h optimizer with perfect forecasts (not a bound)",
    ),
    "mpc-agg": (
        "gridsync.dispatch.aggregate:mpc_agg",
        "mpc on per-bus virtual batteries/heat pumps/PV, disaggregated per asset (for big fleets)",
    ),
}


SHIELD_SUFFIX = "+shield"

# Controllers that need the balanced twin (inverter reactive power is not in the three-phase one).
BALANCED_ONLY = frozenset({"volt-var"})

# Every controller can run behind the safety shield (limits, SoC, ramps, AC voltage/loading).
CONTROLLERS.update(
    {
        f"{name}{SHIELD_SUFFIX}": ("", f"{name} behind the safety shield")
        for name in list(CONTROLLERS)
    }
)


RL_PREFIX = "rl:"


def is_controller_name(name: str) -> bool:
    """A registered name, or ``rl:<checkpoint>`` (a trained policy, see ``gridsync.learning``)
    with or without ``+shield``."""
    return name in CONTROLLERS or name.removesuffix(SHIELD_SUFFIX).startswith(RL_PREFIX)


def make_controller(name: str):
    """The controller registered as ``name``; ``rl:<checkpoint>`` plays a trained policy from
    a checkpoint directory or registry name; any ``+shield`` suffix puts it behind the shield."""
    base = name.removesuffix(SHIELD_SUFFIX)
    if base.startswith(RL_PREFIX):
        from gridsync.learning.policy import RLController

        ctrl = RLController(base.removeprefix(RL_PREFIX))
        if name.endswith(SHIELD_SUFFIX):
            from gridsync.safety.shield import ShieldedController

            return ShieldedController(ctrl)
        return ctrl
    if name not in CONTROLLERS:
        msg = f"unknown controller {name!r}; choose from {', '.join(sorted(CONTROLLERS))}"
        raise ValueError(msg)
    if name.endswith(SHIELD_SUFFIX):
        from gridsync.safety.shield import ShieldedController

        return ShieldedController(make_controller(name.removesuffix(SHIELD_SUFFIX)))
    module, _, attr = CONTROLLERS[name][0].partition(":")
    return getattr(import_module(module), attr)()
