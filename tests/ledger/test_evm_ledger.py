"""EVM backend on an in-process chain: same records, chain enforced by the contract itself."""

from __future__ import annotations

import hashlib

import pytest

from gridsync.ledger import LedgerSigner
from gridsync.ledger.backend import verify_file
from gridsync.ledger.evm import EvmLedger


@pytest.fixture(scope="module")
def evm():
    signer = LedgerSigner.generate()
    led = EvmLedger(signer)
    led.append_many(
        (("trade", {"seller": "a", "buyer": "b", "energy_kwh": 0.5 * k}) for k in range(12)),
        block_size=5,
    )
    led.append("credit_mint", {"to": "a", "credits": 1.5})
    return led, signer


def test_records_roundtrip_and_verify(evm):
    led, signer = evm
    recs = list(led.records())
    assert [r["i"] for r in recs] == list(range(14))
    assert recs[0]["kind"] == "genesis" and recs[-1]["kind"] == "credit_mint"
    report = led.verify(signer.public_key)
    assert report.ok, report.issues
    assert report.n_signatures == 1 + 3 + 1  # genesis, three blocks, the single append
    assert led.head_hash == report.head_hash


def test_contract_refuses_bad_hash_and_strangers(evm):
    led, _ = evm
    body = '{"data":{},"i":99,"kind":"x","prev":"00","t":0}'
    good = hashlib.sha256(body.encode()).digest()
    with pytest.raises(Exception, match="hash does not match body"):
        led.contract.functions.append([b"\x00" * 32], [body], [b""]).transact({"from": led.account})
    stranger = led.w3.eth.accounts[1]
    with pytest.raises(Exception, match="only the ledger operator"):
        led.contract.functions.append([good], [body], [b""]).transact({"from": stranger})
    assert led.contract.functions.count().call() == len(led)


def test_reattach_continues_chain_and_export_verifies_offline(evm, tmp_path):
    led, signer = evm
    again = EvmLedger(signer, w3=led.w3, address=led.address)
    assert len(again) == len(led) and again.head_hash == led.head_hash
    again.append("credit_redeem", {"from": "a", "credits": 0.5})
    assert again.verify(signer.public_key).ok
    path = tmp_path / "export.jsonl"
    assert again.export_jsonl(path) == len(again)
    assert verify_file(path, signer.public_key).ok
    # Tampering with the exported copy is caught by the offline verifier.
    lines = path.read_text().splitlines()
    lines[3] = lines[3].replace('"energy_kwh":1.0', '"energy_kwh":9.0')
    path.write_text("\n".join(lines) + "\n")
    assert [i.position for i in verify_file(path, signer.public_key).issues] == [3]
