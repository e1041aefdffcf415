"""Verifying ID tokens: signature with cached keys, then issuer, audience and time."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from gcptoken import certs as certs_format
from gcptoken import endpoints, jws
from gcptoken.errors import InvalidArgumentError, TransportError, VerificationError
from gcptoken.flows import run_sync

__all__ = ["Verifier"]

log = logging.getLogger("gcptoken.verify")

_ALGORITHMS = frozenset({"RS256", "ES256"})


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


class _KeyCache:
    """Keys by kid from a URL: fresh for Cache-Control max-age, refetched at most once per
    ``refetch_interval`` for an unknown kid, and kept when a refetch fails."""

    def __init__(self, url: str, refetch_interval: float, timer: Callable[[], float], timeout: float) -> None:
        self.url = url
        self.refetch_interval = refetch_interval
        self.timer = timer
        self.timeout = timeout
        self.keys: certs_format.KeySet = {}
        self.fresh_until = float("-inf")
        self.last_attempt = float("-inf")
        self._lock = threading.Lock()

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
                log.warning("certs refresh from %s failed; keeping the cached keys", self.url)
                self.fresh_until = now + self.refetch_interval
                return
            self.keys = keys
            self.fresh_until = now + max_age

    def _fetch(self) -> tuple[certs_format.KeySet, float]:
        from gcptoken.transport import HttpxTransport  # httpx is heavy: only when certs must be fetched

        with HttpxTransport(self.timeout) as transport:
            return run_sync(certs_format.fetch_flow(self.url), transport)


class Verifier:
    """Verifies Google-issued (or emulator-issued) ID tokens.

    ``certs``: None for Google's v3 JWKS URL, an ``http(s)://`` URL of either Google format, a
    path to a file holding either format, or an already-loaded mapping (JWKS or kid → PEM).
    """

    def __init__(
        self,
        audience: str | Sequence[str],
        certs: str | os.PathLike[str] | Mapping[str, Any] | None = None,
        issuers: str | Sequence[str] = endpoints.GOOGLE_ISSUERS,
        clock_skew: float = 60.0,
        *,
        refetch_interval: float = 30.0,
        timeout: float = 10.0,
        timer: Callable[[], float] = time.monotonic,
    ) -> None:
        audiences = (audience,) if isinstance(audience, str) else tuple(audience)
        if not audiences or not all(isinstance(a, str) and a for a in audiences):
            raise InvalidArgumentError("audience must be a non-empty string or list of strings")
        self.audiences = frozenset(audiences)
        self.issuers = frozenset((issuers,) if isinstance(issuers, str) else issuers)
        if not self.issuers:
            raise InvalidArgumentError("issuers must not be empty")
        if clock_skew < 0:
            raise InvalidArgumentError("clock_skew must not be negative")
        self.clock_skew = clock_skew
        self._static: certs_format.KeySet | None = None
        self._cache: _KeyCache | None = None
        if certs is None or (isinstance(certs, str) and certs.startswith(("http://", "https://"))):
            url = endpoints.OAUTH2_CERTS_V3 if certs is None else certs
            self._cache = _KeyCache(url, refetch_interval, timer, timeout)
        elif isinstance(certs, Mapping):
            self._static = certs_format.keys_from_document(certs, "certs mapping")
        else:
            self._static = certs_format.keys_from_file(certs)

    def _key(self, kid: str) -> jws.VerifyingKey | None:
        if self._static is not None:
            return self._static.get(kid)
        assert self._cache is not None
        return self._cache.get(kid)

    def verify(self, token: str, now: float | None = None) -> dict[str, Any]:
        """The token's claims if it is valid at ``now`` (default: the current time).

        Raises VerificationError (``.reason``) when it is not, TransportError when the certs
        cannot be had at all.
        """
        parsed = jws.parse(token)
        alg = parsed.header.get("alg")
        if alg not in _ALGORITHMS:
            raise VerificationError("algorithm", f"token algorithm {str(alg)[:20]!r} is not accepted")
        kid = parsed.header.get("kid")
        if not isinstance(kid, str):
            raise VerificationError("unknown_kid", "token header has no kid")
        key = self._key(kid)
        if key is None:
            raise VerificationError("unknown_kid", f"no published key has kid {kid[:64]!r}")
        parsed.verify_with(key)
        claims = parsed.claims
        self._check_claims(claims, time.time() if now is None else now)
        return claims

    def _check_claims(self, claims: dict[str, Any], now: float) -> None:
        issuer = claims.get("iss")
        if issuer not in self.issuers:
            raise VerificationError("issuer", f"issuer {str(issuer)[:100]!r} is not accepted")
        audience = claims.get("aud")
        if isinstance(audience, str):
            matched = audience in self.audiences
        elif isinstance(audience, list):
            matched = any(isinstance(a, str) and a in self.audiences for a in audience)
        else:
            matched = False
        if not matched:
            raise VerificationError("audience", f"audience {str(audience)[:200]!r} is not accepted")
        for name in ("exp", "iat"):
            if name not in claims:
                raise VerificationError("missing_claim", f"token has no {name!r} claim")
            if not _is_number(claims[name]):
                raise VerificationError("invalid_claim", f"{name!r} is not a number")
        skew = self.clock_skew
        if now > claims["exp"] + skew:
            raise VerificationError("expired", f"token expired {int(now - claims['exp'])} s ago")
        if claims["iat"] > now + skew:
            raise VerificationError("issued_in_future", "token 'iat' is in the future")
        nbf = claims.get("nbf")
        if nbf is not None and (not _is_number(nbf) or nbf > now + skew):
            raise VerificationError("not_yet_valid", "token 'nbf' is in the future or not a number")
