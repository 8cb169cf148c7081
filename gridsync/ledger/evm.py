"""EVM smart-contract backend for the ledger (``LedgerAnchor.sol``).

The same records as the file ledger (canonical JSON body, SHA-256 hash, Ed25519 seal), but
stored through a contract that refuses any record whose hash is not the SHA-256 of its body or
that does not extend the current head, and that only its deployer (the operator) may append
to. Records come back from the contract's ``Record`` events, and ``verify`` runs the same
offline verifier as ``gridsync ledger verify`` plus a check that the contract's head and count
match. ``Web3`` defaults to an in-process chain (eth-tester + py-evm); pass any ``Web3`` to use
a real node. The compiled contract ships in ``contracts/LedgerAnchor.json`` (solcjs 0.8.37).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from importlib import resources

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from gridsync.ledger.backend import ChainedLedger
from gridsync.ledger.chain import (
    ZERO_HASH,
    VerifyIssue,
    VerifyReport,
    canonical_json,
    verify_records,
)
from gridsync.ledger.keys import LedgerSigner

BODY_FIELDS = ("i", "t", "kind", "data", "prev")


def contract_artifact() -> dict:
    text = resources.files("gridsync.ledger").joinpath("contracts/LedgerAnchor.json").read_text()
    return json.loads(text)


class EvmLedger(ChainedLedger):
    """A ledger kept by the ``LedgerAnchor`` contract.

    ``address=None`` deploys a new contract (and writes the genesis record); otherwise the
    ledger continues the contract at ``address``.
    """

    def __init__(
        self, signer: LedgerSigner, w3=None, address: str | None = None, account=None
    ) -> None:
        if w3 is None:
            from web3 import EthereumTesterProvider, Web3

            w3 = Web3(EthereumTesterProvider())
        self.w3 = w3
        self.signer = signer
        self.account = account or w3.eth.accounts[0]
        art = contract_artifact()
        if address is None:
            factory = w3.eth.contract(abi=art["abi"], bytecode=art["bytecode"])
            tx = factory.constructor().transact({"from": self.account})
            address = w3.eth.wait_for_transaction_receipt(tx).contractAddress
            self.contract = w3.eth.contract(address=address, abi=art["abi"])
            self._start()
        else:
            self.contract = w3.eth.contract(address=address, abi=art["abi"])
            self._count = int(self.contract.functions.count().call())
            self._head = self._onchain_head()

    @property
    def address(self) -> str:
        return self.contract.address

    def _onchain_head(self) -> str:
        head = bytes(self.contract.functions.head().call()).hex()
        return head if int(head, 16) else ZERO_HASH

    def _store(self, records: list[dict]) -> None:
        hashes = [bytes.fromhex(r["hash"]) for r in records]
        bodies = [canonical_json({k: r[k] for k in BODY_FIELDS}) for r in records]
        sigs = [bytes.fromhex(r.get("sig", "")) for r in records]
        tx = self.contract.functions.append(hashes, bodies, sigs).transact({"from": self.account})
        receipt = self.w3.eth.wait_for_transaction_receipt(tx)
        if receipt.status != 1:
            msg = f"ledger contract rejected records {records[0]['i']}..{records[-1]['i']}"
            raise RuntimeError(msg)

    def records(self) -> Iterator[dict]:
        logs = self.contract.events.Record().get_logs(from_block=0)
        for log in sorted(logs, key=lambda e: e.args["index"]):
            rec = json.loads(log.args["body"])
            rec["hash"] = bytes(log.args["hash"]).hex()
            if log.args["sig"]:
                rec["sig"] = bytes(log.args["sig"]).hex()
            yield rec

    def verify(self, trusted_key: Ed25519PublicKey | None = None) -> VerifyReport:
        report = verify_records((canonical_json(r) for r in self.records()), trusted_key)
        count = int(self.contract.functions.count().call())
        head = self._onchain_head()
        if count != report.n_records or head != report.head_hash:
            report.issues.append(
                VerifyIssue(
                    report.n_records - 1,
                    "head mismatch",
                    f"contract holds {count} records with head {head[:16]}, events give "
                    f"{report.n_records} with head {report.head_hash[:16]}",
                )
            )
        return report

    def export_jsonl(self, path) -> int:
        """Write the on-chain records as a JSON-lines file for ``gridsync ledger verify``."""
        n = 0
        with open(path, "w", encoding="utf-8") as fh:
            for rec in self.records():
                fh.write(canonical_json(rec) + "\n")
                n += 1
        return n
