"""Passwords, session cookies and CSRF tokens."""

from __future__ import annotations

import hashlib

import pytest

from gridsync.web.auth import (
    AuthConfigError,
    SessionSigner,
    User,
    UserStore,
    _b64,
    hash_password,
    verify_password,
)


def test_scrypt_hash_round_trip_and_matches_hashlib():
    h = hash_password("s3cret", salt=b"fixed-salt-16byt")
    assert verify_password("s3cret", h) and not verify_password("s3cret!", h)
    _, n, r, p, salt, key = h.split("$")
    expected = hashlib.scrypt(
        b"s3cret", salt=b"fixed-salt-16byt", n=int(n), r=int(r), p=int(p), dklen=32
    )
    assert key == _b64(expected)
    assert hash_password("s3cret") != hash_password("s3cret"), "salts must differ"
    assert not verify_password("x", "md5$abc") and not verify_password("x", "garbage")


def test_users_from_env_and_file(tmp_path):
    h = hash_password("pw")
    f = tmp_path / "users.toml"
    f.write_text(f'[[user]]\nname = "ann"\nrole = "admin"\nscrypt = "{h}"\n')
    users = UserStore.from_env(
        {"GRIDSYNC_CONSOLE_USERS_FILE": str(f), "GRIDSYNC_CONSOLE_USERS": f"bo:viewer:{h}"}
    )
    assert users.authenticate("ann", "pw").role == "admin"
    assert users.authenticate("bo", "pw").role == "viewer"
    assert users.authenticate("bo", "nope") is None and users.authenticate("zed", "pw") is None
    with pytest.raises(AuthConfigError, match="role 'root' is not one of"):
        UserStore.from_env({"GRIDSYNC_CONSOLE_USERS": f"x:root:{h}"})
    with pytest.raises(AuthConfigError, match="expected 'name:role:scrypt"):
        UserStore.from_env({"GRIDSYNC_CONSOLE_USERS": "justaname"})
    f.write_text('[[user]]\nname = "ann"\n')
    with pytest.raises(AuthConfigError, match=r"user\[0\] lacks role, scrypt"):
        UserStore.from_env({"GRIDSYNC_CONSOLE_USERS_FILE": str(f)})


def test_session_cookie_signed_expiring_revocable():
    signer = SessionSigner(secret=b"k" * 32, ttl_s=60)
    cookie, sess = signer.issue(User("ann", "operator", "scrypt$"), now=1000.0)
    assert signer.verify(cookie, now=1059.0) == sess
    assert signer.verify(cookie, now=1060.0) is None, "expired"
    body, sig = cookie.rsplit(".", 1)
    forged = body.replace(body[5], "A" if body[5] != "A" else "B") + "." + sig
    assert signer.verify(forged, now=1001.0) is None
    assert SessionSigner(secret=b"x" * 32).verify(cookie, now=1001.0) is None, "other key"
    signer.revoke(sess)
    assert signer.verify(cookie, now=1001.0) is None


def test_csrf_token_bound_to_session():
    signer = SessionSigner(secret=b"k" * 32)
    tok = signer.csrf_token("sid-1")
    assert signer.check_csrf("sid-1", tok)
    assert not signer.check_csrf("sid-2", tok)
    assert not signer.check_csrf("sid-1", None) and not signer.check_csrf("sid-1", "")
