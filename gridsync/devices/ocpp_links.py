"""The CSMS's side of one charger connection: OCPP 2.0.1 / 1.6J message handlers.

Each handler updates :class:`~gridsync.devices.ocpp_csms.ChargerState` and hands meter values
and transactions to the :class:`~gridsync.devices.ocpp_csms.Csms`; a frame that is not valid
OCPP-J is answered with a CALLERROR and counted (:class:`_Frames`).
"""

from __future__ import annotations

import itertools
import logging
import time
from typing import TYPE_CHECKING

from ocpp.exceptions import OCPPError
from ocpp.messages import MessageType, unpack
from ocpp.routing import after, on
from ocpp.v16 import ChargePoint as ChargePoint16
from ocpp.v16 import call_result as result16
from ocpp.v201 import ChargePoint as ChargePoint201
from ocpp.v201 import call_result as result201

from gridsync.devices.ocpp_messages import iso, message_ids

if TYPE_CHECKING:
    from gridsync.devices.ocpp_csms import Csms

wire_log = logging.getLogger("gridsync.devices.ocpp.wire")


class _Frames:
    """Shared by both links: a malformed frame gets a CALLERROR, not a stack trace."""

    csms: Csms

    async def route_message(self, raw_msg):
        try:
            msg = unpack(raw_msg)
        except OCPPError as err:
            self.csms.malformed(self.id, raw_msg, err)
            await self._send(f'[4,"-1","{err.code}","{err.description}",{{}}]')
            return
        if msg.message_type_id == MessageType.Call:
            try:
                await self._handle_call(msg)
            except OCPPError as err:
                self.csms.malformed(self.id, raw_msg, err)
                await self._send(msg.create_call_error(err).to_json())
        elif msg.message_type_id in (MessageType.CallResult, MessageType.CallError):
            self._response_queue.put_nowait(msg)


class Link201(_Frames, ChargePoint201):
    def __init__(self, cp_id: str, ws, csms: Csms) -> None:
        super().__init__(cp_id, ws, response_timeout=csms.response_timeout_s, logger=wire_log)
        self._unique_id_generator = message_ids()
        self.csms, self.state = csms, csms.chargers[cp_id]

    @on("BootNotification")
    def on_boot(self, charging_station, reason, **_):
        self.state.vendor = charging_station.get("vendor_name", "")
        self.state.model = charging_station.get("model", "")
        return result201.BootNotification(iso(time.time()), self.csms.heartbeat_s, "Accepted")

    @after("BootNotification")
    async def after_boot(self, **_):
        await self.csms.install_default_profile(self.id)

    @on("Heartbeat")
    def on_heartbeat(self, **_):
        self.state.last_seen_s = time.time()
        return result201.Heartbeat(iso(time.time()))

    @on("StatusNotification")
    def on_status(self, timestamp, connector_status, evse_id, connector_id, **_):
        self.state.status = connector_status
        return result201.StatusNotification()

    @on("Authorize")
    def on_authorize(self, id_token, **_):
        return result201.Authorize(id_token_info={"status": "Accepted"})

    @on("MeterValues")
    async def on_meter_values(self, evse_id, meter_value, **_):
        await self.csms.meter(self.state, meter_value)
        return result201.MeterValues()

    @on("TransactionEvent")
    async def on_transaction(
        self,
        event_type,
        timestamp,
        trigger_reason,
        seq_no,
        transaction_info,
        meter_value=None,
        evse=None,
        id_token=None,
        **_,
    ):
        energy = None
        if meter_value:
            await self.csms.meter(self.state, meter_value)
            energy = self.state.energy_kwh * 1000.0
        tx = transaction_info["transaction_id"]
        if event_type == "Started":
            token = (id_token or {}).get("id_token", "")
            evse_id = (evse or {}).get("id", 1)
            self.csms.session_started(self.state, tx, evse_id, timestamp, energy or 0.0, token)
        elif event_type == "Ended":
            reason = transaction_info.get("stopped_reason", trigger_reason)
            self.csms.session_ended(self.state, timestamp, energy, reason)
        return result201.TransactionEvent()


class Link16(_Frames, ChargePoint16):
    def __init__(self, cp_id: str, ws, csms: Csms) -> None:
        super().__init__(cp_id, ws, response_timeout=csms.response_timeout_s, logger=wire_log)
        self._unique_id_generator = message_ids()
        self.csms, self.state = csms, csms.chargers[cp_id]
        self._tx = itertools.count(int(time.time()) % 1_000_000 * 1000)

    @on("BootNotification")
    def on_boot(self, charge_point_vendor, charge_point_model, **_):
        self.state.vendor, self.state.model = charge_point_vendor, charge_point_model
        return result16.BootNotification(iso(time.time()), self.csms.heartbeat_s, "Accepted")

    @after("BootNotification")
    async def after_boot(self, **_):
        await self.csms.install_default_profile(self.id)

    @on("Heartbeat")
    def on_heartbeat(self, **_):
        self.state.last_seen_s = time.time()
        return result16.Heartbeat(iso(time.time()))

    @on("StatusNotification")
    def on_status(self, connector_id, error_code, status, **_):
        self.state.status = status
        return result16.StatusNotification()

    @on("Authorize")
    def on_authorize(self, id_tag, **_):
        return result16.Authorize(id_tag_info={"status": "Accepted"})

    @on("MeterValues")
    async def on_meter_values(self, connector_id, meter_value, **_):
        await self.csms.meter(self.state, meter_value)
        return result16.MeterValues()

    @on("StartTransaction")
    def on_start(self, connector_id, id_tag, meter_start, timestamp, **_):
        tx = next(self._tx)
        self.csms.session_started(
            self.state, str(tx), connector_id, timestamp, float(meter_start), id_tag
        )
        return result16.StartTransaction(transaction_id=tx, id_tag_info={"status": "Accepted"})

    @on("StopTransaction")
    def on_stop(self, meter_stop, timestamp, transaction_id, reason=None, **_):
        self.csms.session_ended(self.state, timestamp, float(meter_stop), reason or "Local")
        return result16.StopTransaction()
