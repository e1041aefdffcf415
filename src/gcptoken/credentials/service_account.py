"""Service-account key files: a self-signed jwt-bearer assertion exchanged at the token endpoint,
and the credential that holds the key."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import gcptoken.credentials.fields as fields
from gcptoken import checks, endpoints
from gcptoken.cache.rules import (
    private_key_proof,
    service_account_identity,
)
from gcptoken.credentials import universes
from gcptoken.credentials.base import Credentials
from gcptoken.credentials.delegation import checked_subject, no_id_tokens
from gcptoken.credentials.oauth2 import access_token_from, id_token_from, post_form
from gcptoken.credentials.signing import Signature, checked_jwt_claims, no_io
from gcptoken.endpoints import safe_url
from gcptoken.errors import CredentialsError, HardwareKeyError, InvalidArgumentError
from gcptoken.http.flows import Flow
from gcptoken.jose.pem import rsa_private_key_problem
from gcptoken.keys.reference import HardwareReference, hardware_reference, is_hardware_reference
from gcptoken.tokens import Token, utc_from_epoch

__all__ = [
    "JWT_BEARER",
    "ServiceAccountCredentials",
    "ServiceAccountKey",
    "access_token_flow",
    "assertion",
    "assertion_claims",
    "id_token_flow",
    "self_signed_jwt",
]

if TYPE_CHECKING:
    from gcptoken.jose.jws import JwsSigner, SigningKey


_T = TypeVar("_T")
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
ASSERTION_LIFETIME = 3600


@dataclass(frozen=True)
class ServiceAccountKey:
    """A key file as Google's console downloads it (``"type": "service_account"``), or one whose
    ``private_key`` names a key in a PKCS#11 token or a TPM (``hardware``; gcptoken.keys)."""

    client_email: str
    private_key_id: str
    private_key: str = field(repr=False)
    token_uri: str = endpoints.TOKEN_URI
    project_id: str | None = None
    client_id: str | None = None
    universe_domain: str = universes.DEFAULT
    hardware: HardwareReference | None = field(default=None, repr=False)
    # The hardware key's PIN once known (given, from its variable or asked for once).
    _pin: dict[str, str | None] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_info(cls, info: Mapping[str, Any], source: str, *, pin: str | None = None) -> ServiceAccountKey:
        """``pin``: a hardware key's PIN given by a program (else its variable, else a prompt)."""
        where = f"{source}: service-account key"

        def text(name: str, required: bool = True) -> str | None:
            return fields.text(info, name, where, required=required)

        client_email, private_key_id = text("client_email") or "", text("private_key_id") or ""
        private_key = text("private_key")
        assert private_key is not None
        hardware = None
        if is_hardware_reference(private_key):
            try:
                hardware = hardware_reference(private_key, text("pin_env", required=False))
            except HardwareKeyError as exc:
                raise HardwareKeyError(f"{source}: 'private_key': {exc}") from None
        else:
            problem = rsa_private_key_problem(private_key)
            if problem is not None:  # refused before any cache lookup: see cache_rules
                raise CredentialsError(f"{source}: 'private_key' {problem}")
        return cls(
            client_email=client_email,
            private_key_id=private_key_id,
            private_key=private_key,
            hardware=hardware,
            _pin={} if pin is None else {"pin": pin},
            token_uri=fields.url(info, "token_uri", where) or endpoints.TOKEN_URI,
            project_id=text("project_id", required=False),
            client_id=text("client_id", required=False),
            universe_domain=universes.checked(
                text("universe_domain", required=False) or universes.DEFAULT, f"{where}: universe_domain"
            ),
        )

    def hardware_pin(self) -> str | None:
        """The hardware key's PIN: given, else its variable, else asked for (once per key object)."""
        assert self.hardware is not None
        if "pin" not in self._pin:
            from gcptoken.keys.pin import key_pin

            self._pin["pin"] = key_pin(self.hardware)
        return self._pin["pin"]

    def key_proof(self) -> str:
        """Proof of holding the key, for the token caches (cache.rules; keys.opened for hardware)."""
        if self.hardware is None:
            return private_key_proof(self.private_key)
        from gcptoken.keys.opened import possession_proof

        return possession_proof(self.hardware, self.hardware_pin())

    @property
    def signer(self) -> JwsSigner:
        """What signs with this key: ``signing_key``, or the key in hardware, opened once per process."""
        return self._hardware_key() if self.hardware is not None else self.signing_key

    @property
    def signing_key(self) -> SigningKey:
        """The parsed private key, parsed once per process (jws caches it). A key in hardware has
        none to give: use ``signer``."""
        if self.hardware is not None:
            raise HardwareKeyError(f"the key is in a {self.hardware.device}: it signs there and cannot be read")
        from gcptoken.jose import jws  # cryptography: only when something is signed, never on a cache hit

        key = jws.load_private_key_pem(self.private_key)
        if key.alg != "RS256":
            raise CredentialsError("'private_key' is not an RSA key (Google's service-account keys are RSA)")
        return key

    def _hardware_key(self) -> JwsSigner:
        from gcptoken.keys.opened import opened_key

        assert self.hardware is not None
        try:
            return opened_key(self.hardware, self.hardware_pin())
        except HardwareKeyError:
            self._pin.pop("pin", None)  # a PIN that was refused is asked for again next time
            raise


