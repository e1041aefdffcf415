"""The Credentials base class every credential kind derives from, and the one place token flows
are run: through the cache, within their deadline, on the process's transport."""

from __future__ import annotations

import abc
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from gcptoken import checks, endpoints
from gcptoken.cache.memory import TokenCache, default_cache
from gcptoken.cache.rules import cache_key
from gcptoken.http.flows import Flow, run_async, run_sync
from gcptoken.tokens import Token

if TYPE_CHECKING:
    from gcptoken.credentials.signing import Signature
    from gcptoken.http.tls import ClientCertificate
    from gcptoken.http.transport import AsyncHttpxTransport

__all__ = [
    "CREDENTIALS_ENV",
    "DEADLINE_TIMEOUTS",
    "DEFAULT_SCOPES",
    "QUOTA_PROJECT_ENV",
    "QUOTA_PROJECT_HEADER",
    "Credentials",
    "quota_project",
    "run_flow_async",
    "run_flow_sync",
]

T = TypeVar("T")

CREDENTIALS_ENV = "GOOGLE_APPLICATION_CREDENTIALS"
DEFAULT_SCOPES = (endpoints.CLOUD_PLATFORM_SCOPE,)
# Cache keys remembered per credential (hashing them is most of a cache hit's cost otherwise).
_CACHE_KEY_MEMO = 64


