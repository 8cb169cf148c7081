"""The rest of the twin behind the market participants' meters: EV, heat-pump and appliance
load per bus, stepped on the digital twin.

The market trades inflexible load, PV and batteries; every other asset a customer owns still
draws power at the same bus and must be on the power flow that checks the trades. Those assets
follow their own controller (by default the ``uncontrolled`` rules: EVs charge on arrival,
appliances start when allowed, thermostats hold the band), stepped on ``SteppedTwin`` with the
twin's own physics; batteries are held idle there because the market runs them.
"""

from __future__ import annotations

import numpy as np

from gridsync.sim.twin import SteppedTwin, bus_sum


def asset_load_by_bus_kw(scenario, controller=None) -> np.ndarray:
    """EV + heat-pump + appliance consumption per bus (n_steps, n_bus, kW) over the window.

    ``controller`` drives those assets (``UncontrolledController`` when None); its battery
    setpoints are replaced by zero.
    """
    if controller is None:
        from gridsync.dispatch.rules import UncontrolledController

        controller = UncontrolledController()
    f, n_bus = scenario.fleet, scenario.feeder.n_bus
    twin = SteppedTwin(scenario)
    controller.reset(scenario)
    out = np.zeros((scenario.n_steps, n_bus))
    for i in range(scenario.n_steps):
        obs = twin.observe()
        sp = controller.act(obs)
        sp.battery_kw = np.zeros(len(f.battery))
        rec = twin.advance(obs, sp)
        out[i] = (
            bus_sum(f.ev.bus, rec.ev_kw, n_bus)
            + bus_sum(f.thermal.bus, rec.thermal_kw, n_bus)
            + bus_sum(f.deferrable.bus, rec.deferrable_kw, n_bus)
        )
    return out


def lagged(values: np.ndarray, lag: int) -> np.ndarray:
    """``values`` delayed by ``lag`` rows, zeros where the window has no earlier telemetry."""
    out = np.zeros_like(values)
    if lag < len(values):
        out[lag:] = values[: len(values) - lag]
    return out
