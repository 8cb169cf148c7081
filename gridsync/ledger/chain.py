"""Record format, hashing and offline verification of a hash-chained, signed ledger.

Each record is one JSON object: ``i`` (position, from 0), ``t`` (append time, unix seconds),
``kind``, ``data``, ``prev`` (hash of record ``i-1``; 64 zeros for the genesis record) and
``hash`` = SHA-256 of the canonical JSON of those five fields. Records that close a block carry
``sig``: an Ed25519 signature over their hash. Because every hash covers its predecessor, one
signature seals the whole chain up to it; a ledger is valid only if its last record is signed.
Record 0 (``kind = "genesis"``) names the ledger's public key.

Verification recomputes every hash, follows every ``prev`` link, checks every signature and
reports each problem with the position of the record where it shows.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from gridsync.ledger.keys import fingerprint, public_key_from_hex, public_key_hex, signature_valid

FORMAT = "gridsync-ledger-v1"
ZERO_HASH = "0" * 64
BODY_FIELDS = ("i", "t", "kind", "data", "prev")


def canonical_json(obj: object) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False)


def record_hash(record: dict) -> str:
    """SHA-256 (hex) of the canonical JSON of a record's body fields."""
    body = {k: record[k] for k in BODY_FIELDS}
    return hashlib.sha256(canonical_json(body).encode()).hexdigest()


@dataclass(frozen=True)
class VerifyIssue:
    """One problem: ``position`` is the 0-based line of the record where it shows."""

    position: int
    problem: str
    detail: str

    def __str__(self) -> str:
        return f"record {self.position}: {self.problem}: {self.detail}"


@dataclass
class VerifyReport:
    n_records: int = 0
    head_hash: str = ZERO_HASH
    key_fingerprint: str = ""
    key_trusted: bool = False
    n_signatures: int = 0
    issues: list[VerifyIssue] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.issues

    def summary(self) -> str:
        trust = "trusted key" if self.key_trusted else "key taken from the genesis record"
        status = "OK" if self.ok else f"TAMPERED ({len(self.issues)} problem(s))"
        return (
            f"{status}: {self.n_records} records, {self.n_signatures} signatures, "
            f"head {self.head_hash[:16]}…, {trust} {self.key_fingerprint}"
        )


def verify_records(
    lines: Iterable[str | bytes], trusted_key: Ed25519PublicKey | None = None
) -> VerifyReport:
    """Check a ledger given as JSON lines; with ``trusted_key`` also check whose ledger it is.

    Without a trusted key the genesis record's key is used, which proves integrity but not
    authorship: someone who rewrites the whole file with their own key passes. Pass the
    operator's public key to rule that out.
    """
    report = VerifyReport()
    key = trusted_key
    report.key_trusted = trusted_key is not None
    if trusted_key is not None:
        report.key_fingerprint = fingerprint(trusted_key)
    expected_prev: str | None = ZERO_HASH
    expected_index = 0
    first_unsealed: int | None = None
    pos = -1
    for pos, line in enumerate(lines):
        report.n_records = pos + 1
        try:
            rec = json.loads(line)
            stored_hash = rec["hash"]
            computed = _fast_hash(line, rec) or record_hash(rec)
        except (ValueError, KeyError, TypeError) as err:
            report.issues.append(VerifyIssue(pos, "unreadable", f"not a ledger record ({err})"))
            expected_prev = None
            expected_index += 1
            first_unsealed = pos if first_unsealed is None else first_unsealed
            continue
        if rec["i"] != expected_index:
            report.issues.append(
                VerifyIssue(
                    pos,
                    "out of sequence",
                    f"record claims index {rec['i']} at position {pos}, expected "
                    f"{expected_index}: records were deleted, inserted or reordered here",
                )
            )
        # Follow the claimed numbering so one gap is reported once, not on every later record.
        expected_index = rec["i"] + 1 if isinstance(rec["i"], int) else expected_index + 1
        if computed != stored_hash:
            report.issues.append(
                VerifyIssue(pos, "content altered", "the stored hash does not match the record")
            )
        if expected_prev is not None and rec["prev"] != expected_prev:
            report.issues.append(
                VerifyIssue(
                    pos,
                    "chain broken",
                    "prev does not match the hash of the record before it: that record was "
                    "altered, removed or moved",
                )
            )
        if pos == 0:
            key = _genesis_key(rec, trusted_key, report)
        if "sig" in rec:
            report.n_signatures += 1
            if key is None or not signature_valid(key, computed, rec["sig"]):
                report.issues.append(
                    VerifyIssue(pos, "bad signature", "not signed by the ledger key")
                )
            else:
                first_unsealed = None
        elif first_unsealed is None:
            first_unsealed = pos
        expected_prev = stored_hash
        report.head_hash = stored_hash
    if first_unsealed is not None:
        report.issues.append(
            VerifyIssue(
                first_unsealed,
                "unsealed",
                f"records {first_unsealed}..{pos} are not covered by a valid signature "
                "(appended after the last seal, or a seal was removed)",
            )
        )
    if report.n_records == 0:
        report.issues.append(VerifyIssue(0, "empty", "the ledger has no genesis record"))
    return report


def _fast_hash(line: str | bytes, rec: dict) -> str | None:
    """Hash of the body taken verbatim from a canonically written line, if it matches.

    Lines are written as canonical JSON, so the body is the line minus its ``hash`` and ``sig``
    members; hashing that slice skips re-serialising. A match is conclusive (the writer hashed
    exactly these bytes); anything else falls back to the canonical re-serialisation.
    """
    text = line.decode() if isinstance(line, bytes) else line
    text = text.rstrip("\n")
    body = text.replace(f',"hash":"{rec["hash"]}"', "", 1)
    if "sig" in rec:
        body = body.replace(f',"sig":"{rec["sig"]}"', "", 1)
    digest = hashlib.sha256(body.encode()).hexdigest()
    return digest if digest == rec["hash"] else None


def _genesis_key(
    rec: dict, trusted_key: Ed25519PublicKey | None, report: VerifyReport
) -> Ed25519PublicKey | None:
    data = rec.get("data") if isinstance(rec.get("data"), dict) else {}
    if rec.get("kind") != "genesis" or "public_key" not in data:
        report.issues.append(
            VerifyIssue(0, "no genesis", "record 0 is not a genesis record naming the key")
        )
        return trusted_key
    try:
        genesis_key = public_key_from_hex(data["public_key"])
    except ValueError as err:
        report.issues.append(VerifyIssue(0, "no genesis", str(err)))
        return trusted_key
    if trusted_key is not None and public_key_hex(trusted_key) != data["public_key"]:
        report.issues.append(
            VerifyIssue(
                0,
                "wrong key",
                f"genesis names key {fingerprint(genesis_key)}, the trusted key is "
                f"{fingerprint(trusted_key)}: the ledger was re-signed by someone else",
            )
        )
        return trusted_key
    if trusted_key is None:
        report.key_fingerprint = fingerprint(genesis_key)
    return trusted_key or genesis_key