class Credentials(abc.ABC):
    """Something that can obtain tokens. Subclasses provide the flows; this class runs them."""

    description = "credentials"
    # The IAM role this credential needs on a service account to act as it.
    binding_role = "Service Account Token Creator (roles/iam.serviceAccountTokenCreator)"

    @abc.abstractmethod
    def id_token_flow(self, audience: str) -> Flow[Token]:
        """The flow that obtains an ID token for ``audience``."""

    @abc.abstractmethod
    def access_token_flow(self, scopes: Sequence[str]) -> Flow[Token]:
        """The flow that obtains an access token for ``scopes``."""

    def sign_blob_flow(self, data: bytes) -> Flow[Signature]:
        """The flow that signs ``data`` (RSA SHA-256) as this credential's service account; a
        credential without one refuses (SigningUnavailableError: sign with ``sign_as=``)."""
        from gcptoken.credentials.signing import signing_needs_a_service_account

        raise signing_needs_a_service_account(self.description)

    def sign_jwt_flow(self, claims: dict[str, Any]) -> Flow[Token]:
        """The flow that signs a JWT with ``claims`` as this credential's service account."""
        from gcptoken.credentials.signing import signing_needs_a_service_account

        raise signing_needs_a_service_account(self.description)

    def signer_email_flow(self) -> Flow[str]:
        """The email of the service account this credential signs as."""
        from gcptoken.credentials.signing import signing_needs_a_service_account

        raise signing_needs_a_service_account(self.description)

    def with_subject(self, subject: str) -> Credentials:
        """Domain-wide delegation: access tokens for ``subject`` (a user of the Workspace domain
        that granted this service account's client id the scopes asked), through an assertion
        signed as this credential's service account (IAM signJwt when there is no key file)."""
        from gcptoken.credentials.delegation import DelegatedCredentials

        return DelegatedCredentials(self, subject)

    def runs_programs(self) -> bool:
        """Whether this credential's flows run a program (gcloud, an executable credential source)
        or otherwise block: every async method then runs the sync one in a thread, so the event
        loop never stands still for it."""
        return False

    def signer(self, sign_as: str | None = None) -> Credentials:
        """What signs for this credential: itself, or with ``sign_as`` (an email, or gcloud's chain
        ``A,B,SA``) this credential impersonating that account; remembered per chain, so the source's
        access token is reused."""
        if sign_as is None:
            return self
        signers: dict[str, Credentials] = self.__dict__.setdefault("_signers", {})
        found = signers.get(sign_as)
        if found is None:
            if len(signers) >= _CACHE_KEY_MEMO:  # callers choosing accounts freely: bounded
                signers.clear()
            from gcptoken.credentials.impersonated import ImpersonatedCredentials

            found = signers[sign_as] = ImpersonatedCredentials.from_chain(self, sign_as)
        return found

    def sign_blob(self, data: bytes, *, sign_as: str | None = None, timeout: float | None = None) -> Signature:
        """``data`` signed by a key of this credential's service account (or ``sign_as``'s): a key
        file's own key, else a Google-managed key through IAM ``signBlob``."""
        return run_flow_sync(self.signer(sign_as).sign_blob_flow(_blob(data)), timeout)

    def sign_jwt(self, claims: dict[str, Any], *, sign_as: str | None = None, timeout: float | None = None) -> Token:
        """A JWT with ``claims`` signed as this credential's service account (or ``sign_as``), as a
        Token of kind ``jwt`` expiring at its ``exp`` (added an hour ahead when absent; at most 12 h)."""
        return run_flow_sync(self.signer(sign_as).sign_jwt_flow(_claims(claims)), timeout)

    async def sign_blob_async(
        self, data: bytes, *, sign_as: str | None = None, timeout: float | None = None
    ) -> Signature:
        if self.runs_programs():  # gcloud: even finding its account runs it, so all in a thread
            import asyncio

            return await asyncio.to_thread(self.sign_blob, data, sign_as=sign_as, timeout=timeout)
        signer = self.signer(sign_as)
        data = _blob(data)
        if signer.signs_locally():  # a key: no request, so no transport; its first parse off the loop
            await _ready_to_sign(signer)
            return _local(signer.sign_blob_flow(data))
        return await run_flow_async(signer.sign_blob_flow(data), timeout)

    async def sign_jwt_async(
        self, claims: dict[str, Any], *, sign_as: str | None = None, timeout: float | None = None
    ) -> Token:
        if self.runs_programs():  # gcloud: even finding its account runs it, so all in a thread
            import asyncio

            return await asyncio.to_thread(self.sign_jwt, claims, sign_as=sign_as, timeout=timeout)
        signer = self.signer(sign_as)
        checked = _claims(claims)
        if signer.signs_locally():
            await _ready_to_sign(signer)
            return _local(signer.sign_jwt_flow(checked))
        return await run_flow_async(signer.sign_jwt_flow(checked), timeout)

    def signs_locally(self) -> bool:
        """Whether this credential signs with a key it holds (no request): async signing then
        needs no transport."""
        return False

    def signing_key_loaded(self) -> bool:
        """Whether what local signing needs is loaded (a key file's PEM parsed, cryptography imported)."""
        return True

    def load_signing_key(self) -> None:
        """Load what local signing needs; async callers do it in a thread the first time."""
        _ = self  # nothing to load: only a key file holds a key

    def identity(self) -> str | None:
        """What makes this credential's tokens its own, for the in-process cache key: the account,
        endpoint and options bound to a digest of the secret the caller holds (never the secret
        and never public fields alone; see cache_rules). None: tokens are cached for this very
        object only (the same object is the same caller), never shared with another."""
        return None

    # The project billed for API calls made with this credential's access tokens
    # (``x-goog-user-project``); files carry it as ``quota_project_id``.
    quota_project_id: str | None = None
    # The Google Cloud universe this credential belongs to (its files' ``universe_domain``).
    universe_domain: str = "googleapis.com"

    def client_certificate(self) -> ClientCertificate | None:
        """The certificate to present over mutual TLS to Google's token endpoints (X.509
        federation); None for every other kind."""
        return None

    def shared_identity(self) -> str | None:
        """The identity for caches shared beyond this object's life (the CLI's disk cache): None
        when the identity is scoped to this very object."""
        return self.identity()

    def _cached(self, kind: str, subject: str, use_cache: bool) -> tuple[TokenCache, str] | None:
        if not use_cache:
            return None
        identity = self.identity()
        if identity is None:  # nothing to share a cache by: this object's own (single flight, reuse)
            own: TokenCache | None = self.__dict__.get("_own_cache")
            if own is None:
                own = self.__dict__.setdefault("_own_cache", TokenCache(max_entries=_CACHE_KEY_MEMO))
            return own, f"{kind} {subject}"
        memo: dict[tuple[str, str, str], str] = self.__dict__.setdefault("_cache_keys", {})
        key = memo.get((identity, kind, subject))
        if key is None:
            if len(memo) >= _CACHE_KEY_MEMO:
                memo.clear()
            key = memo[(identity, kind, subject)] = cache_key(identity, kind, subject)
        return default_cache(), key

    def is_cached(self, kind: str, subject: str) -> bool:
        """Whether a fresh ``kind`` token (``id_token``: subject = audience; ``access_token``:
        subject = the sorted scopes, space-joined) is in the in-process cache: a call would not
        go upstream. For logs, never for decisions."""
        cached = self._cached(kind, subject, True)
        return cached is not None and cached[0].fresh(cached[1]) is not None

    def cached_id_token(self, audience: str, *, until_expiry: bool = False) -> Token | None:
        """The cached ID token for ``audience`` while it is fresh (``until_expiry``: while it is
        valid, even when due for refresh), else None; never fetches, never waits (an event loop's
        fast path, before awaiting ``id_token_async``)."""
        cached = self._cached("id_token", _audience(audience), True)
        if cached is None:
            return None
        return cached[0].usable(cached[1]) if until_expiry else cached[0].fresh(cached[1])

    def id_token(
        self, audience: str, *, timeout: float | None = None, use_cache: bool = True, refresh: bool = False
    ) -> Token:
        """An ID token whose ``aud`` is ``audience`` (e.g. a Cloud Run service URL), from the
        cache while it is fresh; concurrent callers share one fetch. ``refresh`` replaces a cached
        token a service refused."""
        audience = _audience(audience)
        cached = self._cached("id_token", audience, use_cache)
        if cached is not None and not refresh:
            token = cached[0].fresh(cached[1])  # the common case: no closure, no lock
            if token is not None:
                return token

        def fetch() -> Token:
            return run_flow_sync(self.id_token_flow(audience), timeout)

        return fetch() if cached is None else cached[0].get(cached[1], fetch, force=refresh)

    def access_token(
        self,
        scopes: Sequence[str] | None = None,
        *,
        timeout: float | None = None,
        use_cache: bool = True,
        refresh: bool = False,
    ) -> Token:
        """An OAuth access token for ``scopes`` (default: cloud-platform), cached like id_token."""
        wanted = _scopes(scopes)
        cached = self._cached("access_token", " ".join(sorted(wanted)), use_cache)

        def fetch() -> Token:
            return run_flow_sync(self.access_token_flow(wanted), timeout)

        return fetch() if cached is None else cached[0].get(cached[1], fetch, force=refresh)

    async def id_token_async(
        self, audience: str, *, timeout: float | None = None, use_cache: bool = True, refresh: bool = False
    ) -> Token:
        if self.runs_programs():  # a program runs (gcloud, an executable source): off the event loop
            import asyncio

            return await asyncio.to_thread(
                self.id_token, audience, timeout=timeout, use_cache=use_cache, refresh=refresh
            )
        if not self.signing_key_loaded():  # a key file's first parse (identity() needs it): off the loop
            await _ready_to_sign(self)
        audience = _audience(audience)
        cached = self._cached("id_token", audience, use_cache)

        async def fetch() -> Token:
            return await run_flow_async(self.id_token_flow(audience), timeout)

        return await (fetch() if cached is None else cached[0].get_async(cached[1], fetch, force=refresh))

    async def access_token_async(
        self,
        scopes: Sequence[str] | None = None,
        *,
        timeout: float | None = None,
        use_cache: bool = True,
        refresh: bool = False,
    ) -> Token:
        if self.runs_programs():
            import asyncio

            return await asyncio.to_thread(
                self.access_token, scopes, timeout=timeout, use_cache=use_cache, refresh=refresh
            )
        if not self.signing_key_loaded():
            await _ready_to_sign(self)
        wanted = _scopes(scopes)
        cached = self._cached("access_token", " ".join(sorted(wanted)), use_cache)

        async def fetch() -> Token:
            return await run_flow_async(self.access_token_flow(wanted), timeout)

        return await (fetch() if cached is None else cached[0].get_async(cached[1], fetch, force=refresh))


