"""A real OpenADR 2.0b exchange on localhost: upstream VTN -> GridSync VEN -> agent request,
and GridSync VTN -> customer VENs -> opt-in / opt-out back to the VTN."""

from __future__ import annotations

import asyncio
import datetime as dt
import socket

import numpy as np
from openleadr.objects import Interval

from gridsync.dr.openadr import CustomerVen, DRVen, DRVtn, EventCall, wait_for


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_vtn_and_vens_exchange_events():
    async def scenario():
        start = dt.datetime.now(dt.UTC).replace(microsecond=0) + dt.timedelta(hours=2)
        # Upstream utility VTN asks GridSync (through its VEN) for a 40 kW reduction.
        upstream = DRVtn(vtn_id="utility", port=_free_port(), poll_s=1.0)
        requests = []
        gridsync_ven = DRVen("gridsync", upstream.url, lambda r: requests.append(r) or True)
        # GridSync's own VTN and two customers: one accepts, one opts out.
        vtn = DRVtn(port=_free_port(), poll_s=1.0, known_vens={"cust-1", "cust-2"})
        c1 = CustomerVen("cust-1", vtn.url, lambda ev: True)
        c2 = CustomerVen("cust-2", vtn.url, lambda ev: False)
        await upstream.start()
        await vtn.start()
        try:
            await gridsync_ven.start()
            await c1.start()
            await c2.start()
            assert await wait_for(lambda: len(vtn.registered) == 2, 10)
            upstream.server.add_event(
                ven_id="gridsync",
                signal_name="LOAD_DISPATCH",
                signal_type="delta",
                intervals=[
                    Interval(dtstart=start, duration=dt.timedelta(hours=1), signal_payload=-40.0)
                ],
                market_context="oadr://utility/peak",
            )
            for ven, price in (("cust-1", 1.2), ("cust-2", 1.2)):
                vtn.publish(
                    EventCall(
                        ven, "cpp", "critical_peak_pricing", start, dt.timedelta(hours=1), price
                    ),
                    event_id="ev0",
                )
            assert await wait_for(lambda: len(vtn.responses["ev0"]) == 2 and requests, 12)
        finally:
            for ven in (gridsync_ven, c1, c2):
                await ven.stop()
            await vtn.stop()
            await upstream.stop()
        return requests, vtn.responses["ev0"], c1.events

    requests, responses, received = asyncio.run(scenario())
    assert responses == {"cust-1": "optIn", "cust-2": "optOut"}
    sig = received[0]["event_signals"][0]
    assert sig["signal_name"] == "ELECTRICITY_PRICE"
    assert np.isclose(sig["intervals"][0]["signal_payload"], 1.2)
    assert received[0]["event_descriptor"]["market_context"] == "oadr://gridsync/cpp"
    assert len(requests) == 1 and requests[0].reduction_kw == 40.0
    assert requests[0].duration == dt.timedelta(hours=1)


def test_vtn_refuses_unknown_ven():
    async def scenario():
        vtn = DRVtn(port=_free_port(), poll_s=1.0, known_vens={"cust-1"})
        intruder = CustomerVen("mallory", vtn.url, lambda ev: True)
        await vtn.start()
        try:
            await intruder.start()
            await asyncio.sleep(0.5)
        finally:
            await intruder.stop()
            await vtn.stop()
        return vtn.registered

    assert asyncio.run(scenario()) == {}
