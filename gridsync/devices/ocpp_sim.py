"""Simulated EV chargers for hardware-in-the-loop runs: real OCPP clients (``ocpp`` package).

A :class:`SimCharger` is one charging station with one EVSE. It connects to a CSMS with HTTP
Basic auth (security profile 1/2), boots, reports its connector status, opens and closes
transactions when a car plugs in and leaves, sends ``MeterValues`` (power, energy register,
the car's state of charge) and obeys ``SetChargingProfile``:

* ``TxDefaultProfile`` (any time) is the limit without a session-specific one;
* ``TxProfile`` applies only to the running transaction (another id -> Rejected) and is
  dropped when the transaction ends or the connection to the CSMS is lost: the charger then
  falls back to its default profile (a common charger setting, and what the CSMS tells the
  shield to assume);
* a negative limit (discharge) is accepted only by a V2G charger (``v2g=True``).

The physical side (what the car draws, the meter) is not simulated here: the driver (the twin
loop or the bench) reads :meth:`SimCharger.limit_kw` and writes :attr:`SimCharger.power_kw` /
:attr:`SimCharger.energy_kwh`, as a real charger's power electronics and meter would.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import random
import time
import uuid
from typing import Any

from ocpp.routing import on
from ocpp.v16 import ChargePoint as ChargePoint16
from ocpp.v16 import call as call16
from ocpp.v16 import call_result as result16
from ocpp.v201 import ChargePoint as ChargePoint201
from ocpp.v201 import call as call201
from ocpp.v201 import call_result as result201
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from gridsync.devices.ocpp_messages import iso, limit_w_at, message_ids, sampled_values

log = logging.getLogger(__name__)
wire_log = logging.getLogger("gridsync.devices.ocpp.wire")


class SimCharger:
    """One simulated charging station (see the module docstring); ``await start()``."""

    def __init__(
        self,
        cp_id: str,
        url: str,
        key: str | None = None,
        version: str = "2.0.1",
        max_power_kw: float = 11.0,
        v2g: bool = False,
        meter_interval_s: float | None = None,
        reconnect_s: float = 1.0,
        ssl: Any = None,
        validate: bool = True,
    ) -> None:
        if version not in ("2.0.1", "1.6"):
            msg = f"version: {version!r} is not an OCPP version this simulator speaks; expected '2.0.1' or '1.6'"
            raise ValueError(msg)
        self.cp_id, self.url, self.key, self.version = cp_id, url, key, version
        self.max_power_kw, self.v2g = max_power_kw, v2g
        self.meter_interval_s, self.reconnect_s, self.ssl = meter_interval_s, reconnect_s, ssl
        self.validate = validate  # schema-check the CSMS's requests (a real charger's own CPU)
        self.power_kw = 0.0
        self.energy_kwh = 0.0
        self.soc_pct: float | None = None
        self.profiles: dict[str, dict[str, Any]] = {}  # purpose -> profile
        self.transaction_id: str | None = None
        self.session_start_s: float | None = None
        self.meter_messages = 0  # MeterValues the CSMS acknowledged
        self.meter_readings_sent = 0  # meter values acknowledged, incl. transaction events
        self.meter_attempts = 0  # MeterValues begun (acknowledged or not)
        self.metering = True  # False pauses the periodic meter values
        self.rejected_profiles = 0
        self.auth_failures = 0
        self.connected = asyncio.Event()
        self._link: _SimLink201 | _SimLink16 | None = None
        self._task: asyncio.Task | None = None
        self._online = asyncio.Event()
        self._online.set()
        self._seq = 0

    # life cycle ---------------------------------------------------------------------------
    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"sim-charger:{self.cp_id}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._task = None

    async def drop(self) -> None:
        """The network fails: the socket dies without a close handshake and the charger stays
        away until :meth:`resume`."""
        self._online.clear()
        link = self._link
        if link is not None:
            link._connection.transport.abort()

    def resume(self) -> None:
        self._online.set()

    async def _run(self) -> None:
        headers = {}
        if self.key is not None:
            token = base64.b64encode(f"{self.cp_id}:{self.key}".encode()).decode()
            headers["Authorization"] = f"Basic {token}"
        while True:
            await self._online.wait()
            try:
                async with connect(
                    f"{self.url}/{self.cp_id}",
                    subprotocols=[f"ocpp{self.version}"],
                    additional_headers=headers,
                    ping_interval=None,
                    compression=None,
                    ssl=self.ssl,
                    open_timeout=30,
                ) as ws:
                    await self._session(ws)
            except InvalidStatus:
                self.auth_failures += 1
            except (OSError, ConnectionClosed, TimeoutError) as err:
                log.debug("%s: connection ended: %r", self.cp_id, err)
            finally:
                self._connection_lost()
            await asyncio.sleep(self.reconnect_s * (0.5 + random.random()))

    async def _session(self, ws: ClientConnection) -> None:
        cls = _SimLink201 if self.version == "2.0.1" else _SimLink16
        link = cls(self.cp_id, ws, self)
        if not self.validate:
            for route in link.route_map.values():
                route["_skip_schema_validation"] = True
        reader = asyncio.create_task(link.start())
        try:
            await self._boot(link)
            self._link = link
            self.connected.set()
            ticker = None
            if self.meter_interval_s:
                ticker = asyncio.create_task(self._meter_loop())
            try:
                await reader
            finally:
                if ticker is not None:
                    ticker.cancel()
        finally:
            reader.cancel()

    def _connection_lost(self) -> None:
        self._link = None
        self.connected.clear()
        self.profiles.pop("TxProfile", None)  # fall back to the default profile

    async def _meter_loop(self) -> None:
        """Meter values on a fixed clock (a slow answer delays one message, not the rest)."""
        period = self.meter_interval_s
        due = time.monotonic() + random.random() * period
        while True:
            await asyncio.sleep(max(due - time.monotonic(), 0.0))
            if self.metering:
                with contextlib.suppress(TimeoutError):
                    await self.send_meter_values()
            due += period
            while due < time.monotonic():  # overran a whole period: skip, never burst
                due += period

    # what the charger runs ----------------------------------------------------------------
    def limit_kw(self, now_s: float | None = None) -> float:
        """The power limit in force (kW, negative = discharge): the transaction's TxProfile,
        else the default profile, else the rated power; clipped to what the hardware can do."""
        t = time.time() if now_s is None else now_s
        limit_w = None
        tx = self.profiles.get("TxProfile")
        if tx is not None and self.transaction_id is not None:
            limit_w = limit_w_at(tx, t, self.session_start_s)
        if limit_w is None and "TxDefaultProfile" in self.profiles:
            limit_w = limit_w_at(self.profiles["TxDefaultProfile"], t, self.session_start_s or t)
        kw = self.max_power_kw if limit_w is None else limit_w / 1000.0
        lo = -self.max_power_kw if self.v2g else 0.0
        return min(max(kw, lo), self.max_power_kw)

    def accept_profile(self, profile: dict[str, Any]) -> str:
        """Store a profile the CSMS sent; returns ``Accepted`` or ``Rejected``."""
        purpose = profile["charging_profile_purpose"]
        periods = (
            profile["charging_schedule"][0]
            if isinstance(profile["charging_schedule"], list)
            else profile["charging_schedule"]
        )["charging_schedule_period"]
        negative = any(float(p["limit"]) < 0 for p in periods)
        wrong_tx = purpose == "TxProfile" and (
            self.transaction_id is None or str(profile.get("transaction_id")) != self.transaction_id
        )
        if (
            purpose not in ("TxProfile", "TxDefaultProfile")
            or wrong_tx
            or (negative and not self.v2g)
        ):
            self.rejected_profiles += 1
            return "Rejected"
        self.profiles[purpose] = profile
        return "Accepted"

    # messages the charger sends -----------------------------------------------------------
    @staticmethod
    async def _call(link, payload, suppress: bool = True):
        """Send a CALL; the CSMS validates it on arrival (the package's own pre-send check
        would double the simulated charger's CPU, which shares the machine with GridSync)."""
        return await link.call(payload, suppress=suppress, skip_schema_validation=True)

    async def _boot(self, link) -> None:
        if self.version == "2.0.1":
            await self._call(
                link,
                call201.BootNotification(
                    charging_station={"model": "HIL-AC22", "vendor_name": "GridSync-sim"},
                    reason="PowerUp",
                ),
            )
            await self._call(
                link, call201.StatusNotification(iso(time.time()), self._status(), 1, 1)
            )
        else:
            await self._call(link, call16.BootNotification("HIL-AC22", "GridSync-sim"))
            await self._call(link, call16.StatusNotification(1, "NoError", self._status16()))

    def _status(self) -> str:
        return "Occupied" if self.transaction_id else "Available"

    def _status16(self) -> str:
        return "Charging" if self.transaction_id else "Available"

    def _meter_value(self) -> list[dict[str, Any]]:
        sv = sampled_values(
            self.version, self.power_kw * 1000.0, self.energy_kwh * 1000.0, self.soc_pct
        )
        return [{"timestamp": iso(time.time()), "sampled_value": sv}]

    async def send_meter_values(self) -> bool:
        """One MeterValues message now; True when the CSMS acknowledged it."""
        link = self._link
        if link is None:
            return False
        self.meter_attempts += 1
        if self.version == "2.0.1":
            payload = call201.MeterValues(evse_id=1, meter_value=self._meter_value())
        else:
            tx = int(self.transaction_id) if self.transaction_id else None
            payload = call16.MeterValues(1, self._meter_value(), tx)
        try:
            await self._call(link, payload, suppress=False)
        except ConnectionClosed:
            return False
        self.meter_messages += 1
        self.meter_readings_sent += 1
        return True

    async def plug_in(self, id_token: str = "car") -> str:
        """A car plugs in and is authorised: a transaction starts; returns its id."""
        link = self._link
        if link is None:
            msg = f"charger {self.cp_id} is not connected"
            raise ConnectionError(msg)
        now = time.time()
        if self.version == "2.0.1":
            tx = uuid.uuid4().hex[:20]
            self.transaction_id, self.session_start_s = tx, now
            self._seq += 1
            await self._call(
                link,
                call201.TransactionEvent(
                    event_type="Started",
                    timestamp=iso(now),
                    trigger_reason="Authorized",
                    seq_no=self._seq,
                    transaction_info={"transaction_id": tx, "charging_state": "Charging"},
                    meter_value=self._meter_value(),
                    evse={"id": 1, "connector_id": 1},
                    id_token={"id_token": id_token, "type": "Central"},
                ),
            )
            self.meter_readings_sent += 1
            await self._call(link, call201.StatusNotification(iso(now), "Occupied", 1, 1))
        else:
            res = await self._call(
                link,
                call16.StartTransaction(1, id_token, round(self.energy_kwh * 1000.0), iso(now)),
            )
            self.transaction_id, self.session_start_s = str(res.transaction_id), now
            await self._call(link, call16.StatusNotification(1, "NoError", "Charging"))
        return self.transaction_id

    async def unplug(self) -> None:
        """The car leaves: the transaction ends and the TxProfile with it."""
        tx, link, now = self.transaction_id, self._link, time.time()
        self.transaction_id, self.session_start_s = None, None
        self.profiles.pop("TxProfile", None)
        if tx is None or link is None:
            return
        if self.version == "2.0.1":
            self._seq += 1
            await self._call(
                link,
                call201.TransactionEvent(
                    event_type="Ended",
                    timestamp=iso(now),
                    trigger_reason="EVDeparted",
                    seq_no=self._seq,
                    transaction_info={"transaction_id": tx, "stopped_reason": "EVDisconnected"},
                    meter_value=self._meter_value(),
                ),
            )
            self.meter_readings_sent += 1
            await self._call(link, call201.StatusNotification(iso(now), "Available", 1, 1))
        else:
            await self._call(
                link,
                call16.StopTransaction(
                    round(self.energy_kwh * 1000.0), iso(now), int(tx), "EVDisconnected"
                ),
            )
            await self._call(link, call16.StatusNotification(1, "NoError", "Available"))


class _SimLink201(ChargePoint201):
    def __init__(self, cp_id: str, ws, charger: SimCharger) -> None:
        super().__init__(cp_id, ws, response_timeout=30, logger=wire_log)
        self._unique_id_generator = message_ids()
        self.charger = charger

    @on("SetChargingProfile")
    def on_set_profile(self, evse_id, charging_profile, **_):
        return result201.SetChargingProfile(self.charger.accept_profile(charging_profile))

    @on("ClearChargingProfile")
    def on_clear(self, charging_profile_id=None, **_):
        self.charger.profiles = {
            k: p for k, p in self.charger.profiles.items() if p.get("id") != charging_profile_id
        }
        return result201.ClearChargingProfile("Accepted")


class _SimLink16(ChargePoint16):
    def __init__(self, cp_id: str, ws, charger: SimCharger) -> None:
        super().__init__(cp_id, ws, response_timeout=30, logger=wire_log)
        self._unique_id_generator = message_ids()
        self.charger = charger

    @on("SetChargingProfile")
    def on_set_profile(self, connector_id, cs_charging_profiles, **_):
        return result16.SetChargingProfile(self.charger.accept_profile(cs_charging_profiles))

    @on("ClearChargingProfile")
    def on_clear(self, id=None, **_):
        self.charger.profiles = {
            k: p for k, p in self.charger.profiles.items() if p.get("charging_profile_id") != id
        }
        return result16.ClearChargingProfile("Accepted")
