"""The metadata server of GCE, Cloud Run, Cloud Functions and GKE: plain GETs, no secret of ours.

The host comes from ``GCE_METADATA_HOST`` (then the older ``GCE_METADATA_ROOT``), read on every
call, never at import; the default is ``metadata.google.internal``."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlencode

from gcptoken.cache.rules import metadata_identity
from gcptoken.checks import printable
from gcptoken.credentials import universes
from gcptoken.credentials.base import DEFAULT_SCOPES, Credentials
from gcptoken.credentials.oauth2 import access_token_from, id_token_from
from gcptoken.endpoints import checked_host
from gcptoken.errors import InvalidArgumentError, TokenRequestError
from gcptoken.http.flows import Flow, HttpRequest, HttpResponse, json_body, run_sync
from gcptoken.tokens import Token
from gcptoken.untrusted import MAX_SHOWN, one_line

if TYPE_CHECKING:
    from gcptoken.credentials.signing import Signature

__all__ = [
    "DEFAULT_HOST",
    "METADATA_TIMEOUT",
    "MetadataCredentials",
    "access_token_flow",
    "email_flow",
    "id_token_flow",
    "metadata_host",
]

DEFAULT_HOST = "metadata.google.internal"
# The metadata server answers in milliseconds; a slow answer means something is wrong.
METADATA_TIMEOUT = 3.0
RETRIES = 3  # one more than the default: the metadata server is local and answers fast
HEADERS = {"Metadata-Flavor": "Google"}
ACCOUNT = "instance/service-accounts/default"

TokenFormat = Literal["standard", "full"]


def metadata_host(host: str | None = None) -> str:
    """``host`` when given, else GCE_METADATA_HOST, GCE_METADATA_ROOT, metadata.google.internal."""
    if host:
        return checked_host(host, "the metadata host")
    for variable in ("GCE_METADATA_HOST", "GCE_METADATA_ROOT"):
        value = os.environ.get(variable, "").strip()
        if value:
            return checked_host(value, variable)
    return DEFAULT_HOST


def _get(path: str, query: dict[str, str] | None = None, host: str | None = None) -> Flow[HttpResponse]:
    host = metadata_host(host)
    url = f"http://{host}/computeMetadata/v1/{path}" + (f"?{urlencode(query)}" if query else "")
    response = yield HttpRequest(
        "GET", url, HEADERS, describe={"source": "metadata"}, retries=RETRIES, timeout=METADATA_TIMEOUT
    )
    if response.status != 200:
        text = one_line(response.body[: MAX_SHOWN * 4].decode("utf-8", "replace").strip())  # an HTML page, say
        raise TokenRequestError(
            f"metadata server at {host} answered HTTP {response.status} for /{path}: {text or 'no body'}",
            status=response.status,
            retryable=response.status >= 500,
        )
    return response


def id_token_flow(
    audience: str, token_format: TokenFormat = "standard", include_license: bool = False, host: str | None = None
) -> Flow[Token]:
    query = {"audience": audience, "format": token_format}
    if include_license:
        query["licenses"] = "TRUE"
    response = yield from _get(f"{ACCOUNT}/identity", query, host)
    value = response.body.decode("utf-8", "replace").strip()
    return id_token_from({"identity": value}, f"metadata server at {metadata_host(host)}", "identity")


def access_token_flow(scopes: Sequence[str] | None = None, host: str | None = None) -> Flow[Token]:
    """An access token; without ``scopes`` the instance's own scopes apply."""
    response = yield from _get(f"{ACCOUNT}/token", {"scopes": ",".join(scopes)} if scopes else None, host)
    where = f"metadata server at {metadata_host(host)}"
    return access_token_from(json_body(response, where), where)


def email_flow(host: str | None = None) -> Flow[str]:
    response = yield from _get(f"{ACCOUNT}/email", host=host)
    email = response.body.decode("utf-8", "replace").strip()
    if "@" not in email or len(email) > 320 or not printable(email):  # it is printed, and served on
        raise TokenRequestError(f"metadata server at {metadata_host(host)} answered an email that is not one")
    return email


