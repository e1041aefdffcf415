"""Credential files by ``type``, and the Credentials object the library hands out."""

from __future__ import annotations

import abc
import json
import os
import secrets
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from gcptoken import endpoints
from gcptoken.cache import TokenCache, default_cache
from gcptoken.cache_rules import (
    cache_key,
    external_identity,
    impersonated_identity,
    metadata_identity,
    private_key_proof,
    service_account_identity,
    subject_token_proof,
    user_identity,
)
from gcptoken.errors import CredentialsError, InvalidArgumentError, RefusedError, TokenRequestError
from gcptoken.flows import Flow, run_async, run_sync
from gcptoken.private_files import UnreadableFile, read_small_file
from gcptoken.sources import external_account, fields, gcloud, iam, metadata, service_account, user
from gcptoken.tokens import Token

__all__ = [
    "CREDENTIALS_ENV",
    "DEFAULT_SCOPES",
    "Credentials",
    "FederatedCredentials",
    "GcloudCredentials",
    "ImpersonatedCredentials",
    "MetadataCredentials",
    "ServiceAccountCredentials",
    "UserCredentials",
    "load_credentials",
]

T = TypeVar("T")

CREDENTIALS_ENV = "GOOGLE_APPLICATION_CREDENTIALS"
DEFAULT_SCOPES = (endpoints.CLOUD_PLATFORM_SCOPE,)
# Cache keys remembered per credential (hashing them is most of a cache hit's cost otherwise).
_CACHE_KEY_MEMO = 64
SUPPORTED_TYPES = ("service_account", "authorized_user", "impersonated_service_account", "external_account")


class Credentials(abc.ABC):
    """Something that can obtain tokens. Subclasses provide the flows; this class runs them."""

    description = "credentials"

    @abc.abstractmethod
    def id_token_flow(self, audience: str) -> Flow[Token]:
        """The flow that obtains an ID token for ``audience``."""

    @abc.abstractmethod
    def access_token_flow(self, scopes: Sequence[str]) -> Flow[Token]:
        """The flow that obtains an access token for ``scopes``."""

    def identity(self) -> str | None:
        """What makes this credential's tokens its own, for the in-process cache key: the account,
        endpoint and options bound to a digest of the secret the caller holds (never the secret
        and never public fields alone; see cache_rules). None: tokens are not cached."""
        return None

    def shared_identity(self) -> str | None:
        """The identity for caches shared beyond this object's life (the CLI's disk cache): None
        when the identity is scoped to this very object."""
        return self.identity()

    def _cached(self, kind: str, subject: str, use_cache: bool) -> tuple[TokenCache, str] | None:
        identity = self.identity() if use_cache else None
        if identity is None:
            return None
        memo: dict[tuple[str, str, str], str] = self.__dict__.setdefault("_cache_keys", {})
        key = memo.get((identity, kind, subject))
        if key is None:
            if len(memo) >= _CACHE_KEY_MEMO:
                memo.clear()
            key = memo[(identity, kind, subject)] = cache_key(identity, kind, subject)
        return default_cache(), key

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
            return _run_sync(self.id_token_flow(audience), timeout)

        return fetch() if cached is None else cached[0].get(cached[1], fetch, force=refresh)

    def access_token(
        self, scopes: Sequence[str] | None = None, *, timeout: float | None = None, use_cache: bool = True
    ) -> Token:
        """An OAuth access token for ``scopes`` (default: cloud-platform), cached like id_token."""
        wanted = _scopes(scopes)
        cached = self._cached("access_token", " ".join(sorted(wanted)), use_cache)

        def fetch() -> Token:
            return _run_sync(self.access_token_flow(wanted), timeout)

        return fetch() if cached is None else cached[0].get(cached[1], fetch)

    async def id_token_async(
        self, audience: str, *, timeout: float | None = None, use_cache: bool = True, refresh: bool = False
    ) -> Token:
        audience = _audience(audience)
        cached = self._cached("id_token", audience, use_cache)

        async def fetch() -> Token:
            return await _run_async(self.id_token_flow(audience), timeout)

        return await (fetch() if cached is None else cached[0].get_async(cached[1], fetch, force=refresh))

    async def access_token_async(
        self, scopes: Sequence[str] | None = None, *, timeout: float | None = None, use_cache: bool = True
    ) -> Token:
        wanted = _scopes(scopes)
        cached = self._cached("access_token", " ".join(sorted(wanted)), use_cache)

        async def fetch() -> Token:
            return await _run_async(self.access_token_flow(wanted), timeout)

        return await (fetch() if cached is None else cached[0].get_async(cached[1], fetch))


