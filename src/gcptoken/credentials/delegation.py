"""Domain-wide delegation without a key file: a service account acts as a user of its Workspace
domain through a jwt-bearer assertion whose ``sub`` is the user, signed by IAM ``signJwt`` as the
account, and exchanged at Google's token endpoint for the user's access token.

This is google-auth's way for impersonated credentials with a ``subject``
(google/auth/impersonated_credentials.py: ``_refresh_token`` signs the assertion {iss: target,
sub: subject, scope, aud: the token endpoint, iat, exp = iat + 1 h} with signJwt, then
``_client.jwt_grant``). Here it works over every credential that can sign: the metadata server,
impersonation, gcloud. A key file does the same locally (ServiceAccountCredentials(subject=))."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from gcptoken import checks, endpoints
from gcptoken.credentials import universes
from gcptoken.credentials.base import Credentials
from gcptoken.credentials.oauth2 import access_token_from, post_form
from gcptoken.errors import InvalidArgumentError
from gcptoken.http.flows import Flow
from gcptoken.tokens import Token

if TYPE_CHECKING:
    from gcptoken.credentials.signing import Signature

__all__ = ["ASSERTION_LIFETIME", "DelegatedCredentials", "checked_subject", "delegation_claims"]

JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
ASSERTION_LIFETIME = 3600  # the token endpoint's limit for an assertion's exp - iat


def checked_subject(subject: str) -> str:
    """The user to act as: an email, printable, one line."""
    if not isinstance(subject, str) or "@" not in subject or not checks.printable(subject) or len(subject) > 320:
        raise InvalidArgumentError("the subject of domain-wide delegation must be a user's email (user@domain)")
    return subject.strip()


def delegation_claims(email: str, subject: str, scopes: Sequence[str], now: float | None = None) -> dict[str, object]:
    issued = int(time.time() if now is None else now)
    return {
        "iss": email,
        "sub": subject,
        "scope": " ".join(scopes),
        "aud": endpoints.TOKEN_URI,
        "iat": issued,
        "exp": issued + ASSERTION_LIFETIME,
    }


def no_id_tokens(subject: str) -> InvalidArgumentError:
    return InvalidArgumentError(
        f"domain-wide delegation gives access tokens for {subject}; ID tokens are the service account's own "
        "(drop the subject)"
    )


class DelegatedCredentials(Credentials):
    """Access tokens for ``subject``, a user of the Workspace domain that granted ``signer``'s
    service account (its OAuth client id) domain-wide delegation for the scopes asked."""

    def __init__(self, signer: Credentials, subject: str) -> None:
        self.signer_credentials = signer
        self.subject = checked_subject(subject)
        self.quota_project_id = signer.quota_project_id
        self.description = f"user {self.subject} through domain-wide delegation, signed by {signer.description}"

    def identity(self) -> str | None:
        source = self.signer_credentials.identity()
        return None if source is None else f"delegated|{source}|{self.subject}"

    def shared_identity(self) -> str | None:
        source = self.signer_credentials.shared_identity()
        return None if source is None else f"delegated|{source}|{self.subject}"

    def runs_programs(self) -> bool:
        return self.signer_credentials.runs_programs()

    def id_token_flow(self, audience: str) -> Flow[Token]:
        raise no_id_tokens(self.subject)

    # Signatures are the service account's: the subject is whom access tokens are for, and a key
    # file with a subject signs as its account too (google-auth's Credentials.sign_bytes).
    def signer(self, sign_as: str | None = None) -> Credentials:
        """The account's signer; ``sign_as`` is impersonated by the account, never by the user."""
        return self.signer_credentials.signer(sign_as)

    def signer_email_flow(self) -> Flow[str]:
        return self.signer_credentials.signer_email_flow()

    def sign_blob_flow(self, data: bytes) -> Flow[Signature]:
        return self.signer_credentials.sign_blob_flow(data)

    def sign_jwt_flow(self, claims: dict[str, Any]) -> Flow[Token]:
        return self.signer_credentials.sign_jwt_flow(claims)

    def signs_locally(self) -> bool:
        return self.signer_credentials.signs_locally()

    def signing_key_loaded(self) -> bool:
        return self.signer_credentials.signing_key_loaded()

    def load_signing_key(self) -> None:
        self.signer_credentials.load_signing_key()

    def access_token_flow(self, scopes: Sequence[str]) -> Flow[Token]:
        signer = self.signer_credentials
        email = yield from signer.signer_email_flow()
        if not universes.is_default(signer.universe_domain):  # as a key file refuses it
            raise InvalidArgumentError(f"domain-wide delegation is not available in {signer.universe_domain}")
        assertion = yield from signer.sign_jwt_flow(delegation_claims(email, self.subject, scopes))
        url = endpoints.resolve(endpoints.TOKEN_URI)
        describe = {"grant": "jwt-bearer", "delegation": f"{email} as {self.subject}"}
        body = yield from post_form(url, {"grant_type": JWT_BEARER, "assertion": assertion.value}, describe)
        return access_token_from(body, f"token endpoint {endpoints.safe_url(url)}")
