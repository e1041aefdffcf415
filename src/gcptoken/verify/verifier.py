"""Verifying ID tokens: signature with cached keys, then issuer, audience, time and policy.

``Verifier.google``, ``.iap``, ``.firebase``, ``.oidc`` and ``.service_account`` build one for a
known kind of token (see ``presets``); the constructor takes everything explicitly.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from gcptoken import endpoints
from gcptoken.errors import InvalidArgumentError, TransportError, VerificationError
from gcptoken.jose import compact
from gcptoken.jose.compact import TO_STANDARD, b64_decode_translated, json_loads
from gcptoken.verify import certs as certs_format
from gcptoken.verify import presets
from gcptoken.verify.audience import Audience, accepted_audiences
from gcptoken.verify.constructors import NamedConstructors
from gcptoken.verify.discovery import check_keys_url
from gcptoken.verify.key_cache import DEFAULT_FAILURE_BACKOFF, DEFAULT_MAX_STALE, KeyCache
from gcptoken.verify.policy import Policy
from gcptoken.verify.results import DEFAULT_SIZE, ResultCache

if TYPE_CHECKING:
    import asyncio

    from typing_extensions import Self

__all__ = ["REASONS", "Verifier"]

# Every VerificationError.reason a Verifier raises.
REASONS = frozenset(
    {
        "malformed",
        "algorithm",
        "unknown_kid",
        "signature",
        "issuer",
        "audience",
        "expired",
        "issued_in_future",
        "not_yet_valid",
        "missing_claim",
        "invalid_claim",
        "lifetime",
        "too_old",
        "email_not_verified",
        "email_not_allowed",
        "hosted_domain_not_allowed",
        "subject_not_allowed",
        "project_not_allowed",
        "zone_not_allowed",
        "instance_not_allowed",
        "license_not_allowed",
    }
)
_ALGORITHMS = frozenset({"RS256", "ES256"})
_NUMBERS = (int, float)
# Times outside these (epoch seconds: 1970 to the year 5138) are no token's: NaN, infinities, 1e300.
_EARLIEST, _LATEST = -1.0, 1e11
_HEADER_CACHE_SIZE = 64
_NO_POLICY = Policy()


def _an_audience(aud: Any) -> bool:
    """Any audience at all (ANY_AUDIENCE_INSECURE): a token without one is still refused."""
    return (type(aud) is str and aud != "") or (
        isinstance(aud, list) and bool(aud) and all(type(a) is str for a in aud)
    )


class Verifier(NamedConstructors):
    """Verifies ID tokens: Google's by default, or any issuer's given its keys.

    ``certs``: None for Google's v3 JWKS URL, an ``http(s)://`` URL of either Google format (or
    a JWKS), a path to a file holding one, or an already-loaded mapping (JWKS or kid → PEM). With
    ``discovery=True`` the keys are instead found from the (single) issuer's OpenID discovery
    document.

    ``algorithms`` limits what the token header may name; the key still decides (an RSA key
    verifies RS256 only, a P-256 key ES256 only). ``max_lifetime`` bounds ``exp - iat``;
    ``policy`` adds the caller's own rules. ``token_header`` says where integrations find the
    token: ``authorization`` (a Bearer token) or a header that carries it bare (IAP's).

    Verified tokens are remembered (up to ``result_cache_size``, never past their ``exp``), so a
    token seen again costs no signature check.
    """

    def __init__(
        self,
        audience: Audience,
        certs: str | os.PathLike[str] | Mapping[str, Any] | None = None,
        issuers: str | Sequence[str] = endpoints.GOOGLE_ISSUERS,
        clock_skew: float = 60.0,
        *,
        algorithms: Sequence[str] = ("RS256", "ES256"),
        policy: Policy | None = None,
        max_lifetime: float | None = None,
        discovery: bool = False,
        token_header: str = presets.AUTHORIZATION,
        result_cache_size: int = DEFAULT_SIZE,
        refetch_interval: float = 30.0,
        timeout: float = 10.0,
        max_stale: float = DEFAULT_MAX_STALE,
        failure_backoff: float = DEFAULT_FAILURE_BACKOFF,
        timer: Callable[[], float] = time.monotonic,
        claims_rule: presets.ClaimsRule | None = None,
    ) -> None:
        audiences = accepted_audiences(audience)
        self.any_audience = audiences is None  # ANY_AUDIENCE_INSECURE: integrations refuse such a verifier
        self.audiences = audiences or frozenset()
        self.issuers = frozenset((issuers,) if isinstance(issuers, str) else issuers)
        if not self.issuers:
            raise InvalidArgumentError("issuers must not be empty")
        self.algorithms = frozenset(algorithms)
        if not self.algorithms or not self.algorithms <= _ALGORITHMS:
            raise InvalidArgumentError(f"algorithms must be some of {sorted(_ALGORITHMS)}")
        if clock_skew < 0:
            raise InvalidArgumentError("clock_skew must not be negative")
        if max_lifetime is not None and not max_lifetime > 0:
            raise InvalidArgumentError("max_lifetime must be a positive number of seconds")
        self.clock_skew = float(clock_skew)
        self.max_lifetime = max_lifetime
        self.policy = policy or _NO_POLICY
        self._policy_check = None if self.policy.is_empty else self.policy.check
        self._max_age = self.policy.max_age
        self._claims_rule = claims_rule
        extras = (max_lifetime, self._max_age, claims_rule, self._policy_check)
        self._has_extras = any(extra is not None for extra in extras)  # one test per token, not four
        self.token_header = token_header.lower()
        self._headers: dict[bytes, tuple[str, str]] = {}
        self.results = ResultCache(result_cache_size)
        self._recent = self.results.entries
        self._recent_size = self.results.size
        # Keys are fetched (a cache) or given up front (fixed); the hot path reads either directly.
        self._cache: KeyCache | None = None
        self._fixed: certs_format.KeySet = {}
        for name, value in (("timeout", timeout), ("max_stale", max_stale), ("failure_backoff", failure_backoff)):
            if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
                raise InvalidArgumentError(f"{name} must be a finite number of seconds, not negative")
        if discovery:
            if certs is not None or len(self.issuers) != 1:
                raise InvalidArgumentError("discovery needs exactly one issuer and no certs")
            (issuer,) = self.issuers
            self._cache = KeyCache(
                None,
                refetch_interval,
                timer,
                timeout,
                discover_from=issuer,
                max_stale=max_stale,
                failure_backoff=failure_backoff,
            )
        elif certs is None or (isinstance(certs, str) and "://" in certs):
            url = endpoints.OAUTH2_CERTS_V3 if certs is None else check_keys_url(certs)
            self._cache = KeyCache(
                url, refetch_interval, timer, timeout, max_stale=max_stale, failure_backoff=failure_backoff
            )
        elif isinstance(certs, Mapping):
            self._fixed = certs_format.keys_from_document(certs, "certs mapping")
        else:
            self._fixed = certs_format.keys_from_file(certs)
        if self._cache is not None:
            self._cache.on_removed = self._forget_verified_by
        self._fetching: dict[int, asyncio.Future[None]] = {}

    def _forget_verified_by(self, kids: frozenset[str]) -> None:
        """A key left the published set: what it verified is not remembered past it."""
        self.results.drop_where(lambda entry: entry[3] in kids)

    # -- presets --------------------------------------------------------------------------------

    @classmethod
    def from_preset(cls, preset: presets.Preset, audience: Audience, **options: Any) -> Self:
        """A verifier for ``preset``'s tokens; ``options`` (policy, clock_skew, certs, …) override."""
        if preset.check_audience is not None:
            audiences = accepted_audiences(audience)
            if audiences is None:
                raise InvalidArgumentError(f"the {preset.name} preset needs its audience: it names the app")
            for value in sorted(audiences):
                preset.check_audience(value)
        verifier = cls(audience, **{**preset.settings(), **options})
        if preset.keys_max_age is not None and verifier._cache is not None:
            verifier._cache.max_age_limit = preset.keys_max_age
        return verifier

    # -- verifying ------------------------------------------------------------------------------

    async def verify_async(self, token: str, now: float | None = None) -> dict[str, Any]:
        """``verify`` for event loops. When the keys must be fetched first, one task per event
        loop fetches them in a worker thread while the others wait for that fetch (bounded by its
        deadline), so a burst of requests never fills the thread pool and the loop never waits on
        the network."""
        cache = self._cache
        if cache is not None:
            kid = self._kid_of(token)
            if cache.needs_fetch(kid):
                await self._fetch_once(cache, kid)
                if cache.needs_fetch(kid):  # another kid's rotation, say: do not block the loop
                    import anyio.to_thread

                    return await anyio.to_thread.run_sync(self.verify, token, now)
        return self.verify(token, now)

    async def _fetch_once(self, cache: KeyCache, kid: str) -> None:
        import asyncio

        import anyio.to_thread  # Starlette's own dependency

        loop = asyncio.get_running_loop()
        pending = self._fetching.get(id(loop))
        if pending is not None:
            try:
                await asyncio.wait_for(asyncio.shield(pending), cache.timeout)
            except asyncio.TimeoutError:
                raise TransportError("token signing keys: the fetch in progress did not finish in time") from None
            return
        pending = self._fetching[id(loop)] = loop.create_future()
        try:
            await anyio.to_thread.run_sync(cache.refresh_for, kid)
        finally:
            del self._fetching[id(loop)]
            pending.set_result(None)

    def _kid_of(self, token: str) -> str:
        """The kid a token names, or "" when it has none (``verify`` then says why)."""
        try:
            header_b64 = token[: token.index(".")].encode("ascii")
            return (self._headers.get(header_b64) or self._header(header_b64))[1]
        except (ValueError, AttributeError, VerificationError):
            return ""

    def verify(self, token: str, now: float | None = None) -> dict[str, Any]:
        """The token's claims if it is valid at ``now`` (default: the current time).

        Raises VerificationError (``.reason``) when it is not, TransportError when the keys
        cannot be had at all.
        """
        # The hot path: few calls, no intermediate objects, every segment decoded once, and a
        # token verified before answered from the result cache. Anything unusual falls back to
        # compact's precise parsing, which raises the right "malformed" error.
        if now is None:
            now = time.time()
        if type(token) is not str:
            raise VerificationError("malformed", "token is not a string")
        hit = self._recent.get(token)
        if hit is not None:
            cache = self._cache
            if hit[1] <= now <= hit[2]:
                # A result is only as good as its key: once the keys are due for a refetch (which
                # may drop that key), the token is verified again in full.
                if cache is None or cache.timer() < cache.fresh_until:
                    cached: dict[str, Any] = json_loads(hit[0])
                    return cached
            else:
                self.results.drop(token)  # outside its window: the full check below says why
        try:
            data = token.encode("ascii")
        except UnicodeEncodeError:
            raise VerificationError("malformed", "token is not ASCII") from None
        first = data.find(b".")
        second = data.find(b".", first + 1)
        if first < 0 or second < 0 or data.find(b".", second + 1) >= 0 or len(data) > compact.MAX_TOKEN_LENGTH:
            compact.split(token)  # raises, with the precise reason
        header_b64 = data[:first]
        alg, kid = self._headers.get(header_b64) or self._header(header_b64)
        standard = data.translate(TO_STANDARD)  # one pass for both segments still to decode
        try:
            payload = b64_decode_translated(standard[first + 1 : second])
            claims = json_loads(payload)
            signature = b64_decode_translated(standard[second + 1 :])
        except (ValueError, RecursionError):
            compact.json_segment(token[first + 1 : second], "payload")
            compact.signature_segment(token[second + 1 :])
            raise  # pragma: no cover - one of the two lines above raises
        if type(claims) is not dict:
            raise VerificationError("malformed", "token payload is not a JSON object")
        cache = self._cache
        if cache is None:
            key = self._fixed.get(kid)
        else:  # fresh keys answer inline; the cache's method handles refreshing and rotation
            key = cache.keys.get(kid) if cache.timer() < cache.fresh_until else None
            if key is None:
                key = cache.get(kid)
        if key is None:
            raise VerificationError("unknown_kid", f"no published key has kid {kid[:64]!r}")
        if alg != key.alg:
            raise VerificationError(
                "algorithm", f"token algorithm {alg!r} is not allowed for this key (needs {key.alg})"
            )
        if not key.verify(data[:second], signature):
            raise VerificationError("signature", "signature does not verify")
        valid_from, valid_until = self._check_claims(claims, now)
        recent = self._recent
        if len(recent) < self._recent_size:
            recent[token] = (payload, valid_from, valid_until, kid)  # one dict store: atomic, no lock needed
        else:
            self.results.put(token, (payload, valid_from, valid_until, kid))  # evicts, under its lock
        return claims

    def _header(self, segment: bytes) -> tuple[str, str]:
        """The header's (alg, kid) once both are acceptable. Cached by segment: every token from
        one issuer key shares the same header."""
        header = compact.json_segment(segment.decode("ascii"), "header")
        alg = header.get("alg")
        if type(alg) is not str or alg not in self.algorithms:
            shown = repr(alg[:20]) if type(alg) is str else "not a string"
            raise VerificationError("algorithm", f"token algorithm {shown} is not accepted")
        if "crit" in header:  # RFC 7515 §4.1.11: extensions we would have to understand; Google uses none
            raise VerificationError("malformed", "token header has 'crit' (critical extensions are not supported)")
        if "typ" in header and type(header["typ"]) is not str:
            raise VerificationError("malformed", "token header 'typ' is not a string")
        kid = header.get("kid")
        if type(kid) is not str:
            raise VerificationError(
                "unknown_kid", "token header has no kid" if kid is None else "token 'kid' is not a string"
            )
        if len(self._headers) < _HEADER_CACHE_SIZE:
            self._headers[segment] = (alg, kid)
        return alg, kid

    def _check_claims(self, claims: dict[str, Any], now: float) -> tuple[float, float]:
        """Raises unless the claims are acceptable at ``now``; else the window (from, until) in
        which they are, for the result cache."""
        audience = claims.get("aud")
        if type(audience) is str:
            matched = audience in self.audiences
        elif isinstance(audience, list):
            matched = any(isinstance(a, str) and a in self.audiences for a in audience)
        else:
            matched = False
        if not matched and not (self.any_audience and _an_audience(audience)):
            shown = repr(audience[:200]) if type(audience) is str else "(absent, or not a string or list of strings)"
            raise VerificationError("audience", f"audience {shown} is not accepted")
        # After the audience: a token for another audience (another Firebase project, whose issuer
        # differs too) is an audience failure, which says what is wrong.
        issuer = claims.get("iss")
        if type(issuer) is not str or issuer not in self.issuers:
            shown = repr(issuer[:100]) if type(issuer) is str else "(absent or not a string)"
            raise VerificationError("issuer", f"issuer {shown} is not accepted")
        exp: Any = claims.get("exp")
        iat: Any = claims.get("iat")
        if type(exp) not in _NUMBERS or type(iat) not in _NUMBERS:  # type(), not isinstance: no booleans
            for name in ("exp", "iat"):
                if name not in claims:
                    raise VerificationError("missing_claim", f"token has no {name!r} claim")
                if type(claims[name]) not in _NUMBERS:
                    raise VerificationError("invalid_claim", f"{name!r} is not a number")
        if not (_EARLIEST < exp < _LATEST and _EARLIEST < iat < _LATEST):  # also NaN and infinities
            raise VerificationError("invalid_claim", "'exp' or 'iat' is not a plausible time")
        skew = self.clock_skew
        if now > exp + skew:
            raise VerificationError("expired", f"token expired {int(now - exp)} s ago")
        if iat > now + skew:
            raise VerificationError("issued_in_future", "token 'iat' is in the future")
        valid_from = iat - skew
        valid_until = exp + skew
        nbf = claims.get("nbf")
        if nbf is not None:
            if type(nbf) not in _NUMBERS or not _EARLIEST < nbf < _LATEST or nbf > now + skew:
                raise VerificationError("not_yet_valid", "token 'nbf' is in the future or not a number")
            valid_from = max(valid_from, nbf - skew)
        if self._has_extras:
            return self._check_extras(claims, now, exp, iat, valid_from, valid_until)
        return valid_from, valid_until

    def _check_extras(
        self, claims: dict[str, Any], now: float, exp: float, iat: float, valid_from: float, valid_until: float
    ) -> tuple[float, float]:
        """The preset's and the caller's own rules, when there are any."""
        skew = self.clock_skew
        if self.max_lifetime is not None and exp - iat > self.max_lifetime:
            raise VerificationError("lifetime", f"token lives {int(exp - iat)} s; at most {int(self.max_lifetime)} s")
        if self._max_age is not None:
            if now > iat + self._max_age + skew:
                raise VerificationError("too_old", f"token was issued {int(now - iat)} s ago")
            valid_until = min(valid_until, iat + self._max_age + skew)
        if self._claims_rule is not None:
            valid_from = max(valid_from, self._claims_rule(claims, now, skew))
        if self._policy_check is not None:
            self._policy_check(claims)
        return valid_from, valid_until