def _audience(audience: str) -> str:
    if not isinstance(audience, str) or not audience.strip():
        raise InvalidArgumentError("audience must be a non-empty string (e.g. https://SERVICE.a.run.app)")
    return audience.strip()


def _scopes(scopes: Sequence[str] | None) -> tuple[str, ...]:
    if scopes is None:
        return DEFAULT_SCOPES
    if isinstance(scopes, str):
        scopes = scopes.replace(",", " ").split()
    cleaned = tuple(scope.strip() for scope in scopes if scope.strip())
    if not cleaned:
        raise InvalidArgumentError("scopes must name at least one scope")
    return cleaned


# All requests and retries of one token call end within this many per-request timeouts.
DEADLINE_TIMEOUTS = 3


def _deadline(timeout: float) -> float:
    return time.monotonic() + timeout * DEADLINE_TIMEOUTS


def _run_sync(flow: Flow[T], timeout: float | None) -> T:
    from gcptoken.light_transport import DEFAULT_TIMEOUT, sync_transport  # httpx only where it pays

    per_request = timeout or DEFAULT_TIMEOUT
    return run_sync(flow, sync_transport(per_request), _deadline(per_request))


async def _run_async(flow: Flow[Token], timeout: float | None) -> Token:
    from gcptoken.transport import DEFAULT_TIMEOUT, AsyncHttpxTransport

    per_request = timeout or DEFAULT_TIMEOUT
    transport = AsyncHttpxTransport(per_request)
    try:
        return await run_async(flow, transport, _deadline(per_request))
    finally:
        await transport.aclose()


class ServiceAccountCredentials(Credentials):
    """A service-account key file."""

    def __init__(self, key: service_account.ServiceAccountKey, source: str = "key") -> None:
        self.key = key
        self.source = source
        self._key_proof = private_key_proof(key.private_key)
        self._key_parsed = False
        self.description = f"service account {key.client_email} (key {source})"

    def identity(self) -> str | None:
        # from_info refused a missing, garbage or non-RSA PEM; the in-process cache also parses the
        # key first (once per process, and a fetch would anyway), so even a key that only looks
        # like one is an error before any lookup.
        if not self._key_parsed:
            self._signing_ready()
            self._key_parsed = True
        return self.shared_identity()

    def shared_identity(self) -> str | None:
        """For the CLI's disk cache: the PEM digest, without parsing the key (an entry exists only
        for a key that signed successfully)."""
        key = self.key
        return service_account_identity(
            key.client_email, key.private_key_id, endpoints.resolve(key.token_uri), self._key_proof
        )

    def self_signed_jwt(
        self, audience: str | None = None, *, scopes: Sequence[str] | None = None, lifetime: int = 3600
    ) -> Token:
        """A JWT signed by this key for an API audience or scopes (see sources.service_account)."""
        self._signing_ready()
        return service_account.self_signed_jwt(self.key, audience, scopes, lifetime)

    def _signing_ready(self) -> None:
        try:
            _ = self.key.signing_key
        except CredentialsError as exc:
            raise CredentialsError(f"{self.source}: {exc}") from None

    def id_token_flow(self, audience: str) -> Flow[Token]:
        self._signing_ready()
        return service_account.id_token_flow(self.key, audience)

    def access_token_flow(self, scopes: Sequence[str]) -> Flow[Token]:
        self._signing_ready()
        return service_account.access_token_flow(self.key, scopes)


