"""GridSync's charging-station management system (CSMS): OCPP 2.0.1 and 1.6J over WebSocket.

Chargers connect to ``ws://host:port/ocpp/<charger id>`` offering the ``ocpp2.0.1`` or
``ocpp1.6`` subprotocol. With ``credentials`` (security profile 1 over ``ws://``, profile 2
when ``ssl`` is given, i.e. ``wss://``) a charger must send HTTP Basic auth whose user is its
own id and whose password is its authorization key; anything else gets HTTP 401 and an audit
entry. Keys are compared as SHA-256 digests in constant time (OCPP keys are 16-40 random
characters, so a slow password hash buys nothing against guessing).

What the CSMS does with each message:

* ``BootNotification`` -> Accepted, then it installs the charger's **default profile**
  (``TxDefaultProfile``, ``default_limit_kw``): the power the charger falls back to when it
  loses the CSMS. :meth:`Csms.fallback_kw` tells the shield what that is;
* ``StatusNotification`` / ``MeterValues`` / transaction messages -> :class:`ChargerState`,
  :class:`EvSession` (arrival, energy delivered, departure) and readings into the ingestion
  path (:class:`gridsync.devices.telemetry.ReadingSink`);
* :meth:`Csms.set_schedule` sends the dispatch agent's kW schedule as a ``TxProfile``
  (Absolute, one period per plan step) and measures the time to the charger's answer.

Every command and its outcome, every refused connection and every lost connection are
audited (:class:`gridsync.devices.audit.AuditTrail`); a lost charger raises an alert that
names the fallback power. A frame that is not valid OCPP-J gets a CALLERROR
(``FormatViolation``/``ProtocolError``) and is counted, never a crash.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import itertools
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

from ocpp.exceptions import OCPPError
from ocpp.v16 import ChargePoint as ChargePoint16
from ocpp.v16 import call as call16
from ocpp.v201 import ChargePoint as ChargePoint201
from ocpp.v201 import call as call201
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from gridsync.devices.audit import AuditTrail
from gridsync.devices.ocpp_links import Link16, Link201
from gridsync.devices.ocpp_messages import (
    SUBPROTOCOLS,
    VERSION_OF,
    charging_profile,
    iso,
    limit_w_at,
    readings_from_meter_values,
    unix,
)
from gridsync.devices.telemetry import ReadingSink

log = logging.getLogger(__name__)
Alert = Callable[[dict[str, Any]], Awaitable[Any]]


@dataclass
class EvSession:
    """One transaction = one EV session on a charger (energies in Wh from the charger's meter)."""

    transaction_id: str
    cp_id: str
    evse_id: int
    started_s: float
    energy_start_wh: float
    energy_wh: float
    id_token: str = ""
    stopped_s: float | None = None
    stop_reason: str = ""

    @property
    def delivered_kwh(self) -> float:
        return (self.energy_wh - self.energy_start_wh) / 1000.0


@dataclass
class ChargerState:
    """What the CSMS knows about one charger (powers in kW, load convention)."""

    cp_id: str
    version: str = ""
    connected: bool = False
    booted: bool = False
    vendor: str = ""
    model: str = ""
    status: str = "Unknown"
    power_kw: float = 0.0
    energy_kwh: float = 0.0
    soc_pct: float | None = None
    last_seen_s: float = 0.0
    default_limit_kw: float = 0.0
    session: EvSession | None = None
    profile: dict[str, Any] | None = None  # the last TxProfile the charger accepted
    connects: int = 0
    disconnects: int = 0


@dataclass
class CommandResult:
    """Outcome of one command: ``status`` is the charger's answer (Accepted/Rejected) or
    NoSession, Offline, Timeout, Error; ``latency_s`` from sending to the answer."""

    cp_id: str
    status: str
    latency_s: float = 0.0
    detail: str = ""

    @property
    def accepted(self) -> bool:
        return self.status == "Accepted"


def _digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


@dataclass
class Csms:
    """The CSMS server; ``await start()``, then chargers connect to :attr:`url`."""

    host: str = "127.0.0.1"
    port: int = 0  # 0: any free port (see :attr:`url` after start)
    credentials: dict[str, str] | None = None  # charger id -> authorization key
    default_limit_kw: float | dict[str, float] = 3.7
    sink: ReadingSink = field(default_factory=ReadingSink)
    audit: AuditTrail = field(default_factory=lambda: AuditTrail(actor="csms"))
    alert: Alert | None = None
    ssl: Any = None
    response_timeout_s: float = 10.0
    heartbeat_s: int = 300
    chargers: dict[str, ChargerState] = field(default_factory=dict)
    sessions: list[EvSession] = field(default_factory=list)
    malformed_frames: int = 0

    def __post_init__(self) -> None:
        self._keys = (
            None
            if self.credentials is None
            else {cp: _digest(k) for cp, k in self.credentials.items()}
        )
        self._links: dict[str, ChargePoint16 | ChargePoint201] = {}
        self._server: Server | None = None
        self._stopping = False
        self._ids = itertools.count(1)

    # life cycle ---------------------------------------------------------------------------
    async def start(self) -> None:
        self._server = await serve(
            self._handle,
            self.host,
            self.port,
            subprotocols=list(SUBPROTOCOLS),
            process_request=self._authenticate,
            ssl=self.ssl,
            ping_interval=None,  # liveness comes from OCPP heartbeats and meter values
            compression=None,
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        self._stopping = True  # connections closed by our own shutdown are not alarms
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        await self.audit.flush()

    @property
    def url(self) -> str:
        return f"{'wss' if self.ssl else 'ws'}://{self.host}:{self.port}/ocpp"

    def default_kw(self, cp_id: str) -> float:
        d = self.default_limit_kw
        return float(d.get(cp_id, 0.0) if isinstance(d, dict) else d)

    # connections --------------------------------------------------------------------------
    def _authenticate(self, conn: ServerConnection, request) -> Any:
        cp_id = request.path.rstrip("/").rsplit("/", 1)[-1]
        if self._keys is None:
            return None
        user, key = "", ""
        header = request.headers.get("Authorization", "")
        if header.startswith("Basic "):
            try:
                user, _, key = base64.b64decode(header[6:]).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                user = ""
        want = self._keys.get(cp_id)
        if user != cp_id or want is None or not hmac.compare_digest(_digest(key), want):
            why = "no credentials" if not header else "wrong charger id or key"
            self.audit.record("ocpp.auth_refused", cp_id, {"reason": why})
            return conn.respond(HTTPStatus.UNAUTHORIZED, "charger authentication failed\n")
        return None

    async def _handle(self, ws: ServerConnection) -> None:
        cp_id = ws.request.path.rstrip("/").rsplit("/", 1)[-1]
        version = VERSION_OF.get(ws.subprotocol or "")
        if version is None:
            self.audit.record("ocpp.refused", cp_id, {"reason": "no OCPP subprotocol"})
            await ws.close(1002, "an OCPP subprotocol (ocpp2.0.1 or ocpp1.6) is required")
            return
        st = self.chargers.setdefault(cp_id, ChargerState(cp_id))
        st.version, st.connected, st.last_seen_s = version, True, time.time()
        st.default_limit_kw = self.default_kw(cp_id)
        st.connects += 1
        link = (Link201 if version == "2.0.1" else Link16)(cp_id, ws, self)
        old = self._links.get(cp_id)
        self._links[cp_id] = link
        if old is not None:  # the charger reconnected before we noticed the old socket die
            await old._connection.close()
        self.audit.record("ocpp.connect", cp_id, {"version": version})
        try:
            await link.start()
        except ConnectionClosed:
            pass
        finally:
            if self._links.get(cp_id) is link:
                del self._links[cp_id]
                await self._lost(st)

    async def _lost(self, st: ChargerState) -> None:
        # the charger drops its TxProfile with the connection: until a new one is accepted it
        # runs its default profile, also after it reconnects
        st.connected, st.booted, st.profile = False, False, None
        st.disconnects += 1
        self.audit.record("ocpp.disconnect", st.cp_id, {"fallback_kw": st.default_limit_kw})
        if self.alert is not None and not self._stopping:
            msg = (
                f"charger {st.cp_id} lost its connection; it runs its default profile "
                f"({st.default_limit_kw:g} kW) until it reconnects"
            )
            await self.alert(
                {
                    "kind": "device_offline",
                    "severity": "warning",
                    "source": "csms",
                    "device": st.cp_id,
                    "fallback_kw": st.default_limit_kw,
                    "message": msg,
                    "ts_s": time.time(),
                }
            )

    def online(self) -> list[str]:
        return [cp for cp, s in self.chargers.items() if s.connected and s.booted]

    def fallback_kw(self, cp_id: str) -> float:
        """The power limit the charger applies without the CSMS (its default profile, kW)."""
        return self.default_kw(cp_id)

    def expected_limit_kw(self, cp_id: str, now_s: float | None = None) -> float:
        """The limit the charger should be running now: its accepted TxProfile's period while
        connected, its default profile otherwise (what the shield should assume)."""
        st = self.chargers.get(cp_id)
        if st is None or not st.connected or st.profile is None or st.session is None:
            return self.fallback_kw(cp_id)
        t = time.time() if now_s is None else now_s
        w = limit_w_at(st.profile, t, st.session.started_s)
        return self.fallback_kw(cp_id) if w is None else w / 1000.0

    # commands -----------------------------------------------------------------------------
    async def _command(self, cp_id: str, action: str, payload, detail: dict) -> CommandResult:
        link = self._links.get(cp_id)
        if link is None:
            res = CommandResult(cp_id, "Offline", detail="charger not connected")
        else:
            t0 = time.perf_counter()
            try:
                # our own request is schema-valid by construction (the charger validates it
                # on arrival, the tests check both versions); skipping the package's check of
                # request and answer halves the CPU per command. The answer is checked here.
                answer = await link.call(payload, suppress=False, skip_schema_validation=True)
                status = str(answer.status)
                if status not in ("Accepted", "Rejected"):
                    msg = f"unexpected status {status[:40]!r}"
                    raise TypeError(msg)
                res = CommandResult(cp_id, status, time.perf_counter() - t0)
            except TypeError as err:  # an answer without a valid status
                res = CommandResult(cp_id, "Error", time.perf_counter() - t0, str(err)[:200])
            except TimeoutError:
                res = CommandResult(cp_id, "Timeout", time.perf_counter() - t0)
            except ConnectionClosed:
                res = CommandResult(cp_id, "Offline", time.perf_counter() - t0, "connection lost")
            except OCPPError as err:
                res = CommandResult(cp_id, "Error", time.perf_counter() - t0, str(err)[:200])
        self.audit.record(
            f"ocpp.{action}",
            cp_id,
            {
                **detail,
                "status": res.status,
                "latency_s": round(res.latency_s, 4),
                "why": res.detail,
            },
        )
        return res

    def _profile_call(self, st: ChargerState, evse_id: int, profile: dict[str, Any]):
        if st.version == "2.0.1":
            return call201.SetChargingProfile(evse_id=evse_id, charging_profile=profile)
        return call16.SetChargingProfile(connector_id=evse_id, cs_charging_profiles=profile)

    async def install_default_profile(self, cp_id: str) -> CommandResult:
        """Install ``TxDefaultProfile`` (``default_limit_kw``, all EVSEs) on one charger."""
        st = self.chargers[cp_id]
        pid = next(self._ids)
        periods = [(0, self.default_kw(cp_id))]
        profile = charging_profile(st.version, pid, "TxDefaultProfile", periods)
        res = await self._command(
            cp_id,
            "SetChargingProfile",
            self._profile_call(st, 0, profile),
            {"purpose": "TxDefaultProfile", "profile_id": pid, "periods_kw": periods},
        )
        if res.accepted:
            st.booted = True
        return res

    async def set_schedule(
        self, cp_id: str, periods_kw: Sequence[tuple[float, float]], start_s: float
    ) -> CommandResult:
        """Send a TxProfile to the session on ``cp_id``: ``periods_kw`` = ``[(offset s from
        start_s, limit kW), ...]``. Without a session there is nothing to limit (NoSession)."""
        st = self.chargers.get(cp_id)
        if st is None or st.session is None:
            res = CommandResult(cp_id, "NoSession" if st and st.connected else "Offline")
            self.audit.record("ocpp.SetChargingProfile", cp_id, {"status": res.status})
            return res
        sess, pid = st.session, next(self._ids)
        tx = sess.transaction_id if st.version == "2.0.1" else int(sess.transaction_id)
        profile = charging_profile(
            st.version, pid, "TxProfile", periods_kw, start_s, tx, stack_level=1
        )
        res = await self._command(
            cp_id,
            "SetChargingProfile",
            self._profile_call(st, sess.evse_id, profile),
            {
                "purpose": "TxProfile",
                "profile_id": pid,
                "transaction_id": sess.transaction_id,
                "start": iso(start_s),
                "periods_kw": [list(p) for p in periods_kw],
            },
        )
        if res.accepted:
            st.profile = profile
        return res

    async def set_schedules(
        self, schedules: dict[str, Sequence[tuple[float, float]]], start_s: float
    ) -> list[CommandResult]:
        """:meth:`set_schedule` for many chargers concurrently."""
        jobs = [self.set_schedule(cp, p, start_s) for cp, p in schedules.items()]
        out = await asyncio.gather(*jobs)
        await self.audit.flush()
        return list(out)

    # message handling (called by the links) ------------------------------------------------
    async def meter(self, st: ChargerState, meter_value: list[dict[str, Any]]) -> None:
        st.last_seen_s = time.time()
        try:
            rows = readings_from_meter_values(st.cp_id, meter_value)
        except (KeyError, ValueError) as err:
            self.audit.record("ocpp.bad_meter_values", st.cp_id, {"reason": str(err)[:200]})
            return
        for _, q, unit, v, _ in rows:
            scale = 1e-3 if unit in ("W", "Wh") else 1.0
            if q == "p":
                st.power_kw = v * scale
            elif q == "energy":
                st.energy_kwh = v * scale
                if st.session is not None:
                    st.session.energy_wh = st.energy_kwh * 1000.0
            elif q == "soc":
                st.soc_pct = v
        await self.sink.submit(st.cp_id, rows)

    def session_started(
        self, st: ChargerState, tx_id: str, evse_id: int, ts: str, energy_wh: float, id_token: str
    ) -> EvSession:
        sess = EvSession(tx_id, st.cp_id, evse_id, unix(ts), energy_wh, energy_wh, id_token)
        st.session, st.profile = sess, None
        self.sessions.append(sess)
        self.audit.record("ocpp.session_start", st.cp_id, {"transaction_id": tx_id})
        return sess

    def session_ended(
        self, st: ChargerState, ts: str, energy_wh: float | None, reason: str
    ) -> None:
        sess = st.session
        if sess is None:
            return
        if energy_wh is not None:
            sess.energy_wh = energy_wh
        sess.stopped_s, sess.stop_reason = unix(ts), reason
        st.session, st.profile = None, None
        self.audit.record(
            "ocpp.session_end",
            st.cp_id,
            {"transaction_id": sess.transaction_id, "delivered_kwh": round(sess.delivered_kwh, 4)},
        )

    def malformed(self, cp_id: str, raw: str, err: OCPPError) -> None:
        self.malformed_frames += 1
        self.audit.record("ocpp.malformed_frame", cp_id, {"error": err.code, "raw": str(raw)[:200]})
