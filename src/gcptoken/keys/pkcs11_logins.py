"""Which tokens this process is logged in to, by which session, with which PIN.

PKCS#11 login is per application, not per session (v2.40 §5.6, C_Login/C_Logout): once one
session logs in, every session with that token is logged in; a second C_Login fails with
CKR_USER_ALREADY_LOGGED_IN; and C_Logout — which python-pkcs11 calls when it closes a session it
logged in with — logs every session out. So each token gets one *anchor* session that logs in and
stays open while any of our sessions on the token is; keys use sessions that never log in or
out. The ledger keeps a keyed digest of the PIN that logged in (never the PIN), so opening a
second key with a different PIN is still "wrong PIN". Standard library only.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import threading
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any

__all__ = ["LoginLedger"]


@dataclass
class _Token:
    sessions: int = 0
    pin_digest: bytes | None = None  # set while the token is logged in for us
    anchor: Any = None  # the session that logged in (None: logged in by other code in this process)


class LoginLedger:
    """Per process. ``lock`` is held around logging in, opening a session and recording it, so two
    threads do not both log in to one token."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self._secret = os.urandom(32)  # keys the digests: they mean nothing outside this process
        self._tokens: dict[Hashable, _Token] = {}

    def _digest(self, pin: str) -> bytes:
        return hmac.new(self._secret, pin.encode(), hashlib.sha256).digest()

    def logged_in(self, token: Hashable) -> bool:
        entry = self._tokens.get(token)
        return entry is not None and entry.pin_digest is not None

    def same_pin(self, token: Hashable, pin: str) -> bool:
        """Whether ``pin`` is the PIN ``token`` was logged in with."""
        entry = self._tokens.get(token)
        known = None if entry is None else entry.pin_digest
        return known is not None and hmac.compare_digest(known, self._digest(pin))

    def logged_in_by(self, token: Hashable, pin: str, anchor: object) -> None:
        """``anchor`` (a session, or None if other code had logged in) logged in with ``pin``."""
        with self.lock:
            entry = self._tokens.setdefault(token, _Token())
            entry.pin_digest, entry.anchor = self._digest(pin), anchor

    def opened(self, token: Hashable) -> None:
        with self.lock:
            self._tokens.setdefault(token, _Token()).sessions += 1

    def closed(self, token: Hashable) -> Any:
        """A session on ``token`` closed; when it was the last, the anchor to close (which logs
        the token out), else None."""
        with self.lock:
            entry = self._tokens.get(token)
            if entry is None:
                return None
            entry.sessions -= 1
            if entry.sessions > 0:
                return None
            del self._tokens[token]
            return entry.anchor
