"""Verification keys by kid, fetched from a URL (directly or by OIDC discovery) and cached as
the server's Cache-Control says (capped at a day).

Trouble at the key server must not become trouble for the service: each fetch has one overall
deadline (retries included); a failed fetch is remembered for ``failure_backoff`` seconds, so a
burst of verifications fails at once instead of each waiting; keys already held keep serving while
refreshes fail, for at most ``max_stale`` seconds past their max-age; and while one thread
fetches, the others use the keys they have (or, with none, wait for that one fetch).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable

from gcptoken.errors import GcpTokenError, TransportError
from gcptoken.http.flows import run_sync
from gcptoken.jose import jws
from gcptoken.verify import certs as certs_format
from gcptoken.verify.discovery import jwks_uri_flow

__all__ = ["DEFAULT_FAILURE_BACKOFF", "DEFAULT_MAX_STALE", "KeyCache"]

log = logging.getLogger("gcptoken.verify.verifier")

DEFAULT_MAX_STALE = 86400.0
DEFAULT_FAILURE_BACKOFF = 5.0


class KeyCache:
    """Keys by kid from a URL: fresh for Cache-Control max-age, refetched at most once per
    ``refetch_interval`` for an unknown kid, kept (bounded) when a refetch fails.

    With ``discover_from`` (an issuer), the URL is the ``jwks_uri`` of the issuer's OpenID
    discovery document, looked up on first use and again whenever the keys are refetched.
    ``on_removed`` is told which kids a refetch no longer lists (the verifier forgets what they
    verified).
    """

    def __init__(
        self,
        url: str | None,
        refetch_interval: float,
        timer: Callable[[], float],
        timeout: float,
        *,
        discover_from: str | None = None,
        max_stale: float = DEFAULT_MAX_STALE,
        failure_backoff: float = DEFAULT_FAILURE_BACKOFF,
    ) -> None:
        self.url = url
        self.discover_from = discover_from
        self.refetch_interval = refetch_interval
        self.timer = timer
        self.timeout = timeout
        self.max_stale = max_stale
        self.failure_backoff = failure_backoff
        self.keys: certs_format.KeySet = {}
        self.fresh_until = float("-inf")
        self.stale_until = float("-inf")
        self.last_attempt = float("-inf")
        self.failed_until = float("-inf")
        self.last_failure: TransportError | None = None
        self.on_removed: Callable[[frozenset[str]], None] | None = None
        # However long the server says keys may be kept (a preset may bound it further).
        self.max_age_limit = certs_format.MAX_MAX_AGE
        self._lock = threading.Lock()

    def needs_fetch(self, kid: str) -> bool:
        """Whether ``get(kid)`` would go to the network now (not when a recent failure answers)."""
        now = self.timer()
        if now < self.failed_until:
            return False
        return now >= self.fresh_until or (kid not in self.keys and now - self.last_attempt >= self.refetch_interval)

    def get(self, kid: str) -> jws.VerifyingKey | None:
        if self.timer() >= self.fresh_until:
            self._refresh(force=False)
        key = self.keys.get(kid)
        if key is None and self.timer() - self.last_attempt >= self.refetch_interval:
            self._refresh(force=True)  # maybe rotated: Google publishes new keys before using them
            key = self.keys.get(kid)
        return key

    def refresh_for(self, kid: str) -> None:
        """What ``get(kid)`` would fetch, without raising (the caller verifies afterwards, and a
        failure is remembered and raised then)."""
        with contextlib.suppress(TransportError):
            self.get(kid)

    def _usable_stale(self, now: float) -> bool:
        return bool(self.keys) and now < self.stale_until

    def _refresh(self, force: bool) -> None:
        if not self._lock.acquire(blocking=False):
            if self._usable_stale(self.timer()):
                return  # another thread is fetching; the keys we hold serve meanwhile
            self._lock.acquire()  # nothing to serve: wait for that fetch (it has a deadline)
        try:
            now = self.timer()
            if not force and now < self.fresh_until:
                return  # another thread refreshed while we waited
            if force and now - self.last_attempt < self.refetch_interval:
                return
            if now < self.failed_until:  # a fetch just failed: do not ask again yet
                if self._usable_stale(now):
                    return
                assert self.last_failure is not None
                raise self.last_failure
            self.last_attempt = now
            try:
                keys, max_age = self._fetch()
            except GcpTokenError as exc:  # a bad jwks_uri in a discovery document, say: still unavailable
                self._failed(exc if isinstance(exc, TransportError) else TransportError(str(exc)))
                return
            removed = frozenset(self.keys) - frozenset(keys)
            now = self.timer()
            self.keys = keys
            self.fresh_until = now + min(max_age, self.max_age_limit)
            self.stale_until = self.fresh_until + self.max_stale
            self.failed_until = float("-inf")
            self.last_failure = None
            if removed and self.on_removed is not None:
                self.on_removed(removed)
        finally:
            self._lock.release()

    def _failed(self, exc: TransportError) -> None:
        """Remember the failure; serve the keys held while they are not too stale, else raise."""
        now = self.timer()
        self.failed_until = now + self.failure_backoff
        self.last_failure = exc
        if self._usable_stale(now):
            log.warning("keys refresh from %s failed (%s); serving the cached keys", self.url, exc)
            return
        if self.keys:
            log.error("keys from %s are more than %d s stale; dropping them", self.url, int(self.max_stale))
            removed = frozenset(self.keys)
            self.keys = {}
            if self.on_removed is not None:
                self.on_removed(removed)
        raise exc

    def _fetch(self) -> tuple[certs_format.KeySet, float]:
        from gcptoken.http.light_transport import sync_transport  # only when keys must be fetched

        transport = sync_transport(self.timeout)
        deadline = time.monotonic() + self.timeout  # one deadline for the whole fetch, retries included
        if self.discover_from is not None:
            self.url = run_sync(jwks_uri_flow(self.discover_from), transport, deadline)
        assert self.url is not None
        return run_sync(certs_format.fetch_flow(self.url), transport, deadline)
