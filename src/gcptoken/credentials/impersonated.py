"""IAM Credentials: tokens and signatures for a service account the caller may act as.

Every call is authorised with the *source* credential's access token. Delegates are the chain of
service accounts between the caller and the target, each allowed to act as the next."""

from __future__ import annotations

import base64
import json
import re
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from gcptoken import checks, endpoints
from gcptoken.cache.rules import impersonated_identity
from gcptoken.credentials.base import DEFAULT_SCOPES, Credentials, T
from gcptoken.credentials.oauth2 import id_token_from, raise_for_refusal, token_field
from gcptoken.credentials.signing import Signature, no_io
from gcptoken.errors import InvalidArgumentError, TokenRequestError, VerificationError, then
from gcptoken.http.flows import Flow, HttpRequest, json_body, presenting
from gcptoken.tokens import Token, decode, expiry, plausible_time

__all__ = [
    "IAM_BASE",
    "MAX_LIFETIME",
    "ImpersonatedCredentials",
    "delegate_names",
    "generate_access_token_flow",
    "generate_id_token_flow",
    "impersonation_description",
    "parse_impersonation_url",
    "sign_blob_flow",
    "sign_jwt_flow",
    "signed_jwt_token",
]

IAM_BASE = "https://iamcredentials.googleapis.com/v1/projects/-/serviceAccounts/"
# generateAccessToken allows up to 12 hours where the org policy permits more than one.
MAX_LIFETIME = 43200


# One address, nothing a URL path would read otherwise: no slash, query, fragment, space or control.
_EMAIL = re.compile(r"[^@/?#%\s\x00-\x1f\x7f]{1,200}@[^@/?#%\s\x00-\x1f\x7f]{1,200}")


def delegate_names(delegates: Sequence[str]) -> list[str]:
    """Delegates as IAM wants them: ``projects/-/serviceAccounts/EMAIL``."""
    return [d if d.startswith("projects/") else f"projects/-/serviceAccounts/{d}" for d in delegates]


def _call(
    access_token: str, target: str, method: str, body: dict[str, Any], base: str = IAM_BASE
) -> Flow[dict[str, Any]]:
    url = endpoints.resolve(f"{base}{target}:{method}")
    headers = {"Authorization": f"Bearer {access_token}", "Content-Type": "application/json"}
    describe = {"iam": method, "target": target, "delegates": ",".join(body.get("delegates", [])) or "-"}
    response = yield HttpRequest("POST", url, headers, json.dumps(body).encode("utf-8"), describe=describe)
    where = f"IAM Credentials {method} for {target}"
    answer = json_body(response, where)
    raise_for_refusal(response.status, answer, where)
    return answer


def generate_id_token_flow(
    access_token: str,
    target: str,
    audience: str,
    delegates: Sequence[str] = (),
    include_email: bool = False,
    base: str = IAM_BASE,
    use_email_azp: bool = False,
) -> Flow[Token]:
    body: dict[str, Any] = {"audience": audience, "includeEmail": include_email, "delegates": delegate_names(delegates)}
    if use_email_azp:
        body["useEmailAzp"] = True
    answer = yield from _call(access_token, target, "generateIdToken", body, base)
    return id_token_from(answer, f"IAM Credentials generateIdToken for {target}", "token")


def generate_access_token_flow(
    access_token: str,
    target: str,
    scopes: Sequence[str],
    lifetime: int = 3600,
    delegates: Sequence[str] = (),
    base: str = IAM_BASE,
) -> Flow[Token]:
    body = {"scope": list(scopes), "lifetime": f"{lifetime}s", "delegates": delegate_names(delegates)}
    answer = yield from _call(access_token, target, "generateAccessToken", body, base)
    where = f"IAM Credentials generateAccessToken for {target}"
    value = token_field(answer, "accessToken", where)
    expire = answer.get("expireTime")
    if not isinstance(expire, str):
        raise TokenRequestError(f"{where} answered without accessToken / expireTime")
    try:
        moment = datetime.fromisoformat(expire.strip().replace("Z", "+00:00"))
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None or moment.timestamp() <= 0:
        raise TokenRequestError(f"{where} answered an unreadable expireTime")
    return Token(value, expiry(moment.timestamp()), "access_token")


def sign_jwt_flow(
    access_token: str, target: str, claims: dict[str, Any], delegates: Sequence[str] = (), base: str = IAM_BASE
) -> Flow[str]:
    body = {"payload": json.dumps(claims), "delegates": delegate_names(delegates)}
    answer = yield from _call(access_token, target, "signJwt", body, base)
    signed = answer.get("signedJwt")
    if not isinstance(signed, str):
        raise TokenRequestError(f"IAM Credentials signJwt for {target} answered without signedJwt")
    return signed


# IAM adds an exp one hour ahead to a payload without one: "If the JWT Claims Set does not contain
# an expiration time (exp) claim, this claim is added automatically, with a timestamp that is 1 hour
# in the future" (SignJwtRequest.payload, https://cloud.google.com/iam/docs/reference/credentials/rest).
SIGNED_JWT_DEFAULT_LIFETIME = 3600


