"""Ed25519 keys for the ledger: generated at run time into a path the user chooses.

Keys are PEM files (private key unencrypted, mode 0600). They never live in the repository;
pass a directory outside it (the CLI default is ``~/.config/gridsync/keys``).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

PRIVATE_NAME = "ledger_ed25519.pem"
PUBLIC_NAME = "ledger_ed25519.pub.pem"
# Domain separation: a ledger signature can never be replayed as a signature on something else.
SIGNING_CONTEXT = b"gridsync-ledger-v1:"


def public_key_hex(key: Ed25519PublicKey) -> str:
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return raw.hex()


def public_key_from_hex(text: str) -> Ed25519PublicKey:
    try:
        return Ed25519PublicKey.from_public_bytes(bytes.fromhex(text))
    except ValueError as err:
        msg = f"public_key: expected 64 hex characters of a raw Ed25519 key, got {text[:80]!r}"
        raise ValueError(msg) from err


def fingerprint(key: Ed25519PublicKey) -> str:
    """Short SHA-256 fingerprint of a public key, for people comparing keys by eye."""
    return hashlib.sha256(bytes.fromhex(public_key_hex(key))).hexdigest()[:16]


def generate_keypair(directory: str | Path, overwrite: bool = False) -> tuple[Path, Path]:
    """Write a new key pair into ``directory``; returns (private_path, public_path)."""
    directory = Path(directory).expanduser()
    directory.mkdir(parents=True, exist_ok=True)
    priv_path, pub_path = directory / PRIVATE_NAME, directory / PUBLIC_NAME
    if priv_path.exists() and not overwrite:
        msg = (
            f"key file {priv_path} already exists; pass overwrite=True (CLI: --force) to replace it"
        )
        raise FileExistsError(msg)
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    fd = os.open(priv_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
    pub_path.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return priv_path, pub_path


def load_private_key(path: str | Path) -> Ed25519PrivateKey:
    path = Path(path).expanduser()
    if not path.exists():
        msg = f"private key {path} does not exist; create one with `gridsync ledger keygen`"
        raise FileNotFoundError(msg)
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        msg = f"private key {path}: expected an Ed25519 key, got {type(key).__name__}"
        raise ValueError(msg)
    return key


def load_public_key(path: str | Path) -> Ed25519PublicKey:
    path = Path(path).expanduser()
    if not path.exists():
        msg = f"public key {path} does not exist"
        raise FileNotFoundError(msg)
    key = serialization.load_pem_public_key(path.read_bytes())
    if not isinstance(key, Ed25519PublicKey):
        msg = f"public key {path}: expected an Ed25519 key, got {type(key).__name__}"
        raise ValueError(msg)
    return key


def load_or_create_signer(directory: str | Path) -> LedgerSigner:
    """The signer whose key lives in ``directory``, generating a key pair on first use."""
    directory = Path(directory).expanduser()
    if not (directory / PRIVATE_NAME).exists():
        generate_keypair(directory)
    return LedgerSigner(load_private_key(directory / PRIVATE_NAME))


@dataclass
class LedgerSigner:
    """Signs record hashes with an Ed25519 private key."""

    private_key: Ed25519PrivateKey

    @property
    def public_key(self) -> Ed25519PublicKey:
        return self.private_key.public_key()

    def sign(self, record_hash_hex: str) -> str:
        return self.private_key.sign(SIGNING_CONTEXT + bytes.fromhex(record_hash_hex)).hex()

    def pseudonym_secret(self) -> bytes:
        """A secret derived from the private key, for keyed participant pseudonyms."""
        raw = self.private_key.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )
        return hashlib.sha256(b"gridsync-pseudonym:" + raw).digest()

    @classmethod
    def generate(cls) -> LedgerSigner:
        """An ephemeral signer (tests, benchmarks); its key is never written anywhere."""
        return cls(Ed25519PrivateKey.generate())


def signature_valid(key: Ed25519PublicKey, record_hash_hex: str, signature_hex: str) -> bool:
    try:
        key.verify(bytes.fromhex(signature_hex), SIGNING_CONTEXT + bytes.fromhex(record_hash_hex))
    except (InvalidSignature, ValueError):
        return False
    return True
