"""Modbus TCP / SunSpec on loopback with the real stack: GridSync's client against simulated
inverters (pymodbus servers holding SunSpec register maps)."""

from __future__ import annotations

import asyncio
import struct

import pytest

from gridsync.bus import InProcessBus
from gridsync.data.ingest import Ingestor
from gridsync.devices.modbus_client import DeviceError, ModbusFleet, SunSpecClient
from gridsync.devices.modbus_sim import SimInverter
from gridsync.devices.sunspec import MODELS, SunSpecMap
from gridsync.devices.telemetry import ReadingSink
from tests.conftest import until


async def _device(**kw):
    alerts: list[dict] = []

    async def alert(body):
        alerts.append(body)

    inv = SimInverter("inv-1", pv_kw=8.0, battery_kwh=10.0, battery_kw=5.0, **kw)
    await inv.start()
    client = SunSpecClient("inv-1", "127.0.0.1", inv.port, alert=alert)
    await client.connect()
    return inv, client, alerts


async def _close(inv, client):
    client.close()
    await inv.stop()


def test_register_addresses_follow_the_sunspec_models():
    """Hand-counted from the SunSpec model definitions: 'SunS' at 40000-40001, model 1 (L=66)
    header at 40002, so model 103 starts at 40072 and its W (offset 12) is at 40084; model
    802 (L=62) has SoC at offset 9 and W_SF as its last point."""
    m = SunSpecMap.layout([1, 103, 120, 121, 122, 123, 124, 802])
    assert m.starts[1] == 40004
    assert m.starts[103] == 40072
    assert m.address(103, "W") == 40084
    assert m.starts[120] == 40072 + 50 + 2
    assert MODELS[802][1]["SoC"].offset == 9
    assert MODELS[802][1]["W_SF"].offset == 61
    assert MODELS[123][1]["WMaxLimPct"].offset == 3
    assert MODELS[124][1]["InWRte"].offset == 11
    for mid, (length, points) in MODELS.items():
        last = max(points.values(), key=lambda p: p.offset)
        assert last.offset + last.size <= length, mid


def test_discovery_and_poll_decode_a_hand_built_register_image():
    """The client knows nothing of the simulator's layout: overwrite the device with a hand
    built image (only model 103, W = -1234 x 10^-1 W, VAr = 50, PhVphA = 2346 x 10^-1 V) and
    the poll must decode it: p = +123.4 W (load convention), q = -50 var."""

    async def main():
        inv = SimInverter("inv-h", pv_kw=5.0)
        words = [0x5375, 0x6E53, 103, 50] + [0xFFFF] * 50 + [0xFFFF, 0]
        body = 4
        words[body + 8] = 2346  # PhVphA
        words[body + 11] = (-1) & 0xFFFF  # V_SF
        words[body + 12] = (-1234) & 0xFFFF  # W
        words[body + 13] = (-1) & 0xFFFF  # W_SF
        words[body + 18] = 50  # VAr
        words[body + 19] = 0  # VAr_SF
        inv.regs[: len(words)] = words
        await inv.start()
        c = SunSpecClient("inv-h", "127.0.0.1", inv.port)
        try:
            await c.connect()
            return c.models, await c.poll()
        finally:
            c.close()
            await inv.stop()

    models, rows = asyncio.run(main())
    assert models == {103: 40004}
    got = {q: (u, v) for _, q, u, v, _ in rows}
    assert got["p"] == ("W", pytest.approx(123.4))
    assert got["q"] == ("var", pytest.approx(-50.0))
    assert "v" not in got  # no model 121, so no reference voltage: no per-unit reading


def test_controls_round_trip_and_the_device_runs_them():
    async def main():
        inv, c, alerts = await _device()
        try:
            pv = await c.set_pv_limit_pct(62.5)
            pf = await c.set_power_factor(0.95)
            bat = await c.set_battery_kw(-3.3)
            return pv, pf, bat, inv.pv_limit_kw(), inv.battery_kw(), alerts, c.audit
        finally:
            await _close(inv, c)

    pv, pf, bat, limit_kw, battery_kw, alerts, audit = asyncio.run(main())
    assert (pv.status, pf.status, bat.status) == ("ok", "ok", "ok")
    assert limit_kw == pytest.approx(0.625 * 8.0)
    assert pf.readback["OutPFSet"] == pytest.approx(0.95)
    assert battery_kw == pytest.approx(-3.3)
    assert bat.readback == {"StorCtl_Mod": 3.0, "InWRte": -66.0, "OutWRte": 66.0}
    assert alerts == []
    assert [e["detail"]["status"] for e in audit.find("modbus.write")] == ["ok"] * 3