def assertion_claims(key: ServiceAccountKey, extra: Mapping[str, Any], now: float | None = None) -> dict[str, Any]:
    """The jwt-bearer assertion's claims, claim for claim as google-auth builds them."""
    issued = int(time.time() if now is None else now)
    return {
        "iss": key.client_email,
        "aud": endpoints.TOKEN_URI,
        "iat": issued,
        "exp": issued + ASSERTION_LIFETIME,
        **extra,
    }


def assertion(key: ServiceAccountKey, extra: Mapping[str, Any], now: float | None = None) -> str:
    from gcptoken.jose import jws

    return jws.encode(assertion_claims(key, extra, now), key.signer, kid=key.private_key_id)


def _exchange(key: ServiceAccountKey, extra: Mapping[str, Any]) -> Flow[dict[str, Any]]:
    url = endpoints.resolve(key.token_uri)
    claims = assertion_claims(key, extra)
    from gcptoken.jose import jws

    signed = jws.encode(claims, key.signer, kid=key.private_key_id)
    describe = {"grant": "jwt-bearer", "assertion_claims": json.dumps(claims, sort_keys=True)}
    return (yield from post_form(url, {"grant_type": JWT_BEARER, "assertion": signed}, describe))


def id_token_flow(key: ServiceAccountKey, audience: str) -> Flow[Token]:
    if not universes.is_default(key.universe_domain):
        return (yield from _iam_id_token_flow(key, audience))
    body = yield from _exchange(key, {"target_audience": audience})
    return id_token_from(body, f"token endpoint {safe_url(key.token_uri)}")


def access_token_flow(key: ServiceAccountKey, scopes: Sequence[str], subject: str | None = None) -> Flow[Token]:
    """An access token for the key's account, or with ``subject`` for that user (domain-wide delegation)."""
    if subject is not None:
        if not universes.is_default(key.universe_domain):
            raise InvalidArgumentError(f"domain-wide delegation is not available in {key.universe_domain}")
        body = yield from _exchange(key, {"scope": " ".join(scopes), "sub": subject})
        return access_token_from(body, f"token endpoint {safe_url(key.token_uri)}")
    if not universes.is_default(key.universe_domain):
        # Outside googleapis.com there is no token endpoint for keys: a self-signed JWT with the
        # scopes is the access token, as google-auth sends it (AIP-4111).
        jwt = self_signed_jwt(key, scopes=scopes)
        return Token(jwt.value, jwt.expires_at, "access_token")
    body = yield from _exchange(key, {"scope": " ".join(scopes)})
    return access_token_from(body, f"token endpoint {safe_url(key.token_uri)}")


IAM_SCOPE = "https://www.googleapis.com/auth/iam"


def _iam_id_token_flow(key: ServiceAccountKey, audience: str) -> Flow[Token]:
    """Another universe's way to an ID token, as google-auth's: IAM generateIdToken for the key's
    own account, authorized by a self-signed JWT."""
    from gcptoken.credentials.impersonated import IAM_BASE, generate_id_token_flow

    bearer = self_signed_jwt(key, scopes=[IAM_SCOPE]).value
    base = universes.in_universe(IAM_BASE, key.universe_domain)
    return (
        yield from generate_id_token_flow(
            bearer, key.client_email, audience, include_email=True, base=base, use_email_azp=True
        )
    )


SELF_SIGNED_MAX_LIFETIME = 3600


def self_signed_jwt(
    key: ServiceAccountKey,
    audience: str | None = None,
    scopes: Sequence[str] | None = None,
    lifetime: int = SELF_SIGNED_MAX_LIFETIME,
    now: float | None = None,
) -> Token:
    """A JWT the key signs itself, for Google APIs and API Gateway that accept one instead of an
    access token: ``aud`` = the API (``https://SERVICE.googleapis.com/``) or, as google-auth does,
    ``scope`` without ``aud``. No network call."""
    if audience is None and scopes is None:
        raise InvalidArgumentError("a self-signed JWT needs one of: an audience or scopes")
    if audience is not None and scopes is not None:
        raise InvalidArgumentError("a self-signed JWT takes an audience or scopes, not both")
    if not 1 <= lifetime <= SELF_SIGNED_MAX_LIFETIME:
        raise InvalidArgumentError(f"a self-signed JWT lives 1 to {SELF_SIGNED_MAX_LIFETIME} seconds")
    issued = int(time.time() if now is None else now)
    claims: dict[str, Any] = {"iss": key.client_email, "sub": key.client_email}
    if audience is not None:
        claims["aud"] = checks.audience(audience)  # the rule of every audience (ftp://x is refused)
    else:
        claims["scope"] = " ".join(checks.scope_list(scopes or ()))
    claims.update({"iat": issued, "exp": issued + lifetime})
    from gcptoken.jose import jws

    value = jws.encode(claims, key.signer, kid=key.private_key_id)
    return Token(value, utc_from_epoch(issued + lifetime), "jwt")