QUOTA_PROJECT_ENV = "GOOGLE_CLOUD_QUOTA_PROJECT"
QUOTA_PROJECT_HEADER = "x-goog-user-project"


def quota_project(credentials: Credentials, explicit: str | None = None) -> str | None:
    """The project billed for calls with ``credentials``' access tokens: ``explicit``, else
    GOOGLE_CLOUD_QUOTA_PROJECT, else the credential file's ``quota_project_id`` (google-auth's order)."""
    import os

    for value in (explicit, os.environ.get(QUOTA_PROJECT_ENV), credentials.quota_project_id):
        if value and value.strip():
            return value.strip()
    return None


# Audiences already checked (and noted): a cache hit must not parse its audience each time.
_CHECKED_AUDIENCES: dict[str, str] = {}
_CHECKED_MAX = 256


def _audience(audience: str) -> str:
    """checks.audience, the rule every ID token path shares (``ftp://x`` is refused here as by the
    command line); a URL audience with a path or query is noted once on the ``gcptoken`` logger."""
    checked = _CHECKED_AUDIENCES.get(audience) if isinstance(audience, str) else None
    if checked is None:
        checked = checks.audience(audience)
        checks.note_audience_once(checked)
        if len(_CHECKED_AUDIENCES) >= _CHECKED_MAX:
            _CHECKED_AUDIENCES.clear()
        _CHECKED_AUDIENCES[audience] = checked
    return checked


