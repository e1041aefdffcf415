"""Which tokens this process's PKCS#11 sessions are logged in to, and with which PIN.

PKCS#11 login is per application, not per session (v2.40 §5.6, C_Login): once one session is
logged in, every session with that token is, a second C_Login fails with
CKR_USER_ALREADY_LOGGED_IN, and closing the last session logs out. So a second key opened on a
token with a wrong PIN would open silently; this ledger remembers a keyed digest of the PIN that
logged in (never the PIN) and counts our sessions, so a different PIN is still "wrong PIN".
Standard library only.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import threading
from collections.abc import Hashable
from dataclasses import dataclass

__all__ = ["LoginLedger"]


@dataclass
class _Token:
    sessions: int = 0
    pin_digest: bytes | None = None  # set while our sessions are logged in


class LoginLedger:
    """Per process. ``lock`` is held around opening a session and recording it, so two threads
    do not both try to log in to one token."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self._secret = os.urandom(32)  # keys the digests: they mean nothing outside this process
        self._tokens: dict[Hashable, _Token] = {}

    def digest(self, pin: str) -> bytes:
        return hmac.new(self._secret, pin.encode(), hashlib.sha256).digest()

    def logged_in(self, token: Hashable) -> bytes | None:
        """The PIN digest our open sessions on ``token`` logged in with, or None."""
        entry = self._tokens.get(token)
        return None if entry is None else entry.pin_digest

    def same_pin(self, token: Hashable, pin: str) -> bool:
        known = self.logged_in(token)
        return known is not None and hmac.compare_digest(known, self.digest(pin))

    def opened(self, token: Hashable, pin: str | None) -> None:
        """A session on ``token`` opened; with ``pin``, it (or an earlier one) logged in."""
        with self.lock:
            entry = self._tokens.setdefault(token, _Token())
            entry.sessions += 1
            if pin is not None and entry.pin_digest is None:
                entry.pin_digest = self.digest(pin)

    def closed(self, token: Hashable) -> None:
        """A session on ``token`` closed; the last one logs the token out."""
        with self.lock:
            entry = self._tokens.get(token)
            if entry is None:
                return
            entry.sessions -= 1
            if entry.sessions <= 0:
                del self._tokens[token]
