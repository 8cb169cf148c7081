"""OpenADR 2.0b (openleadr): a VTN that publishes DR events to customers' VENs, and a VEN that
receives events from an upstream utility or system operator and hands them to the agent.

Signals per program kind (OpenADR signal name / type / payload):

* critical-peak and real-time pricing: ``ELECTRICITY_PRICE`` / ``price`` / EUR per kWh;
* peak-time rebate: ``BID_PRICE`` / ``price`` / rebate EUR per kWh;
* direct load control: ``SIMPLE`` / ``level`` / 1 (moderate);
* emergency: ``SIMPLE`` / ``level`` / 3 (special);
* upstream requests to GridSync: ``LOAD_DISPATCH`` / ``delta`` / requested change in kW
  (negative = reduce), which ``DRVen`` turns into a reduction target.

The market context names the program: ``oadr://gridsync/<program>``. Message signing and TLS
are openleadr's (pass certificates in production); the tests run plain HTTP on localhost.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from openleadr import OpenADRClient, OpenADRServer
from openleadr.objects import Interval

log = logging.getLogger(__name__)

SIGNALS = {
    "critical_peak_pricing": ("ELECTRICITY_PRICE", "price"),
    "real_time_pricing": ("ELECTRICITY_PRICE", "price"),
    "peak_time_rebate": ("BID_PRICE", "price"),
    "direct_load_control": ("SIMPLE", "level"),
    "emergency": ("SIMPLE", "level"),
}
PATH = "/OpenADR2/Simple/2.0b"


@dataclass(frozen=True)
class EventCall:
    """One customer's part of an event, as sent over OpenADR."""

    ven_id: str
    program: str
    kind: str
    start: dt.datetime
    duration: dt.timedelta
    payload: float


@dataclass(frozen=True)
class UpstreamRequest:
    """A reduction request received from an upstream VTN."""

    event_id: str
    start: dt.datetime
    duration: dt.timedelta
    reduction_kw: float
    market_context: str


def _utc(t: dt.datetime) -> dt.datetime:
    return t.replace(tzinfo=dt.UTC) if t.tzinfo is None else t.astimezone(dt.UTC)


def event_calls(ev, programs, index, ven_ids: list[str]) -> list[EventCall]:
    """Turn a planned ``DREvent`` into per-customer calls (``ven_ids[c]`` is customer c's VEN).

    ``index`` is the run's time index (``scenario.index[scenario.start_step:]``).
    """
    step = index[1] - index[0]
    start = _utc(index[ev.start].to_pydatetime())
    duration = (ev.end - ev.start) * step.to_pytimedelta()
    calls = []
    for c, j, level in zip(ev.customers, ev.programs, ev.levels_eur_per_kwh, strict=True):
        p = programs[j]
        payload = {"direct_load_control": 1.0, "emergency": 3.0}.get(p.kind, float(level))
        calls.append(EventCall(ven_ids[c], p.name, p.kind, start, duration, payload))
    return calls


@dataclass
class DRVtn:
    """GridSync's VTN: customers' VENs register here and receive the events the agent plans.

    ``responses`` maps ``event_id`` to ``{ven_id: "optIn" | "optOut"}`` as VENs answer.
    """

    vtn_id: str = "gridsync-vtn"
    host: str = "127.0.0.1"
    port: int = 8080
    poll_s: float = 1.0
    known_vens: set[str] | None = None
    responses: dict[str, dict[str, str]] = field(default_factory=dict)
    registered: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.server = OpenADRServer(
            vtn_id=self.vtn_id,
            http_host=self.host,
            http_port=self.port,
            requested_poll_freq=dt.timedelta(seconds=self.poll_s),
            show_fingerprint=False,
            verify_message_signatures=False,
        )
        self.server.add_handler("on_create_party_registration", self._register)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}{PATH}"

    async def _register(self, info: dict):
        name = info["ven_name"]
        if self.known_vens is not None and name not in self.known_vens:
            log.warning("VTN %s: refusing unknown VEN %r", self.vtn_id, name)
            return False
        self.registered[name] = name
        return name, f"reg-{name}"

    async def start(self) -> None:
        await self.server.run()

    async def stop(self) -> None:
        await self.server.stop()

    def publish(self, call: EventCall, event_id: str) -> None:
        """Queue one customer's event; it is delivered on the VEN's next poll."""
        name, kind = SIGNALS[call.kind]
        group = self.responses.setdefault(event_id, {})

        # openleadr checks that the callback's parameters are named exactly like this
        async def on_response(ven_id, event_id, opt_type):
            group[ven_id] = opt_type

        self.server.add_event(
            ven_id=call.ven_id,
            signal_name=name,
            signal_type=kind,
            intervals=[
                Interval(dtstart=call.start, duration=call.duration, signal_payload=call.payload)
            ],
            callback=on_response,
            event_id=f"{event_id}-{call.ven_id}",
            market_context=f"oadr://gridsync/{call.program}",
        )