def _blob(data: bytes) -> bytes:
    from gcptoken.credentials.signing import checked_blob

    return checked_blob(data)


def _claims(claims: dict[str, Any]) -> dict[str, Any]:
    from gcptoken.credentials.signing import checked_jwt_claims

    return checked_jwt_claims(claims, add_exp=False)  # the signer adds exp (IAM does, so the key does)


def _scopes(scopes: Sequence[str] | None) -> tuple[str, ...]:
    return DEFAULT_SCOPES if scopes is None else checks.scope_list(scopes)


def _local(flow: Flow[T]) -> T:
    from gcptoken.credentials.signing import run_local

    return run_local(flow)


async def _ready_to_sign(signer: Credentials) -> None:
    if not signer.signing_key_loaded():  # the first time only: ~60 ms of import and PEM parse
        import asyncio

        await asyncio.to_thread(signer.load_signing_key)


# All requests and retries of one token call end within this many per-request timeouts.
DEADLINE_TIMEOUTS = 3


def _deadline(timeout: float) -> float:
    return time.monotonic() + timeout * DEADLINE_TIMEOUTS


def run_flow_sync(flow: Flow[T], timeout: float | None) -> T:
    from gcptoken.http.light_transport import DEFAULT_TIMEOUT, sync_transport  # httpx only where it pays

    per_request = timeout or DEFAULT_TIMEOUT
    return run_sync(flow, sync_transport(per_request), _deadline(per_request))


async def run_flow_async(flow: Flow[T], timeout: float | None) -> T:
    import asyncio

    # httpx's first import and every client's TLS setup (a CA bundle read) take tens to hundreds
    # of milliseconds: done in a thread, so the event loop never stands still for them.
    transport, per_request = await asyncio.to_thread(_async_transport, timeout)
    try:
        return await run_async(flow, transport, _deadline(per_request))
    finally:
        await transport.aclose()


# What httpcore imports on its first asyncio request (its anyio backend), imported with httpx.
_ASYNC_BACKEND = ("anyio._backends._asyncio", "httpcore._backends.anyio")


def _async_transport(timeout: float | None) -> tuple[AsyncHttpxTransport, float]:
    import contextlib
    import importlib

    from gcptoken.http.transport import DEFAULT_TIMEOUT, AsyncHttpxTransport

    for name in _ASYNC_BACKEND:
        with contextlib.suppress(ImportError):  # another httpcore: it imports what it needs itself
            importlib.import_module(name)

    per_request = timeout or DEFAULT_TIMEOUT
    return AsyncHttpxTransport(per_request), per_request