class UserCredentials(Credentials):
    """A signed-in user (``authorized_user``, as ``gcloud auth application-default login`` writes).

    The only ID token Google issues a user directly is for the OAuth client id; for any other
    audience, impersonate a service account the user may act as.
    """

    def __init__(self, key: user.UserKey, source: str = "user credentials") -> None:
        self.key = key
        self.source = source
        self._identity_base = user_identity(key.client_id, key.refresh_token)
        account = f" {key.account}" if key.account else ""
        self.description = f"user{account} (authorized_user, OAuth client {key.client_id})"

    def identity(self) -> str | None:
        return f"{self._identity_base}|{endpoints.resolve(self.key.token_uri)}"

    @property
    def default_audience(self) -> str:
        return self.key.client_id

    def id_token_flow(self, audience: str) -> Flow[Token]:
        if audience != self.key.client_id:
            raise RefusedError(
                f"user credentials get ID tokens only for their OAuth client ({self.key.client_id}), not for "
                f"{audience}; act as a service account you may impersonate: --impersonate-service-account SA_EMAIL"
            )
        return _sign_in_again(user.id_token_flow(self.key), self.source)

    def access_token_flow(self, scopes: Sequence[str]) -> Flow[Token]:
        return _sign_in_again(user.access_token_flow(self.key, scopes), self.source)


def _sign_in_again(flow: Flow[T], source: str) -> Flow[T]:
    """``invalid_grant`` on a refresh token means the sign-in is over: say how to sign in again."""
    try:
        return (yield from flow)
    except TokenRequestError as exc:
        if exc.error != "invalid_grant":
            raise
        raise TokenRequestError(
            f"{exc}. The sign-in in {source} has expired or was revoked; sign in again "
            "('gcloud auth application-default login', or whatever wrote that file)",
            status=exc.status,
            error=exc.error,
            description=exc.description,
        ) from None


class FederatedCredentials(Credentials):
    """An outside identity through workload identity federation: its access tokens come from STS.

    Federated principals cannot hold ID tokens; an ``external_account`` file with a
    ``service_account_impersonation_url`` becomes ImpersonatedCredentials over this one.
    """

    def __init__(self, config: external_account.ExternalAccountConfig, impersonated_email: str | None = None):
        self.config = config
        self.impersonated_email = impersonated_email
        self._object_scope = secrets.token_hex(16)
        self.description = f"workload identity federation ({config.audience.rsplit('/providers/', 1)[-1]} provider)"

    def identity(self) -> str | None:
        # A file's subject token is read (cheap, local) and its digest is the proof of holding it.
        # A URL or an executable would have to be fetched or run to learn the token: their tokens
        # are cached for this very object only.
        config = self.config
        if "file" in config.credential_source:
            proof = subject_token_proof(external_account.subject_token_from_file(config))
        else:
            proof = f"object:{self._object_scope}"
        return external_identity(config.audience, endpoints.resolve(config.token_url), proof)

    def shared_identity(self) -> str | None:
        return self.identity() if "file" in self.config.credential_source else None

    def id_token_flow(self, audience: str) -> Flow[Token]:
        raise RefusedError(
            f"{self.config.where}: a federated identity gets ID tokens only by impersonating a service account; "
            "add service_account_impersonation_url (gcloud iam workload-identity-pools create-cred-config "
            "--service-account=SA) or pass --impersonate-service-account SA"
        )

    def access_token_flow(self, scopes: Sequence[str]) -> Flow[Token]:
        return external_account.access_token_flow(self.config, scopes, self.impersonated_email)


def _external_account_from_info(info: dict[str, Any], source: str) -> Credentials:
    config = external_account.ExternalAccountConfig.from_info(info, source)
    if config.impersonation_url is None:
        return FederatedCredentials(config)
    try:
        base, target = iam.parse_impersonation_url(config.impersonation_url)
    except ValueError:
        raise CredentialsError(
            f"{source}: service_account_impersonation_url must end in /serviceAccounts/EMAIL:generateAccessToken"
        ) from None
    federated = FederatedCredentials(config, target)
    return ImpersonatedCredentials(federated, target, lifetime=config.token_lifetime, iam_base=base)