def test_a_write_the_device_clamps_raises_an_alert():
    """The BMS derates the battery to 2 kW: a 4 kW charge request is held at 40 % of 5 kW in
    the register, so the read-back differs, the result and the audit say so, and an alert
    names both values. The battery runs what the register holds."""

    async def main():
        inv, c, alerts = await _device()
        inv.bms_limit_kw = 2.0
        try:
            res = await c.set_battery_kw(4.0)
            return res, inv.battery_kw(), alerts, c.audit.find("modbus.write")
        finally:
            await _close(inv, c)

    res, battery_kw, alerts, audit = asyncio.run(main())
    assert res.status == "readback_differs"
    assert res.written["InWRte"] == pytest.approx(80.0)
    assert res.readback["InWRte"] == pytest.approx(40.0)
    assert battery_kw == pytest.approx(2.0)
    assert [a["kind"] for a in alerts] == ["setpoint_readback"]
    assert audit[-1]["detail"]["status"] == "readback_differs"


def test_polls_go_through_ingestion_and_impossible_values_are_dead_lettered():
    async def main():
        bus = InProcessBus()
        await bus.connect()
        got: dict[str, list] = {"telemetry": [], "deadletter": []}

        async def keep(msg):
            got[msg.topic].append(msg.data)

        for topic in got:
            await bus.subscribe(topic, keep, max_deliver=1)
        inv, c, _ = await _device()
        fleet = ModbusFleet({"inv-1": c}, ReadingSink(Ingestor(bus).submit, origin="modbus"))
        try:
            inv.measure(pv_kw=6.0, battery_kw=1.5, soc_frac=0.25, v_pu=1.03)
            n_ok = await fleet.poll_all()
            inv.measure(pv_kw=6.0, battery_kw=1.5, soc_frac=0.25, v_pu=2.6)  # 598 V: broken
            n_bad = await fleet.poll_all()
            await until(lambda: got["telemetry"] and got["deadletter"], 5)
            return n_ok, n_bad, got
        finally:
            await _close(inv, c)
            await bus.close()

    n_ok, n_bad, got = asyncio.run(main())
    assert (n_ok, n_bad) == (4, 0)
    tm = got["telemetry"][0]
    values = dict(zip(tm["quantity"], tm["value"], strict=True))
    assert values["p"] == pytest.approx(-4.5)  # 6 kW PV - 1.5 kW into the battery, exported
    assert values["v"] == pytest.approx(1.03)
    assert values["soc"] == pytest.approx(0.25)
    assert "outside" in got["deadletter"][0]["reason"]


def _frame(tid: int, pdu: bytes, unit: int = 1) -> bytes:
    return struct.pack(">HHHB", tid, 0, len(pdu) + 1, unit) + pdu


def test_malformed_frames_do_not_break_the_device_or_the_client():
    """Garbage bytes, an unknown function code and a read outside the map: the server answers
    or drops them and still serves a valid read; the client turns an out-of-map read into a
    DeviceError and refuses a device without the SunSpec marker."""

    async def main():
        inv = SimInverter("inv-m", pv_kw=5.0)
        await inv.start()
        out = {}
        try:
            r, w = await asyncio.open_connection("127.0.0.1", inv.port)
            w.write(b"\x00\x01\xff\xff\xff\xff garbage")
            await w.drain()
            w.close()
            r, w = await asyncio.open_connection("127.0.0.1", inv.port)
            w.write(_frame(7, b"\x63\x00\x00"))  # function 0x63 does not exist
            await w.drain()
            out["unknown_fc"] = await asyncio.wait_for(r.read(64), 5)
            w.write(_frame(8, struct.pack(">BHH", 3, 40000, 2)))
            await w.drain()
            out["valid"] = await asyncio.wait_for(r.read(64), 5)
            w.close()
            c = SunSpecClient("inv-m", "127.0.0.1", inv.port)
            await c.connect()
            with pytest.raises(DeviceError):
                await c._read(50000, 4)
            out["after"] = (await c.read_model(1))["SN"]
            c.close()
            inv.regs[0:2] = [0, 0]  # no longer a SunSpec device
            c2 = SunSpecClient("inv-m", "127.0.0.1", inv.port)
            with pytest.raises(DeviceError, match="SunS"):
                await c2.connect()
            c2.close()
        finally:
            await inv.stop()
        return out

    out = asyncio.run(main())
    assert out["unknown_fc"][7] & 0x80  # an exception response ...
    assert out["unknown_fc"][8] == 0x01  # ... ILLEGAL FUNCTION
    assert out["valid"][7:9] == b"\x03\x04" and out["valid"][9:13] == b"SunS"
    assert out["after"] == "inv-m"


