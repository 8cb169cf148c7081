"""Ledger: valid chains verify; every kind of tampering is detected at the right record."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from gridsync.ledger import JsonlLedger, LedgerSigner, verify_records
from gridsync.ledger.backend import verify_file
from gridsync.ledger.chain import record_hash
from gridsync.ledger.keys import generate_keypair, load_or_create_signer, load_public_key


@pytest.fixture
def signer():
    return LedgerSigner.generate()


def _ledger(tmp_path, signer, n=20, block_size=5):
    led = JsonlLedger(tmp_path / "ledger.jsonl", signer)
    led.append_many(
        (("trade", {"seller": "a", "buyer": "b", "energy_kwh": 0.5 + k, "n": k}) for k in range(n)),
        block_size=block_size,
    )
    return led


def _lines(led):
    return led.path.read_text().splitlines()


def _resign(rec, signer):
    """What a forger does: fix the hash (and signature) after editing a record."""
    rec["hash"] = record_hash(rec)
    if "sig" in rec:
        rec["sig"] = signer.sign(rec["hash"])
    return json.dumps(rec)


def _problems(report):
    return {(i.position, i.problem) for i in report.issues}


def test_valid_ledger_verifies_and_counts_signatures(tmp_path, signer):
    led = _ledger(tmp_path, signer, n=20, block_size=5)
    report = led.verify(signer.public_key)
    assert report.ok, report.issues
    assert report.n_records == 21  # genesis + 20
    assert report.n_signatures == 1 + 4  # genesis + one seal per block of 5
    assert report.head_hash == led.head_hash


def test_reopening_continues_the_chain(tmp_path, signer):
    led = _ledger(tmp_path, signer, n=3)
    again = JsonlLedger(led.path, signer)
    assert len(again) == 4
    again.append("mint", {"credits": 2})
    assert verify_file(led.path, signer.public_key).ok
    with pytest.raises(ValueError, match="another key"):
        JsonlLedger(led.path, LedgerSigner.generate())


def test_edited_record_is_located(tmp_path, signer):
    led = _ledger(tmp_path, signer)
    lines = _lines(led)
    rec = json.loads(lines[7])
    rec["data"]["energy_kwh"] = 99.0
    lines[7] = json.dumps(rec)
    report = verify_records(lines, signer.public_key)
    assert _problems(report) == {(7, "content altered")}


def test_edit_with_recomputed_hash_breaks_the_next_link(tmp_path, signer):
    led = _ledger(tmp_path, signer)
    lines = _lines(led)
    rec = json.loads(lines[7])
    rec["data"]["energy_kwh"] = 99.0
    lines[7] = _resign(rec, signer)
    assert _problems(verify_records(lines, signer.public_key)) == {(8, "chain broken")}


def test_deleted_record_is_located(tmp_path, signer):
    led = _ledger(tmp_path, signer)
    lines = _lines(led)
    del lines[4]
    problems = _problems(verify_records(lines, signer.public_key))
    assert (4, "chain broken") in problems
    assert (4, "out of sequence") in problems
    assert min(p for p, _ in problems) == 4


def test_reordered_records_are_located(tmp_path, signer):
    led = _ledger(tmp_path, signer)
    lines = _lines(led)
    lines[9], lines[10] = lines[10], lines[9]
    problems = _problems(verify_records(lines, signer.public_key))
    assert {(9, "out of sequence"), (10, "out of sequence"), (9, "chain broken")} <= problems
    assert all(p in (9, 10, 11) for p, _ in problems)


def test_forger_resigning_with_own_key_is_caught(tmp_path, signer):
    led = _ledger(tmp_path, signer, n=10, block_size=5)
    lines = _lines(led)
    forger = LedgerSigner.generate()
    # Edit record 5 (the seal of the first block) and re-sign it and everything after.
    prev = json.loads(lines[4])["hash"]
    for k in range(5, len(lines)):
        rec = json.loads(lines[k])
        if k == 5:
            rec["data"]["energy_kwh"] = 0.0
        rec["prev"] = prev
        lines[k] = _resign(rec, forger)
        prev = json.loads(lines[k])["hash"]
    report = verify_records(lines, signer.public_key)
    assert (5, "bad signature") in _problems(report)
    assert report.issues[0].position == 5


def test_wholesale_rewrite_needs_the_trusted_key(tmp_path, signer):
    forger = LedgerSigner.generate()
    fake = JsonlLedger(tmp_path / "fake.jsonl", forger)
    fake.append("trade", {"energy_kwh": 1.0})
    # Self-consistent, so it passes on its own genesis key...
    assert verify_file(fake.path).ok
    # ...but not against the operator's key.
    report = verify_file(fake.path, signer.public_key)
    assert (0, "wrong key") in _problems(report)
    assert (0, "bad signature") in _problems(report)


def test_appended_unsigned_record_is_flagged(tmp_path, signer):
    led = _ledger(tmp_path, signer, n=5)
    lines = _lines(led)
    rec = {"i": 6, "t": 0.0, "kind": "mint", "data": {"credits": 1e6}}
    rec["prev"] = json.loads(lines[-1])["hash"]
    rec["hash"] = record_hash(rec)
    lines.append(json.dumps(rec))
    assert _problems(verify_records(lines, signer.public_key)) == {(6, "unsealed")}


def test_garbage_line_is_located(tmp_path, signer):
    led = _ledger(tmp_path, signer, n=5)
    lines = _lines(led)
    lines[3] = lines[3][:40]
    problems = _problems(verify_records(lines, signer.public_key))
    assert (3, "unreadable") in problems


def test_keys_are_written_private_and_reloaded(tmp_path):
    priv, pub = generate_keypair(tmp_path / "keys")
    assert priv.stat().st_mode & 0o777 == 0o600
    with pytest.raises(FileExistsError):
        generate_keypair(tmp_path / "keys")
    signer = load_or_create_signer(tmp_path / "keys")
    assert signer.public_key.public_bytes_raw() == load_public_key(pub).public_bytes_raw()


def test_cli_verify_exit_codes_and_location(tmp_path, signer):
    from gridsync.cli.main import cli

    keydir = tmp_path / "keys"
    runner = CliRunner()
    assert runner.invoke(cli, ["ledger", "keygen", "--key-dir", str(keydir)]).exit_code == 0
    op = load_or_create_signer(keydir)
    led = _ledger(tmp_path, op, n=8)
    pub = str(keydir / "ledger_ed25519.pub.pem")
    ok = runner.invoke(cli, ["ledger", "verify", str(led.path), "--public-key", pub])
    assert ok.exit_code == 0, ok.output
    assert ok.output.startswith("OK")
    head = led.head_hash[:12]
    lines = _lines(led)
    led.path.write_text("\n".join(lines[:-1]) + "\n")  # truncate the last record
    cut = runner.invoke(
        cli, ["ledger", "verify", str(led.path), "--public-key", pub, "--expect-head", head]
    )
    assert cut.exit_code == 1
    assert "head mismatch" in cut.output
    bad = lines[:]
    bad[2] = bad[2].replace('"energy_kwh":', '"energy_kwh":1')
    led.path.write_text("\n".join(bad) + "\n")
    res = runner.invoke(cli, ["ledger", "verify", str(led.path), "--json"])
    assert res.exit_code == 1
    issues = json.loads(res.output)["issues"]
    assert issues[0]["position"] == 2 and issues[0]["problem"] == "content altered"
