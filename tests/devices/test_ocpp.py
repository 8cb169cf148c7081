"""OCPP on loopback with the real stacks: GridSync's CSMS against simulated charge points
(``ocpp`` package clients), both protocol versions."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from websockets.asyncio.client import connect

from gridsync.bus import InProcessBus
from gridsync.data.ingest import Ingestor
from gridsync.devices.ocpp_csms import Csms
from gridsync.devices.ocpp_sim import SimCharger
from gridsync.devices.telemetry import ReadingSink
from tests.conftest import until

KEY = "0123456789abcdef-key"


async def _pair(version="2.0.1", v2g=False, **csms_kw):
    alerts: list[dict] = []

    async def alert(body):
        alerts.append(body)

    csms = Csms(credentials={"cp-1": KEY}, default_limit_kw=3.7, alert=alert, **csms_kw)
    await csms.start()
    ch = SimCharger("cp-1", csms.url, KEY, version=version, v2g=v2g, reconnect_s=0.05)
    await ch.start()
    # online at the CSMS once its default profile is accepted; the charger's own boot
    # (StatusNotification) may still be in flight then
    assert await until(lambda: "cp-1" in csms.online() and ch.connected.is_set(), 10)
    return csms, ch, alerts


async def _close(csms, *chargers):
    for ch in chargers:
        await ch.stop()
    await csms.stop()


@pytest.mark.parametrize("version", ["2.0.1", "1.6"])
def test_profile_round_trip(version):
    """A kW schedule sent as TxProfile is what the charger runs, period by period; before a
    session the charger runs the default profile the CSMS installed at boot."""

    async def main():
        csms, ch, _ = await _pair(version)
        try:
            before = ch.limit_kw()
            await ch.plug_in("tag-7")
            assert await until(lambda: csms.chargers["cp-1"].session is not None, 5)
            t0 = time.time()
            res = await csms.set_schedule("cp-1", [(0, 7.2), (900, 2.3), (1800, 0.0)], t0)
            limits = [ch.limit_kw(t0 + dt) for dt in (1, 899, 901, 1799, 1801, 9000)]
            expected = [
                csms.expected_limit_kw("cp-1", t0 + dt) for dt in (1, 899, 901, 1799, 1801, 9000)
            ]
            return before, res, limits, expected, csms.audit.find("ocpp.SetChargingProfile")
        finally:
            await _close(csms, ch)

    before, res, limits, expected, audit = asyncio.run(main())
    assert before == 3.7
    assert res.status == "Accepted"
    assert limits == [7.2, 7.2, 2.3, 2.3, 0.0, 0.0]
    assert expected == limits
    # every command is audited: the default profile at boot, then the TxProfile
    assert [e["detail"]["purpose"] for e in audit] == ["TxDefaultProfile", "TxProfile"]
    assert audit[-1]["detail"]["periods_kw"] == [[0, 7.2], [900, 2.3], [1800, 0.0]]


def test_session_maps_to_ev_session():
    """Arrival, energy delivered (meter register difference) and departure of a transaction."""

    async def main():
        csms, ch, _ = await _pair()
        try:
            ch.energy_kwh = 100.0
            await ch.plug_in()
            ch.energy_kwh, ch.power_kw = 112.5, 7.0
            await ch.send_meter_values()
            await ch.unplug()
            assert await until(lambda: csms.chargers["cp-1"].session is None, 5)
            return csms.sessions
        finally:
            await _close(csms, ch)

    sessions = asyncio.run(main())
    assert len(sessions) == 1
    s = sessions[0]
    assert s.delivered_kwh == pytest.approx(12.5)
    assert s.stopped_s is not None and s.stopped_s >= s.started_s


def test_negative_limit_needs_v2g():
    async def main():
        out = []
        for v2g in (False, True):
            csms, ch, _ = await _pair(v2g=v2g)
            try:
                await ch.plug_in()
                assert await until(lambda: csms.chargers["cp-1"].session is not None, 5)  # noqa: B023
                res = await csms.set_schedule("cp-1", [(0, -5.0)], time.time())
                out.append((res.status, ch.limit_kw()))
            finally:
                await _close(csms, ch)
        return out

    (plain, plain_kw), (v2g, v2g_kw) = asyncio.run(main())
    assert (plain, plain_kw) == ("Rejected", 3.7)  # keeps its default profile
    assert (v2g, v2g_kw) == ("Accepted", -5.0)


def test_charger_that_drops_its_connection():
    """The charger loses the network: it falls back to its default profile, the CSMS marks it
    offline, alerts with that fallback power and audits it; commands report Offline; when the
    network returns it reconnects, boots and gets its default profile again."""

    async def main():
        csms, ch, alerts = await _pair()
        try:
            await ch.plug_in()
            assert await until(lambda: csms.chargers["cp-1"].session is not None, 5)
            await csms.set_schedule("cp-1", [(0, 11.0)], time.time())
            during = ch.limit_kw()
            await ch.drop()
            assert await until(lambda: not csms.chargers["cp-1"].connected, 5)
            offline = (ch.limit_kw(), csms.expected_limit_kw("cp-1"))
            res = await csms.set_schedule("cp-1", [(0, 11.0)], time.time())
            ch.resume()
            back = await until(lambda: "cp-1" in csms.online(), 10)
            dropped = len(csms.audit.find("ocpp.disconnect", "cp-1"))
            # back online, the session goes on but the old TxProfile is gone on both sides
            after = (ch.limit_kw(), csms.expected_limit_kw("cp-1"), csms.chargers["cp-1"].session)
            return during, offline, res, back, list(alerts), dropped, after, csms
        finally:
            await _close(csms, ch)

    during, offline, res, back, alerts, dropped, after, csms = asyncio.run(main())
    assert during == 11.0
    assert offline == (3.7, 3.7)
    assert res.status == "Offline"
    assert back
    assert [a["kind"] for a in alerts] == ["device_offline"]
    assert alerts[0]["fallback_kw"] == 3.7
    assert dropped == 1
    assert after[:2] == (3.7, 3.7) and after[2] is not None
    assert csms.chargers["cp-1"].connects == 2


def test_wrong_key_is_refused_and_audited():
    async def main():
        csms = Csms(credentials={"cp-1": KEY})
        await csms.start()
        wrong = SimCharger("cp-1", csms.url, "not-the-key-at-all", reconnect_s=0.05)
        unknown = SimCharger("cp-9", csms.url, KEY, reconnect_s=0.05)
        anonymous = SimCharger("cp-1", csms.url, None, reconnect_s=0.05)
        for c in (wrong, unknown, anonymous):
            await c.start()
        try:
            await until(lambda: min(c.auth_failures for c in (wrong, unknown, anonymous)) > 0, 10)
            return [c.auth_failures for c in (wrong, unknown, anonymous)], csms
        finally:
            await _close(csms, wrong, unknown, anonymous)

    failures, csms = asyncio.run(main())
    assert min(failures) > 0
    assert csms.online() == []
    refused = csms.audit.find("ocpp.auth_refused")
    assert {e["target"] for e in refused} == {"cp-1", "cp-9"}


def test_malformed_frames_get_call_errors_and_the_link_survives():
    async def main():
        csms = Csms()  # no credentials: only the frames are under test
        await csms.start()
        answers = []
        try:
            async with connect(f"{csms.url}/cp-raw", subprotocols=["ocpp2.0.1"]) as ws:
                for frame in (
                    "this is not json",
                    '{"not": "a list"}',
                    '[2, "m1", "MeterValues", {"evseId": "one", "meterValue": []}]',
                    '[2, "m2", "Heartbeat", {}]',
                ):
                    await ws.send(frame)
                    answers.append(json.loads(await asyncio.wait_for(ws.recv(), 5)))
            return answers, csms.malformed_frames
        finally:
            await csms.stop()

    answers, n_bad = asyncio.run(main())
    assert [a[0] for a in answers] == [4, 4, 4, 3]  # three CALLERRORs, then a CALLRESULT
    assert answers[0][2] == "FormatViolation"
    assert answers[1][2] == "ProtocolError"
    assert answers[2][1] == "m1"
    assert answers[3][1] == "m2" and "currentTime" in answers[3][2]
    assert n_bad == 3


def test_meter_values_go_through_ingestion_and_bad_ones_are_dead_lettered():
    """Readings arrive on the bus ``telemetry`` topic in canonical units; a state of charge of
    150 % is refused by the validator and dead-lettered with the reason."""

    async def main():
        bus = InProcessBus()
        await bus.connect()
        got: dict[str, list] = {"telemetry": [], "deadletter": []}

        async def keep(msg):
            got[msg.topic].append(msg.data)

        for topic in got:
            await bus.subscribe(topic, keep, max_deliver=1)
        sink = ReadingSink(Ingestor(bus).submit, origin="ocpp")
        csms, ch, _ = await _pair(sink=sink)
        try:
            ch.power_kw, ch.energy_kwh, ch.soc_pct = -4.2, 20.0, 60.0
            await ch.send_meter_values()
            ch.soc_pct = 150.0
            await ch.send_meter_values()
            await until(lambda: got["telemetry"] and got["deadletter"], 5)
            return got, sink
        finally:
            await _close(csms, ch)
            await bus.close()

    got, sink = asyncio.run(main())
    tm = got["telemetry"][0]
    values = dict(zip(tm["quantity"], tm["value"], strict=True))
    assert values == {"p": -4.2, "energy": 20.0, "soc": 0.6}  # kW (export negative), kWh, frac
    assert set(tm["device_id"]) == {"cp-1"}
    assert "soc" in got["deadletter"][0]["reason"] or "outside" in got["deadletter"][0]["reason"]
    assert (sink.accepted, sink.rejected) == (1, 1)


def _self_signed(tmp_path):
    """A throw-away CA-less certificate for 127.0.0.1 (security profile 2: TLS + basic auth)."""
    import datetime as dt
    import ipaddress
    import ssl

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "csms.test")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_pem, key_pem = tmp_path / "csms.pem", tmp_path / "csms.key"
    cert_pem.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_pem.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(cert_pem, key_pem)
    client = ssl.create_default_context(cafile=str(cert_pem))
    return server, client


def test_security_profile_2_tls_with_basic_auth(tmp_path):
    """wss:// with the CSMS certificate pinned by the charger; the key is still checked."""
    server_ctx, client_ctx = _self_signed(tmp_path)

    async def main():
        csms = Csms(credentials={"cp-1": KEY}, ssl=server_ctx)
        await csms.start()
        good = SimCharger("cp-1", csms.url, KEY, ssl=client_ctx, reconnect_s=0.05)
        bad = SimCharger("cp-1", csms.url, "wrong-key-wrong-key", ssl=client_ctx, reconnect_s=0.05)
        await bad.start()
        await until(lambda: bad.auth_failures > 0, 10)
        await bad.stop()
        await good.start()
        try:
            online = await until(lambda: "cp-1" in csms.online(), 10)
            return csms.url, online, bad.auth_failures
        finally:
            await _close(csms, good)

    url, online, refused = asyncio.run(main())
    assert url.startswith("wss://")
    assert online
    assert refused > 0
