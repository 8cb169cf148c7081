"""The whole hardware-in-the-loop path on loopback: twin -> simulated chargers and inverters
-> OCPP / Modbus -> controller -> OCPP / Modbus -> devices -> twin, against the same twin
stepped directly (the reference)."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from gridsync.bus import InProcessBus
from gridsync.data.ingest import Ingestor
from gridsync.devices.loop import DeviceBridge, ProtocolTwin, parse_protocols
from gridsync.sim.registry import make_controller
from gridsync.sim.twin import SteppedTwin

STEPS = 6


def _run_direct(scenario, start):
    twin, ctl = SteppedTwin(scenario, start), make_controller("smart-rule")
    ctl.reset(scenario)
    out = []
    for _ in range(STEPS):
        obs = twin.observe()
        out.append(twin.advance(obs, ctl.act(obs)))
    return out


def test_protocol_loop_reproduces_the_direct_twin(scenario_1day_plant):
    """Six afternoon steps (cars arriving and charging, batteries running) of the plant with the
    smart-rule controller: feeder power, EV and battery power per asset equal the direct run
    up to the protocols' resolution (0.1 W in OCPP, 0.01 % in SunSpec); every reading the
    devices sent was accepted by the ingestion path."""
    sc = scenario_1day_plant
    start = sc.start_step + 62  # 15:30: cars arriving and charging, batteries active
    direct = _run_direct(sc, start)

    async def main():
        bus = InProcessBus()
        await bus.connect()
        dead: list = []

        async def keep(msg):
            dead.append(msg.data)

        await bus.subscribe("deadletter", keep, max_deliver=1)
        bridge = DeviceBridge(sc, "ocpp,modbus", ingest=Ingestor(bus).submit)
        await bridge.start()
        try:
            twin = ProtocolTwin(SteppedTwin(sc, start), bridge, asyncio.get_running_loop())
            ctl = make_controller("smart-rule")
            ctl.reset(sc)

            def run():
                recs = []
                for _ in range(STEPS):
                    obs = twin.observe()
                    recs.append(twin.advance(obs, ctl.act(obs)))
                return recs

            recs = await asyncio.to_thread(run)
            return recs, bridge, dead
        finally:
            await bridge.stop()
            await bus.close()

    recs, bridge, dead = asyncio.run(main())
    for d, r in zip(direct, recs, strict=True):
        assert r.feeder_kw == pytest.approx(d.feeder_kw, rel=1e-4, abs=1e-3)
        np.testing.assert_allclose(r.ev_kw, d.ev_kw, atol=1e-3)
        np.testing.assert_allclose(r.battery_kw, d.battery_kw, atol=2e-3)
    assert sum(np.abs(d.ev_kw).sum() > 0 for d in direct) >= 3  # the EV path was exercised
    assert sum(np.abs(d.battery_kw).sum() > 0 for d in direct) >= 3
    st = bridge.stats.summary()
    assert st["profiles_accepted"] > 0 and st["profiles_failed"] == 0
    assert st["modbus_writes"] > 0 and st["write_errors"] == 0
    assert bridge.csms.sink.rejected == 0 and bridge.modbus.sink.rejected == 0
    n_ev, n_inv = len(bridge.chargers), len(bridge.batteries) + len(bridge.pv)
    assert bridge.csms.sink.accepted >= STEPS * n_ev  # one meter message per charger and step
    assert bridge.modbus.sink.accepted == STEPS * n_inv
    assert dead == []


def test_protocol_names_are_checked():
    assert parse_protocols("OCPP, modbus") == ("ocpp", "modbus")
    with pytest.raises(ValueError, match="'bacnet' is not a device protocol"):
        parse_protocols("ocpp,bacnet")


def test_ev_schedule_continues_with_the_plan():
    """Hand case: setpoint 7 kW now, the plan (from step 10) has 5, 3, 0 kW at steps 11-13
    for charger 1; a non-V2G charger never gets a negative limit."""
    from types import SimpleNamespace

    from gridsync.devices.loop import ev_schedule

    ev_kw = np.array([[9.0, 6.0], [9.0, 5.0], [9.0, 3.0], [9.0, -2.0]])
    plan = SimpleNamespace(step=10, ev_kw=ev_kw, covers=lambda s: 10 <= s < 14)
    assert ev_schedule(7.0, plan, 10, 1, 900.0, 4, v2g=True) == [
        (0, 7.0),
        (900, 5.0),
        (1800, 3.0),
        (2700, -2.0),
    ]
    assert ev_schedule(7.0, plan, 12, 1, 900.0, 4, v2g=False) == [(0, 7.0), (900, 0.0)]
    assert ev_schedule(-1.0, None, 12, 1, 900.0, 4, v2g=False) == [(0, 0.0)]
