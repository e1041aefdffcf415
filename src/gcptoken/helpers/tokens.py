"""The token a helper hands out: from the on-disk cache when fresh (before httpx or cryptography
load), else fetched through the credential ADC would use and written back to the cache."""

from __future__ import annotations

import sys

from gcptoken.cli.fast import cached_token
from gcptoken.endpoints import CLOUD_PLATFORM_SCOPE

__all__ = ["HelperToken", "helper_token"]


class HelperToken:
    """A token's value and expiry (epoch seconds). Not a dataclass: its import costs a helper's
    cached path ~20 ms, and its repr would print the token."""

    __slots__ = ("expires_at", "value")

    def __init__(self, value: str, expires_at: float) -> None:
        self.value = value
        self.expires_at = expires_at

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, HelperToken):
            return NotImplemented
        return (self.value, self.expires_at) == (other.value, other.expires_at)

    def __hash__(self) -> int:
        return hash((self.value, self.expires_at))

    def __repr__(self) -> str:
        return f"HelperToken(expires_at={self.expires_at!r}, value=<redacted>)"


def _subject(kind: str, subject: str | None) -> str | None:
    if kind == "access_token":
        return " ".join(sorted((subject or CLOUD_PLATFORM_SCOPE).replace(",", " ").split()))
    return subject


def helper_token(
    kind: str = "access_token",
    subject: str | None = None,
    *,
    credentials: str | None = None,
    impersonate: str | None = None,
    timeout: float = 10.0,
    use_cache: bool = True,
) -> HelperToken:
    """An ``access_token`` (``subject``: scopes, default cloud-platform) or ``id_token``
    (``subject``: the audience; None: a user's client id). ``credentials`` names a credential
    file (else ADC); ``impersonate`` is ``A,B,C`` as gcloud reads it. Raises GcpTokenError."""
    if kind not in ("access_token", "id_token"):
        raise ValueError(f"kind must be access_token or id_token, not {kind!r}")
    subject = _subject(kind, subject)
    if use_cache:
        fresh = cached_token(kind, subject, credentials, impersonate)
        if fresh is not None:
            _log_hit(float(fresh["expires_at"]))
            return HelperToken(fresh["value"], float(fresh["expires_at"]))
    return _fetched(kind, subject, credentials, impersonate, timeout, use_cache)


def _log_hit(expires_at: float) -> None:
    """-v's "cache hit" line, as the disk cache logs its own hits; only when -v (or the embedding
    program) has loaded logging: a plain cached run does not pay for its import."""
    if "logging" in sys.modules:
        import logging
        import time

        logging.getLogger("gcptoken.cache.memory").debug("cache hit, %d s left", expires_at - time.time())


def _fetched(
    kind: str, subject: str | None, credentials: str | None, impersonate: str | None, timeout: float, use_cache: bool
) -> HelperToken:
    from gcptoken import checks
    from gcptoken.cache.disk import DiskTokenCache, owner_of
    from gcptoken.cache.rules import cache_key
    from gcptoken.credentials import load_credentials
    from gcptoken.credentials.impersonated import ImpersonatedCredentials
    from gcptoken.credentials.user import UserCredentials
    from gcptoken.errors import InvalidArgumentError
    from gcptoken.tokens import Token

    source = load_credentials(credentials)
    chosen = source if impersonate is None else ImpersonatedCredentials.from_chain(source, impersonate)
    if kind == "id_token" and subject is None:
        if not isinstance(chosen, UserCredentials):
            raise InvalidArgumentError("an ID token needs an audience, e.g. https://SERVICE.a.run.app")
        subject = chosen.default_audience  # the one ID token Google issues a user
    # Checked before the cache key is made of it: one typed error for any unprintable value.
    if kind == "id_token":
        checks.audience(str(subject))
    else:
        checks.scope_list(str(subject))
    audience = subject

    def fetch() -> Token:
        if kind == "id_token":
            return chosen.id_token(str(audience), timeout=timeout)
        return chosen.access_token(str(audience).split(), timeout=timeout)

    identity = chosen.shared_identity() if use_cache else None
    if identity is None:
        token = fetch()
    else:
        key = cache_key(identity, kind, str(subject))
        token = DiskTokenCache().get_or_fetch(key, fetch, owner_of(identity), wait=timeout)
    return HelperToken(token.value, token.expires_at.timestamp())