def _no_io(produce: Callable[[], T]) -> Flow[T]:
    """A flow that makes no HTTP request: for sources that run a program instead."""
    return produce()
    yield  # pragma: no cover - makes this a generator, so both drivers can run it


class GcloudCredentials(Credentials):
    """Whatever gcloud is logged in as, through ``gcloud auth print-*-token`` (gcloud does the
    impersonation itself when ``impersonate`` names a chain)."""

    def __init__(self, impersonate: str | None = None, *, include_email: bool = False, lifetime: int | None = None):
        self.impersonate = impersonate
        self.include_email = include_email
        self.lifetime = lifetime
        self.description = "gcloud's active account" + (f", impersonating {impersonate}" if impersonate else "")

    def id_token_flow(self, audience: str) -> Flow[Token]:
        return _no_io(lambda: gcloud.id_token(audience, self.impersonate, self.include_email))

    def access_token_flow(self, scopes: Sequence[str]) -> Flow[Token]:
        if tuple(scopes) != DEFAULT_SCOPES:
            raise InvalidArgumentError(
                "gcloud prints access tokens for its own scopes; --scopes cannot be used with it"
            )
        return _no_io(lambda: gcloud.access_token(self.impersonate, self.lifetime))

    async def id_token_async(
        self, audience: str, *, timeout: float | None = None, use_cache: bool = True, refresh: bool = False
    ) -> Token:
        # A subprocess: off the event loop. gcloud caches its own tokens, so this class does not.
        import asyncio

        return await asyncio.to_thread(self.id_token, audience, timeout=timeout)

    async def access_token_async(
        self, scopes: Sequence[str] | None = None, *, timeout: float | None = None, use_cache: bool = True
    ) -> Token:
        import asyncio

        return await asyncio.to_thread(self.access_token, scopes, timeout=timeout)


class MetadataCredentials(Credentials):
    """The instance's service account through the metadata server (GCE, Cloud Run, GKE, …)."""

    description = "the metadata server's default service account"

    def __init__(
        self, token_format: metadata.TokenFormat = "standard", include_license: bool = False, host: str | None = None
    ) -> None:
        """``host`` (host:port) overrides GCE_METADATA_HOST, which is otherwise read on every call."""
        if token_format not in ("standard", "full"):
            raise InvalidArgumentError(f"token_format must be 'standard' or 'full', not {token_format!r}")
        if include_license and token_format != "full":
            raise InvalidArgumentError("include_license needs token_format='full'")
        self.token_format: metadata.TokenFormat = token_format
        self.include_license = include_license
        self.host = host

    def identity(self) -> str | None:
        return metadata_identity(metadata.metadata_host(self.host), self.token_format, self.include_license)

    def id_token_flow(self, audience: str) -> Flow[Token]:
        return metadata.id_token_flow(audience, self.token_format, self.include_license, self.host)

    def access_token_flow(self, scopes: Sequence[str]) -> Flow[Token]:
        # Scopes equal to the default mean "whatever the instance has": do not force them.
        return metadata.access_token_flow(None if tuple(scopes) == DEFAULT_SCOPES else scopes, self.host)

    def email(self, *, timeout: float | None = None) -> str:
        from gcptoken.light_transport import DEFAULT_TIMEOUT, sync_transport

        return run_sync(metadata.email_flow(self.host), sync_transport(timeout or DEFAULT_TIMEOUT))


