"""Append-only, hash-chained, Ed25519-signed ledger for trades, meter readings and credits."""

from gridsync.ledger.backend import JsonlLedger, LedgerBackend
from gridsync.ledger.chain import VerifyIssue, VerifyReport, verify_records
from gridsync.ledger.keys import LedgerSigner, generate_keypair, load_private_key, load_public_key

__all__ = [
    "JsonlLedger",
    "LedgerBackend",
    "LedgerSigner",
    "VerifyIssue",
    "VerifyReport",
    "generate_keypair",
    "load_private_key",
    "load_public_key",
    "verify_records",
]
