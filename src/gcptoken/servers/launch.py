"""One-time launch links: how a local server is opened in the browser without a secret on any
command line another user can read (``/proc/PID/cmdline`` of the browser).

The link's path secret is spent by its first use; that use sets a session cookie (HttpOnly, so no
script reads it; its name carries the port, as cookies are shared by every port of a host), and
from then on only requests carrying that cookie — the browser that used the link — are served.
Whoever reads the link afterwards from the browser's argv finds it spent, and the server says so.
"""

from __future__ import annotations

import secrets
import threading

__all__ = ["OneTimeLink"]


class OneTimeLink:
    def __init__(self, purpose: str, same_site: str = "Strict") -> None:
        """``purpose``: a word for the cookie's name; ``same_site``: ``Lax`` where the session must
        survive a cross-site redirect back to us (signing in), ``Strict`` elsewhere."""
        self.secret = secrets.token_urlsafe(24)
        self._session = secrets.token_urlsafe(32)
        self._purpose, self._same_site = purpose, same_site
        self._used = False
        self._lock = threading.Lock()

    @property
    def used(self) -> bool:
        return self._used

    def claim(self, presented: str) -> bool:
        """True once: for the first request that presents the secret. Later ones get False."""
        if not secrets.compare_digest(presented.encode("utf-8", "replace"), self.secret.encode()):
            return False
        with self._lock:
            if self._used:
                return False
            self._used = True
            return True

    def matches(self, presented: str) -> bool:
        """Whether ``presented`` is this link's secret (spent or not)."""
        return secrets.compare_digest(presented.encode("utf-8", "replace"), self.secret.encode())

    def cookie_name(self, port: int) -> str:
        return f"gcptoken-{self._purpose}-{port}"

    def set_cookie(self, port: int) -> str:
        """The ``Set-Cookie`` value that opens the session (for this port's server only)."""
        return f"{self.cookie_name(port)}={self._session}; Path=/; HttpOnly; SameSite={self._same_site}"

    def holds_session(self, cookie_header: str | None, port: int) -> bool:
        """Whether a request's ``Cookie`` header carries this link's session. Split by hand, as
        browsers do: ``http.cookies`` drops the whole header over one value it dislikes
        (``prefs={"a":1}``), and any other site on 127.0.0.1 could set such a cookie."""
        if not cookie_header or not self._used:
            return False
        wanted = self.cookie_name(port)
        for pair in cookie_header.split(";"):
            name, equals, value = pair.partition("=")
            if (
                equals
                and name.strip() == wanted
                and secrets.compare_digest(value.strip().encode(), self._session.encode())
            ):
                return True
        return False
