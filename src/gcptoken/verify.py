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
_NUMBERS = (int, float)
_HEADER_CACHE_SIZE = 64


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
        from gcptoken.transport import shared_transport  # httpx is heavy: only when certs must be fetched

        return run_sync(certs_format.fetch_flow(self.url), shared_transport(self.timeout))


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
        self._headers: dict[str, dict[str, Any]] = {}
        self._static: certs_format.KeySet = {}
        self._cache: _KeyCache | None = None
        if certs is None or (isinstance(certs, str) and certs.startswith(("http://", "https://"))):
            url = endpoints.OAUTH2_CERTS_V3 if certs is None else certs
            self._cache = _KeyCache(url, refetch_interval, timer, timeout)
        elif isinstance(certs, Mapping):
            self._static = certs_format.keys_from_document(certs, "certs mapping")
        else:
            self._static = certs_format.keys_from_file(certs)

    def _header(self, segment: str) -> dict[str, Any]:
        """Parsed header segments are cached: every token from one issuer key shares the same one."""
        header = self._headers.get(segment)
        if header is None:
            header = jws.json_segment(segment, "header")
            if len(self._headers) < _HEADER_CACHE_SIZE:
                self._headers[segment] = header
        return header

    def verify(self, token: str, now: float | None = None) -> dict[str, Any]:
        """The token's claims if it is valid at ``now`` (default: the current time).

        Raises VerificationError (``.reason``) when it is not, TransportError when the certs
        cannot be had at all.
        """
        # The hot path: no intermediate objects, each segment decoded once, few calls. Anything
        # unusual falls back to jws's precise parsing, which raises the right "malformed" error.
        parts = token.split(".")
        if len(parts) != 3 or len(token) > jws.MAX_TOKEN_LENGTH:
            jws.split(token)  # always raises here, with the precise reason
        header_b64, claims_b64, signature_b64 = parts
        header = self._headers.get(header_b64) or self._header(header_b64)
        try:
            claims = jws.json_loads(jws.b64url_decode(claims_b64))
            signature = jws.b64url_decode(signature_b64)
        except (ValueError, UnicodeDecodeError, RecursionError):
            jws.json_segment(claims_b64, "payload")
            jws.signature_segment(signature_b64)
            raise  # pragma: no cover - one of the two lines above raises
        if type(claims) is not dict:
            raise VerificationError("malformed", "token payload is not a JSON object")
        alg = header.get("alg")
        if alg not in _ALGORITHMS:
            raise VerificationError("algorithm", f"token algorithm {str(alg)[:20]!r} is not accepted")
        kid = header.get("kid")
        if type(kid) is not str:
            raise VerificationError("unknown_kid", "token header has no kid")
        key = self._static.get(kid) if self._cache is None else self._cache.get(kid)
        if key is None:
            raise VerificationError("unknown_kid", f"no published key has kid {kid[:64]!r}")
        if alg != key.alg:
            raise VerificationError(
                "algorithm", f"token algorithm {alg!r} is not allowed for this key (needs {key.alg})"
            )
        if not key.verify(token[: len(header_b64) + 1 + len(claims_b64)].encode("ascii"), signature):
            raise VerificationError("signature", "signature does not verify")
        self._check_claims(claims, time.time() if now is None else now)
        return claims

    def _check_claims(self, claims: dict[str, Any], now: float) -> None:
        issuer = claims.get("iss")
        if issuer not in self.issuers:
            raise VerificationError("issuer", f"issuer {str(issuer)[:100]!r} is not accepted")
        audience = claims.get("aud")
        if type(audience) is str:
            matched = audience in self.audiences
        elif isinstance(audience, list):
            matched = any(isinstance(a, str) and a in self.audiences for a in audience)
        else:
            matched = False
        if not matched:
            raise VerificationError("audience", f"audience {str(audience)[:200]!r} is not accepted")
        exp: Any = claims.get("exp")
        iat: Any = claims.get("iat")
        if type(exp) not in _NUMBERS or type(iat) not in _NUMBERS:  # type(), not isinstance: no booleans
            for name in ("exp", "iat"):
                if name not in claims:
                    raise VerificationError("missing_claim", f"token has no {name!r} claim")
                if type(claims[name]) not in _NUMBERS:
                    raise VerificationError("invalid_claim", f"{name!r} is not a number")
        skew = self.clock_skew
        if now > exp + skew:
            raise VerificationError("expired", f"token expired {int(now - exp)} s ago")
        if iat > now + skew:
            raise VerificationError("issued_in_future", "token 'iat' is in the future")
        nbf = claims.get("nbf")
        if nbf is not None and (type(nbf) not in _NUMBERS or nbf > now + skew):
            raise VerificationError("not_yet_valid", "token 'nbf' is in the future or not a number")