def signed_jwt_token(signed: str) -> Token:
    """IAM's signedJwt as a Token expiring at the exp it carries (an hour ahead without one)."""
    try:
        exp = decode(signed).claims.get("exp")
    except VerificationError:
        raise TokenRequestError("IAM Credentials signJwt answered a signedJwt that is not a JWT") from None
    now = time.time()
    return Token(signed, expiry(exp if plausible_time(exp) else now + SIGNED_JWT_DEFAULT_LIFETIME, now), "jwt")


def sign_blob_flow(
    access_token: str, target: str, blob: bytes, delegates: Sequence[str] = (), base: str = IAM_BASE
) -> Flow[Signature]:
    body = {"payload": base64.b64encode(blob).decode("ascii"), "delegates": delegate_names(delegates)}
    answer = yield from _call(access_token, target, "signBlob", body, base)
    key_id = answer.get("keyId")
    try:
        signature = base64.b64decode(answer["signedBlob"], validate=True)
    except (KeyError, TypeError, ValueError):
        raise TokenRequestError(f"IAM Credentials signBlob for {target} answered without a signedBlob") from None
    return Signature(key_id if isinstance(key_id, str) and checks.printable(key_id) else None, signature)


def parse_impersonation_url(url: str) -> tuple[str, str]:
    """``(base, target)`` from ``…/serviceAccounts/EMAIL:generateAccessToken``."""
    match = re.fullmatch(r"(.+/serviceAccounts/)([^/:]+):generateAccessToken", url)
    if match is None:
        raise ValueError(url)
    return match.group(1), match.group(2)


def impersonation_description(target: str, delegates: Sequence[str], source: str) -> str:
    """Each account named once: the target, who impersonates it, and the delegates between (if any)."""
    through = f" through {' → '.join(delegates)}" if delegates else ""
    return f"service account {target}, impersonated by {source}{through}"


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
        iam_base: str = IAM_BASE,
    ) -> None:
        """``iam_base``: where IAM Credentials is, up to ``…/serviceAccounts/`` (Google's by default)."""
        if not isinstance(target, str) or not _EMAIL.fullmatch(target):  # it becomes a path of IAM's URL
            raise InvalidArgumentError(
                "the service account to impersonate must be an email (NAME@PROJECT.gserviceaccount.com)"
            )
        if not 1 <= lifetime <= MAX_LIFETIME:
            raise InvalidArgumentError(f"lifetime must be 1 to {MAX_LIFETIME} seconds, not {lifetime}")
        self.source = source
        self.target = target
        self.delegates = tuple(delegates)
        self.include_email = include_email
        self.lifetime = lifetime
        self.iam_base = iam_base
        self._source_token: Token | None = None
        self.description = impersonation_description(target, self.delegates, source.description)

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
        if "iam_base" not in options and source.universe_domain != "googleapis.com":
            from gcptoken.credentials.universes import in_universe

            options["iam_base"] = in_universe(IAM_BASE, source.universe_domain)  # IAM of the source's universe
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
        certificate = self.source.client_certificate()  # X.509 federation: IAM over mTLS too
        access = yield from self._source_access_token()
        try:
            return (yield from presenting(call(access), certificate))
        except TokenRequestError as exc:
            if exc.status == 403:
                raise self._explained_denial(exc) from None
            if exc.status != 401:
                raise
        access = yield from self._source_access_token(refresh=True)
        try:
            return (yield from presenting(call(access), certificate))
        except TokenRequestError as exc:
            if exc.status == 403:
                raise self._explained_denial(exc) from None
            raise

    def _explained_denial(self, exc: TokenRequestError) -> TokenRequestError:
        """IAM's 403, with the role that is missing and where it must be granted."""
        first_hop = self.delegates[0] if self.delegates else self.target
        role = self.source.binding_role
        chain = "; each delegate needs it on the next account in the chain" if self.delegates else ""
        hint = f"{self.source.description} needs {role} on {first_hop}{chain}"
        return TokenRequestError(
            then(exc, hint),
            status=exc.status,
            error=exc.error,
            description=exc.description,
            retryable=exc.retryable,
        )

    def id_token_flow(self, audience: str) -> Flow[Token]:
        return self._with_source_token(
            lambda access: generate_id_token_flow(
                access, self.target, audience, self.delegates, self.include_email, self.iam_base
            )
        )

    def access_token_flow(self, scopes: Sequence[str]) -> Flow[Token]:
        return self._with_source_token(
            lambda access: generate_access_token_flow(
                access, self.target, scopes, self.lifetime, self.delegates, self.iam_base
            )
        )

    def runs_programs(self) -> bool:
        return self.source.runs_programs()

    def signing_key_loaded(self) -> bool:  # a key file as the source: its identity parses it
        return self.source.signing_key_loaded()

    def load_signing_key(self) -> None:
        self.source.load_signing_key()

    def signer_email_flow(self) -> Flow[str]:
        return no_io(lambda: self.target)

    def sign_jwt_flow(self, claims: dict[str, Any]) -> Flow[Token]:
        """IAM ``signJwt`` as the target: a Google-managed key of the target signs ``claims``."""
        signed = yield from self._with_source_token(
            lambda access: sign_jwt_flow(access, self.target, claims, self.delegates, self.iam_base)
        )
        return signed_jwt_token(signed)

    def sign_blob_flow(self, data: bytes) -> Flow[Signature]:
        """IAM ``signBlob`` as the target."""
        return self._with_source_token(
            lambda access: sign_blob_flow(access, self.target, data, self.delegates, self.iam_base)
        )
