"""Verification keys by kid, fetched from a URL (directly or by OIDC discovery) and cached as
the server's Cache-Control says."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from gcptoken import certs as certs_format
from gcptoken import jws
from gcptoken.discovery import jwks_uri_flow
from gcptoken.errors import TransportError
from gcptoken.flows import run_sync

__all__ = ["KeyCache"]

log = logging.getLogger("gcptoken.verify")


class KeyCache:
    """Keys by kid from a URL: fresh for Cache-Control max-age, refetched at most once per
    ``refetch_interval`` for an unknown kid, and kept when a refetch fails.

    With ``discover_from`` (an issuer), the URL is the ``jwks_uri`` of the issuer's OpenID
    discovery document, looked up on first use and again whenever the keys are refetched.
    """

    def __init__(
        self,
        url: str | None,
        refetch_interval: float,
        timer: Callable[[], float],
        timeout: float,
        *,
        discover_from: str | None = None,
    ) -> None:
        self.url = url
        self.discover_from = discover_from
        self.refetch_interval = refetch_interval
        self.timer = timer
        self.timeout = timeout
        self.keys: certs_format.KeySet = {}
        self.fresh_until = float("-inf")
        self.last_attempt = float("-inf")
        self._lock = threading.Lock()

    def needs_fetch(self, kid: str) -> bool:
        """Whether ``get(kid)`` would go to the network now."""
        now = self.timer()
        return now >= self.fresh_until or (kid not in self.keys and now - self.last_attempt >= self.refetch_interval)

    def get(self, kid: str) -> jws.VerifyingKey | None:
        if self.timer() >= self.fresh_until:
            self._refresh(force=False)
        key = self.keys.get(kid)
        if key is None and self.timer() - self.last_attempt >= self.refetch_interval:
            self._refresh(force=True)  # maybe rotated: Google publishes new keys before using them
            key = self.keys.get(kid)
        return key

    def _refresh(self, force: bool) -> None:
        with self._lock:
            now = self.timer()
            if not force and now < self.fresh_until:
                return  # another thread refreshed while we waited
            if force and now - self.last_attempt < self.refetch_interval:
                return
            self.last_attempt = now
            try:
                keys, max_age = self._fetch()
            except TransportError:
                if not self.keys:
                    raise
                log.warning("keys refresh from %s failed; keeping the cached keys", self.url)
                self.fresh_until = now + self.refetch_interval
                return
            self.keys = keys
            self.fresh_until = now + max_age

    def _fetch(self) -> tuple[certs_format.KeySet, float]:
        from gcptoken.transport import shared_transport  # httpx is heavy: only when keys must be fetched

        transport = shared_transport(self.timeout)
        if self.discover_from is not None:
            self.url = run_sync(jwks_uri_flow(self.discover_from), transport)
        assert self.url is not None
        return run_sync(certs_format.fetch_flow(self.url), transport)
