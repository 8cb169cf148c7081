"""Console log-in throttling: per-user and per-address backoff, single-use form tokens.

After ``free_failures`` consecutive failed log-ins for a user name (known or not), further
attempts for that name are refused without checking the password for ``base_delay_s``,
doubling with every further failure up to ``max_delay_s``; a client address gets the same
after ``address_failures`` failures across names. Refused attempts cost no password hash, so
a flood cannot starve the server, and only the start of a lock-out is audited (one row, not
one per failure). A success clears the user's and the address's count.

:class:`FormTokens` makes every log-in form usable once: its nonce is forgotten when the form
is posted (or after ``ttl_s``), so a captured form cannot be replayed.
"""

from __future__ import annotations

import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class _Count:
    failures: int = 0
    locked_until: float = 0.0


class LoginThrottle:
    """Failure counts per user name and per client address (both bounded in number)."""

    def __init__(
        self,
        *,
        free_failures: int = 5,
        address_failures: int = 20,
        base_delay_s: float = 2.0,
        max_delay_s: float = 900.0,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = 10_000,
    ) -> None:
        self.free_failures, self.address_failures = free_failures, address_failures
        self.base_delay_s, self.max_delay_s = base_delay_s, max_delay_s
        self.clock, self.max_keys = clock, max_keys
        self._counts: OrderedDict[str, _Count] = OrderedDict()
        self._lock = threading.Lock()

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> LoginThrottle:
        """``GRIDSYNC_LOGIN_FREE_FAILURES`` (5) and ``GRIDSYNC_LOGIN_MAX_DELAY_S`` (900)."""
        env = os.environ if environ is None else environ
        try:
            free = int(env.get("GRIDSYNC_LOGIN_FREE_FAILURES", 5))
            max_delay = float(env.get("GRIDSYNC_LOGIN_MAX_DELAY_S", 900))
        except ValueError as err:
            msg = f"GRIDSYNC_LOGIN_FREE_FAILURES / GRIDSYNC_LOGIN_MAX_DELAY_S: {err}"
            raise ValueError(msg) from err
        if free < 1 or max_delay <= 0:
            msg = "GRIDSYNC_LOGIN_FREE_FAILURES must be >= 1 and GRIDSYNC_LOGIN_MAX_DELAY_S > 0"
            raise ValueError(msg)
        return cls(free_failures=free, address_failures=4 * free, max_delay_s=max_delay)

    def _get(self, key: str) -> _Count:
        c = self._counts.get(key)
        if c is None:
            c = self._counts[key] = _Count()
            while len(self._counts) > self.max_keys:
                self._counts.popitem(last=False)
        self._counts.move_to_end(key)
        return c

    def retry_after_s(self, user: str, address: str) -> float:
        """Seconds until ``user`` from ``address`` may try again (0: now)."""
        now = self.clock()
        with self._lock:
            waits = [
                c.locked_until - now
                for c in (self._counts.get(f"u:{user}"), self._counts.get(f"a:{address}"))
                if c is not None
            ]
        return max([0.0, *waits])

    def failed(self, user: str, address: str) -> list[tuple[str, int, float]]:
        """Record a failure; returns ``(key, failures, lock_s)`` for each lock-out it starts."""
        now, started = self.clock(), []
        with self._lock:
            for key, free in ((f"u:{user}", self.free_failures), (f"a:{address}", self.address_failures)):  # fmt: skip
                c = self._get(key)
                c.failures += 1
                if c.failures >= free:
                    lock_s = min(self.base_delay_s * 2 ** (c.failures - free), self.max_delay_s)
                    c.locked_until = now + lock_s
                    started.append((key, c.failures, lock_s))
        return started

    def succeeded(self, user: str, address: str) -> None:
        with self._lock:
            self._counts.pop(f"u:{user}", None)
            self._counts.pop(f"a:{address}", None)


class FormTokens:
    """Nonces of issued log-in forms, each accepted once within ``ttl_s``."""

    def __init__(self, ttl_s: float = 600.0, max_open: int = 10_000, clock=time.monotonic) -> None:
        self.ttl_s, self.max_open, self.clock = ttl_s, max_open, clock
        self._open: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()

    def issue(self, nonce: str) -> None:
        with self._lock:
            self._open[nonce] = self.clock() + self.ttl_s
            while len(self._open) > self.max_open:
                self._open.popitem(last=False)

    def redeem(self, nonce: str) -> bool:
        """True the first time an issued, unexpired ``nonce`` is presented."""
        with self._lock:
            expires = self._open.pop(nonce, None)
        return expires is not None and self.clock() < expires
