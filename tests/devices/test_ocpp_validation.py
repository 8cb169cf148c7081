"""The compiled OCPP payload check decides exactly as the ``ocpp`` package's own JSON-schema
validator (the reference): same payloads accepted, same OCPP error for each refused one."""

from __future__ import annotations

import copy
import json

import pytest
from jsonschema import Draft4Validator
from ocpp import messages
from ocpp.charge_point import snake_to_camel_case
from ocpp.exceptions import OCPPError

from gridsync.devices.ocpp_messages import charging_profile, iso, sampled_values


def _outcome(msg: messages.Call, schema_of=None) -> str:
    """The error class name the package raises for ``msg`` (``ok`` when valid); with
    ``schema_of`` the package's plain ``Draft4Validator`` of that schema decides."""
    original = messages.get_validator
    if schema_of is not None:
        messages.get_validator = lambda *a, **k: Draft4Validator(schema_of(*a, **k).schema)
    try:
        messages._validate_payload(copy.deepcopy(msg), msg_version(msg))
    except OCPPError as err:
        return type(err).__name__
    finally:
        messages.get_validator = original
    return "ok"


def msg_version(msg) -> str:
    return "1.6" if "connectorId" in msg.payload else "2.0.1"


def _set_profile_201(**change) -> messages.Call:
    prof = charging_profile("2.0.1", 7, "TxProfile", [(0, 4.2), (900, 7.4)], 1.7e9, "tx-1", 1)
    payload = snake_to_camel_case({"evse_id": 1, "charging_profile": prof})
    sched = payload["chargingProfile"]["chargingSchedule"][0]
    for key, value in change.items():
        if key == "limit":
            sched["chargingSchedulePeriod"][0]["limit"] = value
        elif key == "drop":
            del payload["chargingProfile"][value]
        else:
            payload["chargingProfile"][key] = value
    return messages.Call("1", "SetChargingProfile", payload)


def _meter_201(value) -> messages.Call:
    sv = snake_to_camel_case(sampled_values("2.0.1", 4200.0, 1.5e4, 40.0))
    sv[0]["value"] = value
    mv = [{"timestamp": iso(1.7e9), "sampledValue": sv}]
    return messages.Call("2", "MeterValues", {"evseId": 1, "meterValue": mv})


CASES = {
    "valid profile": _set_profile_201(),
    "limit is text": _set_profile_201(limit="4200"),
    "unknown field": _set_profile_201(surprise=1),
    "missing kind": _set_profile_201(drop="chargingProfileKind"),
    "bad purpose": _set_profile_201(chargingProfilePurpose="Whatever"),
    "valid meter values": _meter_201(4200.0),
    "meter value is null": _meter_201(None),
}


@pytest.mark.parametrize("name", list(CASES))
def test_compiled_check_decides_as_the_package_validator(name):
    msg = CASES[name]
    want = _outcome(msg, schema_of=messages.get_validator)
    assert _outcome(msg) == want
    assert (want == "ok") == name.startswith("valid")


def test_ocpp16_schedules_keep_the_packages_decimal_check():
    """1.6 limits have one decimal (multipleOf 0.1, checked on Decimal values)."""
    prof = snake_to_camel_case(charging_profile("1.6", 3, "TxProfile", [(0, 4.2)], 1.7e9, 11, 1))
    ok = messages.Call("3", "SetChargingProfile", {"connectorId": 1, "csChargingProfiles": prof})
    assert _outcome(ok) == "ok"
    bad = json.loads(json.dumps(ok.payload))
    bad["csChargingProfiles"]["chargingSchedule"]["chargingSchedulePeriod"][0]["limit"] = 4200.05
    assert _outcome(messages.Call("4", "SetChargingProfile", bad)) != "ok"
