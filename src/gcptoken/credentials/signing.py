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
    "MAX_BLOB",
    "TIME_CLAIMS",
    "Signature",
    "SigningUnavailableError",
    "checked_blob",
    "checked_jwt_claims",
    "no_io",
    "run_local",
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
# What is signed is small (a URL's canonical request, a digest). IAM's documentation states no limit
# for signBlob's payload (SignBlobRequest.payload: "The bytes to sign", same page), so this one
# applies to every signer alike, a key file's included, and the emulator accepts up to it.
MAX_BLOB = 1024 * 1024


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


# Numeric claims whose meaning is a time (RFC 7519 §4.1.4-6: NumericDate), which IAM wants as an
# integer ("must be an integer timestamp", above): one rule for every signer.
TIME_CLAIMS = ("exp", "iat", "nbf")
_MAX_DEPTH = 64  # claims nest a level or two; deeper is a mistake (and json's recursion limit)


def _json_problem(value: object, depth: int = 0) -> str | None:
    """Why ``value`` is not JSON as RFC 8259 has it (object keys are strings, numbers are finite),
    else None. Checked here so that a key file and IAM refuse the same claims alike: json.dumps
    would write NaN (invalid JSON, refused by IAM), turn int keys into strings, and fail on a datetime."""
    if depth > _MAX_DEPTH:
        return f"nest deeper than {_MAX_DEPTH} levels"
    if value is None or isinstance(value, str | bool | int):
        return None
    if isinstance(value, float):
        return None if math.isfinite(value) else "hold a number that is not finite (NaN, Infinity)"
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                return f"have a key that is not a string ({type(key).__name__})"
            problem = _json_problem(item, depth + 1)
            if problem is not None:
                return problem
        return None
    if isinstance(value, list | tuple):
        return next((p for p in (_json_problem(item, depth + 1) for item in value) if p is not None), None)
    return f"hold a {type(value).__name__}, which JSON has no type for"


def checked_jwt_claims(
    claims: Mapping[str, Any], now: float | None = None, *, add_exp: bool = True, add_iat: bool = True
) -> dict[str, Any]:
    """``claims`` as a signed JWT may carry them, one rule for every signer (checked before any
    request): JSON (string keys, finite numbers), ``exp``/``iat``/``nbf`` integers, ``exp`` not in
    the past and at most 12 hours ahead (IAM's rule above); without ``exp``, an hour ahead
    (``add_exp``; IAM adds it itself); without ``iat``, now (``add_iat``): google-auth's jwt.encode
    adds it too (google/auth/jwt.py ``_make_jwt``), and verifiers such as ``gcptoken verify
    --service-account`` require it, while IAM signJwt only adds ``exp``."""
    if not isinstance(claims, Mapping):
        raise InvalidArgumentError("the claims to sign must be a JSON object")
    problem = _json_problem(claims)
    if problem is not None:
        raise InvalidArgumentError(f"the claims to sign must be JSON: they {problem}")
    checked = dict(claims)
    for name in TIME_CLAIMS:
        value = checked.get(name, 0)
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**53:
            raise InvalidArgumentError(f"the claim {name} must be an integer number of seconds since the epoch")
    moment = time.time() if now is None else now
    if add_iat and "iat" not in checked:
        checked["iat"] = int(moment)
    exp = checked.get("exp")
    if exp is None:
        if add_exp:
            checked["exp"] = int(moment) + JWT_DEFAULT_LIFETIME
        return checked
    if exp < moment:
        raise InvalidArgumentError("the claim exp is in the past")
    if exp > moment + JWT_MAX_LIFETIME:
        raise InvalidArgumentError("the claim exp is more than 12 hours ahead (IAM's limit for signed JWTs)")
    return checked


def no_io(produce: Callable[[], T]) -> Flow[T]:
    """A flow that makes no HTTP request (local signing): both drivers run it alike."""
    return produce()
    yield  # pragma: no cover - makes this a generator


def checked_blob(data: bytes) -> bytes:
    """``data`` as bytes, at most MAX_BLOB of them, whoever signs."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise InvalidArgumentError("sign_blob signs bytes, not " + type(data).__name__)
    blob = bytes(data)
    if len(blob) > MAX_BLOB:
        raise InvalidArgumentError(f"sign_blob signs at most {MAX_BLOB} bytes, not {len(blob)}")
    return blob


def run_local(flow: Flow[T]) -> T:
    """A flow that makes no request (local signing), run without a transport."""
    try:
        next(flow)
    except StopIteration as done:
        result: T = done.value
        return result
    raise RuntimeError("a local signing flow asked for a request")
