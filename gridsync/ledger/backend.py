"""The ``LedgerBackend`` interface and its JSON-lines file implementation.

The market talks only to ``LedgerBackend``: append one entry (signed on its own) or a block of
entries (one signature seals the block through the hash chain), read entries back, verify.
``JsonlLedger`` keeps records in a file; ``gridsync.ledger.evm.EvmLedger`` keeps them in an
EVM smart contract that itself enforces the hash chain (tested on an in-process chain).
"""

from __future__ import annotations

import json
import os
import time
import weakref
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from gridsync.ledger.chain import (
    FORMAT,
    ZERO_HASH,
    VerifyReport,
    canonical_json,
    record_hash,
    verify_records,
)
from gridsync.ledger.keys import LedgerSigner, public_key_hex

Entry = tuple[str, dict]


class LedgerBackend(ABC):
    """An append-only store of signed, hash-chained records."""

    @abstractmethod
    def append(self, kind: str, data: dict) -> dict:
        """Append one record, signed on its own; returns the stored record."""

    @abstractmethod
    def append_many(self, entries: Iterable[Entry], block_size: int = 1000) -> int:
        """Append records in blocks of ``block_size``, each sealed by one signature."""

    @abstractmethod
    def records(self) -> Iterator[dict]:
        """Every record in order, genesis first."""

    @abstractmethod
    def verify(self, trusted_key: Ed25519PublicKey | None = None) -> VerifyReport:
        """Check hashes, links and signatures of the whole ledger."""


class ChainedLedger(LedgerBackend):
    """Builds, hashes and signs records; subclasses only store them (``_store``)."""

    signer: LedgerSigner
    _count: int
    _head: str

    def __len__(self) -> int:
        return self._count

    @property
    def head_hash(self) -> str:
        return self._head

    def _start(self) -> None:
        self._count, self._head = 0, ZERO_HASH
        self.append(
            "genesis", {"format": FORMAT, "public_key": public_key_hex(self.signer.public_key)}
        )

    def _build(self, kind: str, data: dict, sign: bool) -> dict:
        rec = {"i": self._count, "t": time.time(), "kind": kind, "data": data, "prev": self._head}
        rec["hash"] = record_hash(rec)
        if sign:
            rec["sig"] = self.signer.sign(rec["hash"])
        self._count += 1
        self._head = rec["hash"]
        return rec

    @abstractmethod
    def _store(self, records: list[dict]) -> None:
        """Persist a block of records (the last one signed)."""

    def append(self, kind: str, data: dict) -> dict:
        rec = self._build(kind, data, sign=True)
        self._store([rec])
        return rec

    def append_many(self, entries: Iterable[Entry], block_size: int = 1000) -> int:
        if block_size < 1:
            msg = f"block_size must be >= 1, got {block_size}"
            raise ValueError(msg)
        entries = list(entries)
        block: list[dict] = []
        for k, (kind, data) in enumerate(entries):
            last_of_block = (k + 1) % block_size == 0 or k == len(entries) - 1
            block.append(self._build(kind, data, sign=last_of_block))
            if last_of_block:
                self._store(block)
                block = []
        return len(entries)


class JsonlLedger(ChainedLedger):
    """A ledger in a JSON-lines file: one record per line, only ever appended to.

    Opening an existing file continues its chain; the signer must hold the key named in its
    genesis record. ``durable=True`` fsyncs after every block.
    """

    def __init__(self, path: str | Path, signer: LedgerSigner, durable: bool = False) -> None:
        self.path = Path(path)
        self.signer = signer
        self.durable = durable
        self._fh = None
        if self.path.exists() and self.path.stat().st_size > 0:
            self._open_existing()
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._start()

    def _open_existing(self) -> None:
        with self.path.open("rb") as fh:
            genesis = json.loads(fh.readline())
            if genesis.get("data", {}).get("public_key") != public_key_hex(self.signer.public_key):
                msg = (
                    f"ledger {self.path} was created with another key; sign it with that key "
                    "or start a new ledger file"
                )
                raise ValueError(msg)
            fh.seek(max(0, self.path.stat().st_size - 65536))
            last = fh.read().rstrip(b"\n").rsplit(b"\n", 1)[-1]
        tail = json.loads(last)
        self._count, self._head = tail["i"] + 1, tail["hash"]

    def _store(self, records: list[dict]) -> None:
        if self._fh is None:
            self._fh = self.path.open("a", encoding="utf-8")
            weakref.finalize(self, self._fh.close)
        self._fh.write("\n".join(canonical_json(r) for r in records) + "\n")
        self._fh.flush()
        if self.durable:
            os.fsync(self._fh.fileno())

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def __enter__(self) -> JsonlLedger:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def records(self) -> Iterator[dict]:
        with self.path.open("r", encoding="utf-8") as fh:
            for line in fh:
                yield json.loads(line)

    def verify(self, trusted_key: Ed25519PublicKey | None = None) -> VerifyReport:
        return verify_file(self.path, trusted_key)


def verify_file(path: str | Path, trusted_key: Ed25519PublicKey | None = None) -> VerifyReport:
    """Verify a JSON-lines ledger file offline (no key material needed besides the public key)."""
    path = Path(path)
    if not path.exists():
        msg = f"ledger file {path} does not exist"
        raise FileNotFoundError(msg)
    with path.open("rb") as fh:
        return verify_records((line for line in fh if line.strip()), trusted_key)
