"""``gridsync serve --devices ocpp,modbus``: the console twin's steps go through simulated
devices and real protocols, into the runtime's ingestion path, bus and audit log."""

from __future__ import annotations

import asyncio
import time

from click.testing import CliRunner

from gridsync.api.auth import TokenRegistry
from gridsync.cli.main import cli
from gridsync.runtime.service import start_service, stop_service
from gridsync.sim.twin import SteppedTwin
from tests.conftest import until


def test_serve_rejects_an_unknown_device_protocol():
    r = CliRunner().invoke(cli, ["serve", "--demo", "--devices", "ocpp,zigbee"])
    assert r.exit_code == 2
    assert "'zigbee' is not a device protocol" in r.output


def test_console_twin_steps_through_the_devices():
    async def main():
        svc = await start_service(
            tokens=TokenRegistry(),
            demo=True,
            days=1,
            step_interval_s=60,
            mqtt_url=None,
            store_url="sqlite:///:memory:",
            devices=("ocpp", "modbus"),
        )
        try:
            session, bridge, rt = svc.console.session, svc.devices, svc.runtime
            first = session.twin.step
            # a reference twin stepped directly with what the console applied
            ref = SteppedTwin(session.scenario, first)
            for _ in range(3):
                await asyncio.to_thread(session.step)
                obs = ref.observe()
                ref.advance(obs, session.last_applied)
            assert await until(lambda: rt.state.counters["readings"] > 0, 10)
            await bridge.audit.flush()
            audit = await asyncio.to_thread(rt.store.audit_log, None, 10_000)
            keys = set(rt.buffer.snapshot(time.time()).keys)
            return session, ref, bridge, audit, keys
        finally:
            await stop_service(svc)

    session, ref, bridge, audit, keys = asyncio.run(main())
    assert session.twin.step == ref.step
    # the console twin and the reference agree up to the protocols' resolution
    assert abs(session.twin.last.feeder_kw - ref.last.feeder_kw) < 1e-2
    assert bridge.stats.steps == 3
    assert bridge.modbus.sink.accepted == 3 * (len(bridge.batteries) + len(bridge.pv))
    assert {"cp-0000/energy", "bat-0000/soc", "pv-0000/p"} <= keys
    actions = {a["action"] for a in audit}
    assert {"ocpp.connect", "ocpp.SetChargingProfile", "modbus.write"} <= actions