def universe_domain_flow(host: str | None = None) -> Flow[str]:
    try:
        response = yield from _get("universe/universe-domain", host=host)
    except TokenRequestError as exc:
        if exc.status == 404:
            return universes.DEFAULT
        raise
    domain = response.body.decode("utf-8", "replace").strip()
    return universes.checked(domain, f"metadata server at {metadata_host(host)}: universe domain")


class MetadataCredentials(Credentials):
    """The instance's service account through the metadata server (GCE, Cloud Run, GKE, …)."""

    description = "the metadata server's default service account"

    def __init__(
        self, token_format: TokenFormat = "standard", include_license: bool = False, host: str | None = None
    ) -> None:
        """``host`` (host:port) overrides GCE_METADATA_HOST, which is otherwise read on every call."""
        if token_format not in ("standard", "full"):
            raise InvalidArgumentError(f"token_format must be 'standard' or 'full', not {token_format!r}")
        if include_license and token_format != "full":
            raise InvalidArgumentError("include_license needs token_format='full'")
        self.token_format: TokenFormat = token_format
        self.include_license = include_license
        self.host = host

    def identity(self) -> str | None:
        return metadata_identity(metadata_host(self.host), self.token_format, self.include_license)

    def id_token_flow(self, audience: str) -> Flow[Token]:
        return id_token_flow(audience, self.token_format, self.include_license, self.host)

    def access_token_flow(self, scopes: Sequence[str]) -> Flow[Token]:
        # Scopes equal to the default mean "whatever the instance has": do not force them.
        return access_token_flow(None if tuple(scopes) == DEFAULT_SCOPES else scopes, self.host)

    def _signer_flow(self) -> Flow[Credentials]:
        """The instance's account impersonated by itself: its email from the metadata server, then
        IAM Credentials with the metadata server's access token, as google-auth signs on Compute
        Engine (compute_engine.IDTokenCredentials: ``iam.Signer`` over the account email read from
        ``instance/service-accounts/default/email``). IAM requires Token Creator on the account
        itself for this (iam.serviceAccounts.signBlob / signJwt). IAM is the instance's universe's,
        as google-auth's signer takes the credential's ``universe_domain`` (read from the metadata
        server unless known)."""
        signer: Credentials | None = self.__dict__.get("_own_signer")
        if signer is None:
            from gcptoken.credentials.impersonated import ImpersonatedCredentials

            email = yield from email_flow(self.host)
            if "universe_domain" not in self.__dict__:
                self.universe_domain = yield from universe_domain_flow(self.host)
            signer = self.__dict__.setdefault("_own_signer", ImpersonatedCredentials.from_chain(self, email))
        return signer

    def signer_email_flow(self) -> Flow[str]:
        signer = yield from self._signer_flow()
        return (yield from signer.signer_email_flow())

    def sign_blob_flow(self, data: bytes) -> Flow[Signature]:
        signer = yield from self._signer_flow()
        return (yield from signer.sign_blob_flow(data))

    def sign_jwt_flow(self, claims: dict[str, Any]) -> Flow[Token]:
        signer = yield from self._signer_flow()
        return (yield from signer.sign_jwt_flow(claims))

    def email(self, *, timeout: float | None = None) -> str:
        from gcptoken.http.light_transport import DEFAULT_TIMEOUT, sync_transport

        return run_sync(email_flow(self.host), sync_transport(timeout or DEFAULT_TIMEOUT))

    def fetch_universe_domain(self, *, timeout: float | None = None) -> str:
        """The instance's universe (``universe/universe-domain``; a 404 means googleapis.com, as on
        servers older than universes), remembered as ``universe_domain``."""
        from gcptoken.http.light_transport import DEFAULT_TIMEOUT, sync_transport

        self.universe_domain = run_sync(universe_domain_flow(self.host), sync_transport(timeout or DEFAULT_TIMEOUT))
        return self.universe_domain
