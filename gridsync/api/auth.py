"""Bearer-token authentication with three roles: ``operator``, ``viewer``, ``device``.

Tokens are never stored in clear: the registry keeps SHA-256 digests (tokens are random,
high-entropy strings, so a fast hash is appropriate) and compares in constant time.
Sources, merged in this order:

* ``GRIDSYNC_API_TOKENS_FILE``: a TOML file of ``[[token]]`` tables with ``name``, ``role``
  and ``sha256`` (hex digest of the token); make one with ``gridsync serve --hash-token``.
* ``GRIDSYNC_API_TOKENS``: ``role:token`` pairs separated by commas (for containers/CI; the
  clear tokens live only in the environment and are hashed on load).

Operators can read and change plans/approvals/scenarios; viewers only read; devices only post
telemetry.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Literal

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

Role = Literal["operator", "viewer", "device"]
ROLES: tuple[str, ...] = ("operator", "viewer", "device")


def read_toml_entries(
    path: str | Path, table: str, required: set[str], what: str, error: type[ValueError]
) -> list[dict]:
    """The ``[[table]]`` entries of a TOML credentials file, each checked for ``required`` keys.

    Raises ``error`` naming the file (``what``), the entry index and the missing keys.
    """
    try:
        doc = tomllib.loads(Path(path).read_text())
    except (OSError, tomllib.TOMLDecodeError) as err:
        msg = f"{what} {path}: {err}"
        raise error(msg) from err
    entries = doc.get(table, [])
    for i, entry in enumerate(entries):
        missing = required - set(entry)
        if missing:
            msg = f"{what} {path}: {table}[{i}] lacks {', '.join(sorted(missing))}"
            raise error(msg)
    return entries


class TokenConfigError(ValueError):
    """A token source is malformed (the message names the source and entry)."""


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return "gs_" + secrets.token_urlsafe(32)


@dataclass(frozen=True)
class Principal:
    """Who is calling: a token's name and role."""

    name: str
    role: Role


@dataclass
class TokenRegistry:
    """SHA-256 digest -> :class:`Principal`."""

    _by_digest: dict[str, Principal] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self._by_digest)

    def add_digest(self, digest: str, name: str, role: str) -> None:
        if role not in ROLES:
            msg = f"token {name!r}: role {role!r} is not one of {', '.join(ROLES)}"
            raise TokenConfigError(msg)
        digest = digest.strip().lower()
        if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            msg = f"token {name!r}: sha256 must be 64 hex characters"
            raise TokenConfigError(msg)
        self._by_digest[digest] = Principal(name, role)  # type: ignore[arg-type]

    def add_token(self, token: str, name: str, role: str) -> None:
        if len(token) < 16:
            msg = f"token {name!r}: at least 16 characters required, got {len(token)}"
            raise TokenConfigError(msg)
        self.add_digest(hash_token(token), name, role)

    def issue(self, name: str, role: str) -> str:
        """Create, register and return a fresh random token (e.g. the demo token)."""
        token = new_token()
        self.add_token(token, name, role)
        return token

    def lookup(self, token: str) -> Principal | None:
        digest = hash_token(token)
        found = None
        for known, principal in self._by_digest.items():
            if hmac.compare_digest(known, digest):
                found = principal
        return found

    @classmethod
    def from_file(cls, path: str | Path) -> TokenRegistry:
        reg = cls()
        required = {"name", "role", "sha256"}
        for entry in read_toml_entries(path, "token", required, "tokens file", TokenConfigError):
            reg.add_digest(entry["sha256"], entry["name"], entry["role"])
        return reg

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> TokenRegistry:
        env = os.environ if environ is None else environ
        reg = (
            cls.from_file(env["GRIDSYNC_API_TOKENS_FILE"])
            if env.get("GRIDSYNC_API_TOKENS_FILE")
            else cls()
        )
        for i, pair in enumerate(
            p for p in env.get("GRIDSYNC_API_TOKENS", "").split(",") if p.strip()
        ):
            role, sep, token = pair.strip().partition(":")
            if not sep:
                msg = f"GRIDSYNC_API_TOKENS entry {i}: expected 'role:token'"
                raise TokenConfigError(msg)
            reg.add_token(token, f"env-{role}-{i}", role)
        return reg


_bearer = HTTPBearer(auto_error=False)


def current_principal(
    request: Request, creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> Principal:
    """FastAPI dependency: the caller, or 401 when the bearer token is missing or unknown."""
    if creds is None or creds.scheme.lower() != "bearer":
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "missing bearer token (header 'Authorization: Bearer <token>')",
            headers={"WWW-Authenticate": "Bearer"},
        )
    principal = request.app.state.tokens.lookup(creds.credentials)
    if principal is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, "unknown token", headers={"WWW-Authenticate": "Bearer"}
        )
    return principal


def require_role(*roles: Role) -> Callable[..., Principal]:
    """Dependency factory: 403 unless the caller's role is one of ``roles``."""

    def check(principal: Annotated[Principal, Depends(current_principal)]) -> Principal:
        if principal.role not in roles:
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                f"role {principal.role!r} may not do this; needs one of {', '.join(roles)}",
            )
        return principal

    return check


READ = require_role("operator", "viewer")
OPERATE = require_role("operator")
DEVICE = require_role("device", "operator")
