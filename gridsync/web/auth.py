"""Console log-in: scrypt password hashes, signed expiring session cookies, CSRF tokens.

Users come from ``GRIDSYNC_CONSOLE_USERS_FILE`` (TOML: ``[[user]]`` tables with ``name``,
``role`` and ``scrypt`` = :func:`hash_password` output) and ``GRIDSYNC_CONSOLE_USERS``
(``name:role:scrypt$...`` entries separated by commas). Clear passwords are never stored.
``gridsync serve --demo`` adds the documented demo accounts (:data:`DEMO_PASSWORD`).

Roles: ``viewer`` sees everything, ``operator`` also decides approvals and overrides,
``admin`` also changes the approval policy and reads the audit log.

The session cookie is ``base64(json).hex(HMAC-SHA256)`` with an expiry inside the signed
part, sent HttpOnly and SameSite=Strict; logging out revokes it server-side. Every POST must
carry a CSRF token (form field ``csrf_token`` or header ``X-CSRF-Token``) that is an HMAC of
the session id, so a page on another origin cannot forge one.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import time
from dataclasses import dataclass

from gridsync.api.auth import read_toml_entries

ROLES: tuple[str, ...] = ("viewer", "operator", "admin")
DEMO_PASSWORD = "gridsync-demo"
DEMO_USERS = {"admin": "admin", "operator": "operator", "viewer": "viewer"}
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1


class AuthConfigError(ValueError):
    """A user source is malformed (the message names the source and entry)."""


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def hash_password(password: str, salt: bytes | None = None) -> str:
    """``scrypt$N$r$p$salt$hash`` (hashlib.scrypt, 16-byte salt, 32-byte key)."""
    salt = salt or secrets.token_bytes(16)
    key = hashlib.scrypt(password.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, dklen=32)
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${_b64(salt)}${_b64(key)}"


def verify_password(password: str, encoded: str) -> bool:
    try:
        scheme, n, r, p, salt, key = encoded.split("$")
        if scheme != "scrypt":
            return False
        got = hashlib.scrypt(
            password.encode(),
            salt=_unb64(salt),
            n=int(n),
            r=int(r),
            p=int(p),
            dklen=len(_unb64(key)),
            maxmem=2**26,
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, _unb64(key))


@dataclass(frozen=True)
class User:
    name: str
    role: str
    password_hash: str


class UserStore:
    """Known users by name."""

    def __init__(self) -> None:
        self._users: dict[str, User] = {}

    def __len__(self) -> int:
        return len(self._users)

    def add(self, name: str, role: str, password_hash: str) -> User:
        if role not in ROLES:
            msg = f"user {name!r}: role {role!r} is not one of {', '.join(ROLES)}"
            raise AuthConfigError(msg)
        if not name or not password_hash.startswith("scrypt$"):
            msg = f"user {name!r}: needs a name and a scrypt$... password hash"
            raise AuthConfigError(msg)
        self._users[name] = User(name, role, password_hash)
        return self._users[name]

    def authenticate(self, name: str, password: str) -> User | None:
        user = self._users.get(name)
        if user is None:
            verify_password(password, _DUMMY_HASH)  # same work for unknown names
            return None
        return user if verify_password(password, user.password_hash) else None

    def add_demo_users(self) -> dict[str, str]:
        """The demo accounts (name -> role), all with :data:`DEMO_PASSWORD`."""
        for name, role in DEMO_USERS.items():
            self.add(name, role, hash_password(DEMO_PASSWORD))
        return dict(DEMO_USERS)

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> UserStore:
        env = os.environ if environ is None else environ
        store = cls()
        path = env.get("GRIDSYNC_CONSOLE_USERS_FILE")
        if path:
            required = {"name", "role", "scrypt"}
            for entry in read_toml_entries(path, "user", required, "users file", AuthConfigError):
                store.add(entry["name"], entry["role"], entry["scrypt"])
        for i, item in enumerate(
            x for x in env.get("GRIDSYNC_CONSOLE_USERS", "").split(",") if x.strip()
        ):
            parts = item.strip().split(":", 2)
            if len(parts) != 3:
                msg = f"GRIDSYNC_CONSOLE_USERS entry {i}: expected 'name:role:scrypt$...'"
                raise AuthConfigError(msg)
            store.add(*parts)
        return store


_DUMMY_HASH = hash_password("not-a-real-password", salt=b"0123456789abcdef")


@dataclass(frozen=True)
class Session:
    user: str
    role: str
    sid: str
    expires_s: float


class SessionSigner:
    """Issues and verifies session cookies and CSRF tokens with one secret key."""

    def __init__(self, secret: bytes | None = None, ttl_s: float = 3600.0) -> None:
        env = os.environ.get("GRIDSYNC_CONSOLE_SECRET")
        self.secret = secret or (env.encode() if env else secrets.token_bytes(32))
        self.ttl_s = ttl_s
        self._revoked: dict[str, float] = {}

    def _sign(self, payload: bytes) -> str:
        return hmac.new(self.secret, payload, hashlib.sha256).hexdigest()

    def issue(self, user: User, now: float | None = None) -> tuple[str, Session]:
        now = time.time() if now is None else now
        sess = Session(user.name, user.role, secrets.token_urlsafe(16), now + self.ttl_s)
        body = json.dumps(
            {"u": sess.user, "r": sess.role, "s": sess.sid, "e": sess.expires_s},
            separators=(",", ":"),
        ).encode()
        return f"{_b64(body)}.{self._sign(body)}", sess

    def verify(self, cookie: str | None, now: float | None = None) -> Session | None:
        """The session, or None if the cookie is missing, forged, expired or revoked."""
        if not cookie or "." not in cookie:
            return None
        body_b64, sig = cookie.rsplit(".", 1)
        try:
            body = _unb64(body_b64)
        except ValueError:
            return None
        if not hmac.compare_digest(self._sign(body), sig):
            return None
        try:
            d = json.loads(body)
            sess = Session(str(d["u"]), str(d["r"]), str(d["s"]), float(d["e"]))
        except (ValueError, KeyError, TypeError):
            return None
        now = time.time() if now is None else now
        if now >= sess.expires_s or sess.sid in self._revoked or sess.role not in ROLES:
            return None
        return sess

    def revoke(self, sess: Session) -> None:
        now = time.time()
        self._revoked = {s: e for s, e in self._revoked.items() if e > now}
        self._revoked[sess.sid] = sess.expires_s

    def csrf_token(self, sid: str) -> str:
        return self._sign(f"csrf:{sid}".encode())

    def check_csrf(self, sid: str, token: str | None) -> bool:
        return bool(token) and hmac.compare_digest(self.csrf_token(sid), token or "")
