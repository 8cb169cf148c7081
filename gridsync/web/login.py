"""The console's log-in and log-out routes (mounted by :func:`gridsync.web.console.mount_console`).

A log-in form is usable once; attempts pass :class:`~gridsync.web.throttle.LoginThrottle`
before any password is hashed, and at most one hash runs at a time, so a log-in flood can
neither guess passwords quickly nor slow the rest of the server. User names must be 1-100
printable characters (a NUL once reached the audit log and gave a 500).
"""

from __future__ import annotations

import logging
import math
import re
import secrets

import anyio
from fastapi import APIRouter, HTTPException, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from gridsync.web.auth import DEMO_PASSWORD
from gridsync.web.console import (
    COOKIE,
    LOGIN_COOKIE,
    PREFIX,
    FormStr,
    SessionDep,
    _console,
    templates,
)

log = logging.getLogger(__name__)
router = APIRouter(prefix=PREFIX, include_in_schema=False)
USER_NAME = re.compile(r"^[^\x00-\x1f\x7f]{1,100}$")


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, error: str = "") -> Response:
    return login_page(request, error[:200])


def login_page(
    request: Request, error: str = "", status_code: int | None = None, retry_after_s: float = 0
) -> Response:
    """The log-in form with a fresh single-use token (and ``error`` shown above it)."""
    con = _console(request)
    nonce = secrets.token_urlsafe(16)
    con.forms.issue(nonce)
    resp = templates.TemplateResponse(
        request,
        "login.html",
        {
            "csrf_token": con.signer.csrf_token(f"login:{nonce}"),
            "error": error,
            "demo": con.demo,
            "demo_password": DEMO_PASSWORD if con.demo else "",
            "prefix": PREFIX,
        },
        status_code=status_code or (401 if error else 200),
    )
    if retry_after_s > 0:
        resp.headers["Retry-After"] = str(math.ceil(retry_after_s))
    resp.set_cookie(LOGIN_COOKIE, nonce, httponly=True, samesite="strict", path=PREFIX)
    return resp


@router.post("/login")
async def login(
    request: Request,
    username: FormStr = "",
    password: FormStr = "",
    csrf_token: FormStr = "",
) -> Response:
    """Check the single-use form token, the throttle, then the password."""
    con = _console(request)
    nonce = request.cookies.get(LOGIN_COOKIE, "")
    valid_form = bool(nonce) and con.signer.check_csrf(f"login:{nonce}", csrf_token)
    if not (valid_form and con.forms.redeem(nonce)):
        return login_page(request, "The form expired; please try again.")
    if not USER_NAME.match(username) or len(password) > 1024:
        msg = "The user name must be 1-100 printable characters."
        return login_page(request, msg, status_code=400)
    address = request.client.host if request.client else "?"
    wait_s = con.throttle.retry_after_s(username, address)
    if wait_s > 0:
        return _too_many(request, wait_s)
    user = await anyio.to_thread.run_sync(
        con.users.authenticate, username, password, limiter=con.hashing
    )
    if user is None:
        log.info("console log-in failed for %r from %s", username, address)
        for key, failures, lock_s in con.throttle.failed(username, address):
            detail = {"failures": failures, "locked_s": lock_s, "address": address}
            con.audit(username, "", "login.locked", key, detail)
        wait_s = con.throttle.retry_after_s(username, address)
        if wait_s > 0:
            return _too_many(request, wait_s)
        return login_page(request, "Unknown user or wrong password.")
    con.throttle.succeeded(username, address)
    cookie, sess = con.signer.issue(user)
    con.audit(user.name, user.role, "login", detail={"expires_s": sess.expires_s})
    resp = RedirectResponse(f"{PREFIX}/", status_code=status.HTTP_303_SEE_OTHER)
    resp.set_cookie(
        COOKIE,
        cookie,
        max_age=int(con.signer.ttl_s),
        httponly=True,
        samesite="strict",
        path=PREFIX,
    )
    resp.delete_cookie(LOGIN_COOKIE, path=PREFIX)
    return resp


def _too_many(request: Request, wait_s: float) -> Response:
    msg = f"Too many failed log-ins; try again in {math.ceil(wait_s)} s."
    return login_page(request, msg, status_code=429, retry_after_s=wait_s)


@router.post("/logout")
def logout(request: Request, sess: SessionDep, csrf_token: FormStr = "") -> Response:
    con = _console(request)
    if not con.signer.check_csrf(sess.sid, csrf_token):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "missing or wrong CSRF token")
    con.signer.revoke(sess)
    con.audit(sess.user, sess.role, "logout")
    resp = RedirectResponse(f"{PREFIX}/login", status_code=status.HTTP_303_SEE_OTHER)
    resp.delete_cookie(COOKIE, path=PREFIX)
    return resp