def _locally_signed_jwt(key: ServiceAccountKey, claims: Mapping[str, Any]) -> Token:
    from gcptoken.jose import jws

    checked = checked_jwt_claims(claims)
    value = jws.encode(checked, key.signer, kid=key.private_key_id)
    return Token(value, utc_from_epoch(int(checked["exp"])), "jwt")


class ServiceAccountCredentials(Credentials):
    """A service-account key file."""

    def __init__(self, key: ServiceAccountKey, source: str = "key", *, subject: str | None = None) -> None:
        """``subject``: domain-wide delegation, access tokens for that user of the Workspace domain
        (the assertion's ``sub``, as google-auth's ``with_subject``)."""
        self.key = key
        self.source = source
        self.subject = None if subject is None else checked_subject(subject)
        self._key_proof: str | None = None  # computed when first needed: a hardware key may ask for its PIN
        self._key_parsed = False
        self.description = f"service account {key.client_email} (key {source})"
        if self.subject is not None:
            self.description = f"user {self.subject} through domain-wide delegation of {self.description}"

    def identity(self) -> str | None:
        # from_info refused a missing, garbage or non-RSA PEM; the in-process cache also parses the
        # key first (once per process, and a fetch would anyway), so even a key that only looks
        # like one is an error before any lookup.
        if not self._key_parsed and self.key.hardware is None:
            self._signing_ready()
        return self.shared_identity()

    def shared_identity(self) -> str | None:
        """For the CLI's disk cache: the PEM digest, without parsing the key (an entry exists only
        for a key that signed successfully)."""
        key = self.key
        token_url = endpoints.resolve(key.token_uri)
        if not universes.is_default(key.universe_domain):
            token_url += f"#universe={key.universe_domain}"
        if self._key_proof is None:
            self._key_proof = self._prefixed(key.key_proof)
        identity = service_account_identity(key.client_email, key.private_key_id, token_url, self._key_proof)
        return identity if self.subject is None else f"delegated|{identity}|{self.subject}"

    def with_subject(self, subject: str) -> ServiceAccountCredentials:
        return ServiceAccountCredentials(self.key, self.source, subject=subject)

    def signer(self, sign_as: str | None = None) -> Credentials:
        """With a subject, ``sign_as`` is impersonated by the account itself, never by the user."""
        if self.subject is None or sign_as is None:
            return super().signer(sign_as)
        plain: ServiceAccountCredentials = self.__dict__.setdefault(
            "_plain", ServiceAccountCredentials(self.key, self.source)
        )
        return plain.signer(sign_as)

    def signer_email_flow(self) -> Flow[str]:
        return no_io(lambda: self.key.client_email)

    def self_signed_jwt(
        self, audience: str | None = None, *, scopes: Sequence[str] | None = None, lifetime: int = 3600
    ) -> Token:
        """A JWT signed by this key for an API audience or scopes (see self_signed_jwt above)."""
        self._signing_ready()
        return self_signed_jwt(self.key, audience, scopes, lifetime)

    def signs_locally(self) -> bool:
        return True

    def runs_programs(self) -> bool:
        """A key in hardware signs in its device (a TPM takes tens of milliseconds, a PIN may be
        asked for): async calls then run off the event loop, every one of them."""
        return self.key.hardware is not None

    def signing_key_loaded(self) -> bool:
        return self._key_parsed

    def load_signing_key(self) -> None:
        self._signing_ready()

    def _signing_ready(self) -> None:
        self._prefixed(lambda: self.key.signer)
        self._key_parsed = True

    def _prefixed(self, step: Callable[[], _T]) -> _T:
        """``step``, its errors naming this credential's source (a hardware error keeps its type)."""
        try:
            return step()
        except HardwareKeyError as exc:
            raise HardwareKeyError(f"{self.source}: {exc}") from None
        except CredentialsError as exc:
            raise CredentialsError(f"{self.source}: {exc}") from None

    def id_token_flow(self, audience: str) -> Flow[Token]:
        if self.subject is not None:
            raise no_id_tokens(self.subject)
        self._signing_ready()
        return id_token_flow(self.key, audience)

    def sign_blob_flow(self, data: bytes) -> Flow[Signature]:
        """Signed here with the key (no request): RSASSA-PKCS1-v1_5 SHA-256, as IAM signBlob signs."""
        self._signing_ready()
        return no_io(lambda: Signature(self.key.private_key_id, self.key.signer.sign(data)))

    def sign_jwt_flow(self, claims: dict[str, Any]) -> Flow[Token]:
        """Signed here with the key, by IAM signJwt's claims rule (exp added an hour ahead)."""
        self._signing_ready()
        return no_io(lambda: _locally_signed_jwt(self.key, claims))

    def access_token_flow(self, scopes: Sequence[str]) -> Flow[Token]:
        self._signing_ready()
        return access_token_flow(self.key, scopes, self.subject)