class DRVen:
    """GridSync's VEN towards an upstream VTN: every ``LOAD_DISPATCH`` event becomes a
    reduction request passed to ``on_request`` (e.g. a wrapper around ``DRAgent.request``)."""

    def __init__(
        self, ven_name: str, vtn_url: str, on_request: Callable[[UpstreamRequest], bool]
    ) -> None:
        self.on_request = on_request
        self.received: list[UpstreamRequest] = []
        self.client = OpenADRClient(
            ven_name=ven_name, vtn_url=vtn_url, show_fingerprint=False, allow_jitter=False
        )
        self.client.add_handler("on_event", self._on_event)

    async def _on_event(self, event: dict) -> str:
        ctx = event["event_descriptor"].get("market_context", "")
        for signal in event.get("event_signals", []):
            if signal["signal_name"] != "LOAD_DISPATCH" or signal["signal_type"] != "delta":
                continue
            for iv in signal["intervals"]:
                req = UpstreamRequest(
                    event_id=event["event_descriptor"]["event_id"],
                    start=iv["dtstart"],
                    duration=iv["duration"],
                    reduction_kw=max(-float(iv["signal_payload"]), 0.0),
                    market_context=ctx,
                )
                self.received.append(req)
                if not self.on_request(req):
                    return "optOut"
        return "optIn"

    async def start(self) -> None:
        await self.client.run()

    async def stop(self) -> None:
        await self.client.stop()


class CustomerVen:
    """A customer's VEN (for the twin and tests): answers each event with its decision."""

    def __init__(self, ven_name: str, vtn_url: str, decide: Callable[[dict], bool]) -> None:
        self.decide = decide
        self.events: list[dict] = []
        self.client = OpenADRClient(
            ven_name=ven_name, vtn_url=vtn_url, show_fingerprint=False, allow_jitter=False
        )
        self.client.add_handler("on_event", self._on_event)

    async def _on_event(self, event: dict) -> str:
        self.events.append(event)
        return "optIn" if self.decide(event) else "optOut"

    async def start(self) -> None:
        await self.client.run()

    async def stop(self) -> None:
        await self.client.stop()


async def wait_for(predicate: Callable[[], bool], timeout_s: float) -> bool:
    """Poll ``predicate`` every 100 ms until it holds or ``timeout_s`` passes."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout_s
    while loop.time() < end:
        if predicate():
            return True
        await asyncio.sleep(0.1)
    return predicate()


def request_sink(
    agent, run_index, now_step: Callable[[], int]
) -> Callable[[UpstreamRequest], bool]:
    """Adapter for ``DRVen(on_request=...)``: queue an upstream request with the agent.

    ``run_index`` holds the timestamps of the run's steps (scenario time, naive; upstream
    times are read as UTC wall time of the scenario). Requests outside the run are refused
    (the VEN answers optOut).
    """

    def sink(req: UpstreamRequest) -> bool:
        t0 = _utc(req.start).replace(tzinfo=None)
        start = int(run_index.searchsorted(t0))
        end = int(run_index.searchsorted(t0 + req.duration))
        if start >= len(run_index) or end <= start or req.reduction_kw <= 0:
            return False
        agent.request(now_step(), start, end, req.reduction_kw)
        return True

    return sink
