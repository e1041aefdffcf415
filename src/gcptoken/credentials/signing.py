"""Signatures from any credential: what a signature is, the claims rule every signed JWT follows,
and the refusal of credentials that have no service account to sign as.

A key file signs locally; every keyless credential signs through IAM Credentials ``signBlob`` /
``signJwt`` as the service account it acts as. Anything that can sign (a hardware key later) only
needs the two flows of ``Credentials``: ``sign_blob_flow`` and ``sign_jwt_flow``."""

from __future__ import annotations

import base64
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from gcptoken.errors import InvalidArgumentError, RefusedError
from gcptoken.http.flows import Flow

__all__ = [
    "JWT_DEFAULT_LIFETIME",
    "JWT_MAX_LIFETIME",
    "Signature",
    "SigningUnavailableError",
    "checked_jwt_claims",
    "no_io",
    "signing_needs_a_service_account",
]

T = TypeVar("T")

# IAM's rule for signJwt payloads, which local signing follows too so that a JWT means the same
# whoever signed it: "If the JWT Claims Set contains an expiration time (exp) claim, it must be an
# integer timestamp that is not in the past and no more than 12 hours in the future. If [it] does
# not contain [one], this claim is added automatically, with a timestamp that is 1 hour in the
# future." (SignJwtRequest.payload, https://cloud.google.com/iam/docs/reference/credentials/rest).
JWT_DEFAULT_LIFETIME = 3600
JWT_MAX_LIFETIME = 12 * 3600


@dataclass(frozen=True)
class Signature:
    """An RSASSA-PKCS1-v1_5 SHA-256 signature and the id of the key that made it (a key file's
    ``private_key_id``, or IAM's ``keyId`` of a Google-managed key); the key is published among
    the account's keys (``robot/v1/metadata/x509/EMAIL``) under that id. Not a secret."""

    key_id: str | None
    signature: bytes

    @property
    def base64(self) -> str:
        """The signature in standard base64 (as IAM's ``signedBlob``)."""
        return base64.b64encode(self.signature).decode("ascii")


class SigningUnavailableError(RefusedError):
    """The credential has no service account to sign as (a user, a federated identity without a
    target): impersonate one with ``sign_as=`` (command line: ``--impersonate-service-account``)."""


def signing_needs_a_service_account(description: str) -> SigningUnavailableError:
    return SigningUnavailableError(
        f"{description} cannot sign: only a service account has keys to sign with. Sign as a service account "
        "you hold Service Account Token Creator (roles/iam.serviceAccountTokenCreator) on: sign_as=SA_EMAIL "
        "in the library, --impersonate-service-account SA_EMAIL on the command line"
    )


def checked_jwt_claims(claims: Mapping[str, Any], now: float | None = None, *, add_exp: bool = True) -> dict[str, Any]:
    """``claims`` as a signed JWT may carry them, by IAM's rule above: ``exp`` a time not in the
    past and at most 12 hours ahead; without one, an hour ahead (``add_exp``; IAM adds it itself)."""
    if not isinstance(claims, Mapping):
        raise InvalidArgumentError("the claims to sign must be a JSON object")
    checked = dict(claims)
    moment = time.time() if now is None else now
    exp = checked.get("exp")
    if exp is None:
        if add_exp:
            checked["exp"] = int(moment) + JWT_DEFAULT_LIFETIME
        return checked
    if isinstance(exp, bool) or not isinstance(exp, int | float) or not math.isfinite(exp):
        raise InvalidArgumentError("the claim exp must be a number of seconds since the epoch")
    if exp < moment:
        raise InvalidArgumentError("the claim exp is in the past")
    if exp > moment + JWT_MAX_LIFETIME:
        raise InvalidArgumentError("the claim exp is more than 12 hours ahead (IAM's limit for signed JWTs)")
    return checked


def no_io(produce: Callable[[], T]) -> Flow[T]:
    """A flow that makes no HTTP request (local signing): both drivers run it alike."""
    return produce()
    yield  # pragma: no cover - makes this a generator