class ImpersonatedCredentials(Credentials):
    """Tokens for ``target`` obtained through IAM Credentials with another credential's access token.

    ``delegates`` are the service accounts between the source and the target, each allowed to act
    as the next (gcloud's ``--impersonate-service-account A,B,C`` is target C, delegates [A, B]).
    The source's access token is cached and reused until it nears expiry.
    """

    # The source's token is refreshed this long before it expires.
    SOURCE_MARGIN = 300.0

    def __init__(
        self,
        source: Credentials,
        target: str,
        delegates: Sequence[str] = (),
        *,
        include_email: bool = False,
        lifetime: int = 3600,
        iam_base: str = iam.IAM_BASE,
    ) -> None:
        """``iam_base``: where IAM Credentials is, up to ``…/serviceAccounts/`` (Google's by default)."""
        if not target or "@" not in target:
            raise InvalidArgumentError(
                "the service account to impersonate must be an email (NAME@PROJECT.iam.gserviceaccount.com)"
            )
        if not 1 <= lifetime <= iam.MAX_LIFETIME:
            raise InvalidArgumentError(f"lifetime must be 1 to {iam.MAX_LIFETIME} seconds, not {lifetime}")
        self.source = source
        self.target = target
        self.delegates = tuple(delegates)
        self.include_email = include_email
        self.lifetime = lifetime
        self.iam_base = iam_base
        self._source_token: Token | None = None
        chain = " → ".join([*self.delegates, target])
        self.description = f"service account {target}, impersonated by {source.description} via {chain}"

    def identity(self) -> str | None:
        source = self.source.identity()
        if source is None:
            return None
        return self._over(source)

    def shared_identity(self) -> str | None:
        source = self.source.shared_identity()
        return None if source is None else self._over(source)

    def _over(self, source_identity: str) -> str:
        chain = [*self.delegates, self.target]
        return impersonated_identity(
            source_identity, chain, self.include_email, self.lifetime, endpoints.resolve(self.iam_base)
        )

    @classmethod
    def from_chain(cls, source: Credentials, chain: str, **options: Any) -> ImpersonatedCredentials:
        """``A,B,C`` as gcloud reads it: target C, delegates A and B."""
        emails = [email.strip() for email in chain.split(",") if email.strip()]
        if not emails:
            raise InvalidArgumentError("--impersonate-service-account needs at least one service account email")
        return cls(source, emails[-1], emails[:-1], **options)

    def _source_access_token(self, refresh: bool = False) -> Flow[str]:
        cached = self._source_token
        if not refresh and cached is not None and cached.expires_in() > self.SOURCE_MARGIN:
            return cached.value
        token = yield from self.source.access_token_flow(DEFAULT_SCOPES)
        self._source_token = token
        return token.value

    def _with_source_token(self, call: Callable[[str], Flow[T]]) -> Flow[T]:
        """Run ``call`` with the source's access token; once more with a fresh one on a 401."""
        access = yield from self._source_access_token()
        try:
            return (yield from call(access))
        except TokenRequestError as exc:
            if exc.status == 403:
                raise self._explained_denial(exc) from None
            if exc.status != 401:
                raise
        access = yield from self._source_access_token(refresh=True)
        try:
            return (yield from call(access))
        except TokenRequestError as exc:
            if exc.status == 403:
                raise self._explained_denial(exc) from None
            raise

    def _explained_denial(self, exc: TokenRequestError) -> TokenRequestError:
        """IAM's 403, with the role that is missing and where it must be granted."""
        first_hop = self.delegates[0] if self.delegates else self.target
        if isinstance(self.source, FederatedCredentials):
            role = "Workload Identity User (roles/iam.workloadIdentityUser)"
        else:
            role = "Service Account Token Creator (roles/iam.serviceAccountTokenCreator)"
        chain = "; each delegate needs it on the next account in the chain" if self.delegates else ""
        hint = f"{self.source.description} needs {role} on {first_hop}{chain}"
        return TokenRequestError(
            f"{exc}. {hint}",
            status=exc.status,
            error=exc.error,
            description=exc.description,
            retryable=exc.retryable,
        )

    def id_token_flow(self, audience: str) -> Flow[Token]:
        return self._with_source_token(
            lambda access: iam.generate_id_token_flow(
                access, self.target, audience, self.delegates, self.include_email, self.iam_base
            )
        )

    def access_token_flow(self, scopes: Sequence[str]) -> Flow[Token]:
        return self._with_source_token(
            lambda access: iam.generate_access_token_flow(
                access, self.target, scopes, self.lifetime, self.delegates, self.iam_base
            )
        )

    def sign_jwt(self, claims: dict[str, Any], *, timeout: float | None = None) -> str:
        """A JWT with ``claims`` signed by a Google-managed key of the target."""
        flow = self._with_source_token(
            lambda access: iam.sign_jwt_flow(access, self.target, claims, self.delegates, self.iam_base)
        )
        return _run_sync(flow, timeout)

    def sign_blob(self, blob: bytes, *, timeout: float | None = None) -> bytes:
        flow = self._with_source_token(
            lambda access: iam.sign_blob_flow(access, self.target, blob, self.delegates, self.iam_base)
        )
        return _run_sync(flow, timeout)