def test_a_value_the_device_cannot_measure_reads_as_not_implemented():
    """A failed power flow leaves the twin without voltages (NaN): the inverter reports
    SunSpec's not-implemented pattern and the poll simply has no voltage reading."""

    async def main():
        inv, c, _ = await _device()
        try:
            inv.measure(pv_kw=2.0, battery_kw=0.0, soc_frac=0.5, v_pu=float("nan"))
            return await c.poll()
        finally:
            await _close(inv, c)

    rows = asyncio.run(main())
    got = {q: v for _, q, _, v, _ in rows}
    assert "v" not in got
    assert got["p"] == pytest.approx(-2000.0)


def test_volt_var_curve_round_trip_and_clamp():
    """A curve loaded into model 126 is what the device follows (hand interpolation: at
    0.95 p.u. halfway between (92 %, +44 %) and (98 %, 0 %) -> +22 %; flat beyond the last
    point); a point beyond the device's +-44 % capability is clamped and read back as such."""

    async def main():
        inv, c, alerts = await _device()
        try:
            ok = await c.set_volt_var([(92.0, 44.0), (98.0, 0.0), (102.0, 0.0), (108.0, -44.0)])
            q = [inv.volt_var_pct(v) for v in (0.95, 1.0, 1.10)]
            clamped = await c.set_volt_var([(90.0, 60.0), (110.0, -60.0)])
            with pytest.raises(ValueError, match="rising voltage"):
                await c.set_volt_var([(100.0, 0.0), (95.0, 1.0)])
            return ok, q, clamped, inv.volt_var_pct(0.80), alerts
        finally:
            await _close(inv, c)

    ok, q, clamped, q_low, alerts = asyncio.run(main())
    assert ok.status == "ok"
    assert q == [pytest.approx(22.0), pytest.approx(0.0), pytest.approx(-44.0)]
    assert clamped.status == "readback_differs"
    assert clamped.readback["VAr1"] == pytest.approx(44.0)
    assert q_low == pytest.approx(44.0)
    assert [a["kind"] for a in alerts] == ["setpoint_readback"]


def test_soc_and_battery_setpoints_round_trip_exactly_to_the_register_resolution():
    """SoC goes as 802.SoC (uint16) with SoC_SF = -2: 0.01 %, the finest a uint16 holding
    100 % allows (SF -3 would need 100000 > 65535). A battery setpoint goes as 124.InWRte
    (int16, % of WChaMax) with InOutWRte_SF = -2: 0.01 % of 5 kW = 0.5 W. Both round trips
    return the value rounded to that resolution, exactly."""

    async def main():
        inv, c, _ = await _device()
        try:
            socs = []
            for frac in (0.0, 0.123456789, 0.5, 0.87654321, 0.99995, 1.0):
                inv.measure(0.0, 0.0, frac, 1.0)
                rows = await c.poll()
                socs.append((frac, next(v for _, q, _, v, _ in rows if q == "soc")))
            kws = []
            for kw in (-3.3, 1.23456, 4.99999, -0.0001):
                await c.set_battery_kw(kw)
                kws.append((kw, inv.battery_kw()))
            return socs, kws, c.sf[802]["SoC_SF"], c.sf[124]["InOutWRte_SF"]
        finally:
            await _close(inv, c)

    socs, kws, soc_sf, rate_sf = asyncio.run(main())
    assert (soc_sf, rate_sf) == (-2, -2)
    assert 100.0 / 10.0**-3 > 0xFFFF >= 100.0 / 10.0**soc_sf
    for frac, pct in socs:
        assert pct == pytest.approx(round(frac * 1e4) / 100.0, abs=1e-12)
        assert abs(pct - 100.0 * frac) <= 0.005 + 1e-12
    for kw, got in kws:
        assert got == pytest.approx(round(kw / 5.0 * 1e4) / 1e4 * 5.0, abs=1e-12)
        assert abs(got - kw) <= 0.00025 + 1e-12
