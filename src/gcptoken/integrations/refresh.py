"""What the client integrations (requests, httpx, httpx2) share about sending a token: the origin a
token was made for, so a redirect elsewhere never carries it, and the limit on forced renewals
after a 401 ``invalid_token`` (a wrong audience is refused every time: without the limit each
request would cost a fetch at the token endpoint)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from gcptoken.credentials import Credentials

__all__ = [
    "REFRESH_INTERVAL",
    "ForcedRefresh",
    "Origin",
    "origin_of",
    "renewed_access_token",
    "renewed_access_token_async",
    "renewed_id_token",
    "renewed_id_token_async",
]

Origin = tuple[str, str, "int | None"]

# As the proxy's REFRESH_INTERVAL (gcptoken.local.proxy): at most one forced renewal per this many
# seconds per auth object; a refused token is otherwise answered as it came.
REFRESH_INTERVAL = 10.0

_DEFAULT_PORTS = {"http": 80, "https": 443}


def origin_of(url: str) -> Origin:
    """RFC 6454's origin: scheme, host (lower case) and port (the scheme's default filled in)."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    return scheme, (parts.hostname or "").lower(), parts.port or _DEFAULT_PORTS.get(scheme)


class ForcedRefresh:
    """Whether a token may be fetched anew now: once, then not again for REFRESH_INTERVAL seconds
    (concurrent 401s force one fetch between them)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._not_before = float("-inf")
        self._lock = threading.Lock()

    def allowed(self) -> bool:
        with self._lock:
            now = self.clock()
            if now < self._not_before:
                return False
            self._not_before = now + REFRESH_INTERVAL
            return True


# A token to send again after ``refused`` was refused: the cached one if another request already
# renewed it, else a new one if a renewal may be forced now, else None (answer the 401 as it came).


def renewed_id_token(credentials: Credentials, audience: str, renewals: ForcedRefresh, refused: str) -> str | None:
    current = credentials.id_token(audience).value
    if current != refused:
        return current
    return credentials.id_token(audience, refresh=True).value if renewals.allowed() else None


async def renewed_id_token_async(
    credentials: Credentials, audience: str, renewals: ForcedRefresh, refused: str
) -> str | None:
    current = (await credentials.id_token_async(audience)).value
    if current != refused:
        return current
    return (await credentials.id_token_async(audience, refresh=True)).value if renewals.allowed() else None


def renewed_access_token(
    credentials: Credentials, scopes: Sequence[str] | None, renewals: ForcedRefresh, refused: str
) -> str | None:
    current = credentials.access_token(scopes).value
    if current != refused:
        return current
    return credentials.access_token(scopes, refresh=True).value if renewals.allowed() else None


async def renewed_access_token_async(
    credentials: Credentials, scopes: Sequence[str] | None, renewals: ForcedRefresh, refused: str
) -> str | None:
    current = (await credentials.access_token_async(scopes)).value
    if current != refused:
        return current
    return (await credentials.access_token_async(scopes, refresh=True)).value if renewals.allowed() else None