def credentials_from_info(info: dict[str, Any], source: str) -> Credentials:
    kind = info.get("type")
    if kind == "service_account":
        return ServiceAccountCredentials(service_account.ServiceAccountKey.from_info(info, source), source)
    if kind == "authorized_user":
        return UserCredentials(user.UserKey.from_info(info, source), source)
    if kind == "impersonated_service_account":
        return _impersonated_from_info(info, source)
    if kind == "external_account":
        return _external_account_from_info(info, source)
    if kind is None:
        raise CredentialsError(f"{source}: no 'type' field; is this a Google credential file?")
    raise CredentialsError(
        f"{source}: unsupported credential type {fields.identifier(kind)} (supported: {', '.join(SUPPORTED_TYPES)})"
    )


def _impersonated_from_info(info: dict[str, Any], source: str) -> ImpersonatedCredentials:
    """As ``gcloud auth application-default login --impersonate-service-account`` writes it."""
    inner = info.get("source_credentials")
    if not isinstance(inner, dict):
        raise CredentialsError(f"{source}: impersonated_service_account has no 'source_credentials' object")
    if inner.get("type") == "impersonated_service_account":
        raise CredentialsError(f"{source}: nested impersonated_service_account source credentials are not supported")
    url = info.get("service_account_impersonation_url")
    try:
        base, target = iam.parse_impersonation_url(url if isinstance(url, str) else "")
    except ValueError:
        raise CredentialsError(
            f"{source}: service_account_impersonation_url must end in /serviceAccounts/EMAIL:generateAccessToken"
        ) from None
    delegates = info.get("delegates") or []
    if not isinstance(delegates, list) or not all(isinstance(d, str) for d in delegates):
        raise CredentialsError(f"{source}: 'delegates' must be a list of service accounts")
    emails = [d.removeprefix("projects/-/serviceAccounts/") for d in delegates]
    return ImpersonatedCredentials(
        credentials_from_info(inner, f"{source} (source_credentials)"), target, emails, iam_base=base
    )


def load_credentials(path: str | os.PathLike[str] | None = None) -> Credentials:
    """Credentials from a JSON credential file; without a path, Application Default Credentials
    ($GOOGLE_APPLICATION_CREDENTIALS, gcloud's ADC file, then the metadata server)."""
    if path is None or not str(path).strip():  # an empty path means "not given", as an empty variable
        from gcptoken.adc import default_credentials  # adc builds on this module

        return default_credentials()
    file = Path(path)
    try:
        text = read_small_file(file).decode("utf-8")
    except FileNotFoundError:
        raise CredentialsError(f"credential file {file} does not exist") from None
    except IsADirectoryError:
        raise CredentialsError(f"credential file {file} is a directory") from None
    except UnreadableFile as exc:
        raise CredentialsError(f"credential file {file} {exc}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CredentialsError(f"credential file {file} cannot be read: {type(exc).__name__}") from None
    try:
        info = json.loads(text)
    except ValueError:
        raise CredentialsError(f"credential file {file} is not JSON") from None
    if not isinstance(info, dict):
        raise CredentialsError(f"credential file {file} is not a JSON object")
    return credentials_from_info(info, str(file))
