"""Public keys a user uploads to a service account (IAM ``keys:upload``), so a key pair whose private
half never leaves a token or a TPM signs as the account; and the ServiceAccountKey resource IAM's
admin API describes every key with.

Google's rules (cloud.google.com/iam/docs/keys-upload, …/reference/rest/v1/projects.serviceAccounts.keys/upload):
``publicKeyData`` is base64 of "an RSA public key that is wrapped in an X.509 v3 certificate", PEM
with its ``-----BEGIN CERTIFICATE-----`` lines; an account holds at most 10 user-managed keys
(cloud.google.com/iam/docs/keys-create-delete, as firebase-tools#6192 cites it); a key over the
limit is ``400 FAILED_PRECONDITION "Precondition check failed."``, as captured there and in
google-api-dotnet-client#2027. The key is used as published: the uploaded certificate is what
``robot/v1/metadata/x509`` serves.

Where Google documents no rule the emulator is stricter than it may be, and says so in the README:
RSA of 2048 to 4096 bits (the docs' own example is ``rsa:2048``), a certificate still valid, one the
account does not already hold (by public key), and a certificate signed by its own key (it proves
that whoever uploads it holds the private half; Google's docs do not say it checks).
"""

from __future__ import annotations

import base64
import datetime
import secrets
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from gcptoken.emulator.state.models import ServiceAccount
from gcptoken.emulator.state.state import EmulatorState
from gcptoken.jose import jws

__all__ = ["MAX_USER_KEYS", "UploadRefusedError", "key_resource", "spki", "upload"]

MAX_USER_KEYS = 10
MIN_RSA_BITS = 2048
MAX_RSA_BITS = 4096  # what tokens and TPMs make; a larger key only costs the emulator time to check
_TIME = "%Y-%m-%dT%H:%M:%SZ"


class UploadRefusedError(Exception):
    """Why IAM refuses an upload: its HTTP status, gRPC status name and message."""

    def __init__(self, code: int, status: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.status = status
        self.message = message


def _invalid(message: str) -> UploadRefusedError:
    return UploadRefusedError(400, "INVALID_ARGUMENT", message)


def spki(key: jws.VerifyingKey) -> bytes:
    """The key's SubjectPublicKeyInfo DER: what makes two keys the same key."""
    return key.key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def _certificate(data: bytes) -> x509.Certificate:
    if b"-----BEGIN CERTIFICATE-----" not in data:
        raise _invalid("Invalid public key data: expected a PEM X.509 certificate (-----BEGIN CERTIFICATE-----).")
    try:
        certificate = x509.load_pem_x509_certificate(data)
    except ValueError:
        raise _invalid("Invalid public key data: the certificate is not readable X.509.") from None
    if certificate.version is not x509.Version.v3:
        raise _invalid("Invalid public key data: the certificate must be X.509 v3.")
    return certificate


def checked_certificate(data: bytes, now: datetime.datetime) -> tuple[x509.Certificate, rsa.RSAPublicKey]:
    """The uploaded certificate and its RSA key, or UploadRefusedError saying what is wrong."""
    certificate = _certificate(data)
    public = certificate.public_key()
    if not isinstance(public, rsa.RSAPublicKey):
        raise _invalid("Invalid public key data: the key must be an RSA public key.")
    if not MIN_RSA_BITS <= public.key_size <= MAX_RSA_BITS:
        raise _invalid(f"Invalid public key data: the RSA key must be {MIN_RSA_BITS} to {MAX_RSA_BITS} bits.")
    if public.public_numbers().e < 65537:  # e=3 and friends: refused as weak (no Google text documents one)
        raise _invalid("Invalid public key data: the RSA public exponent must be at least 65537.")
    if certificate.not_valid_after_utc <= now:
        raise _invalid("Invalid public key data: the certificate has expired.")
    hash_algorithm = certificate.signature_hash_algorithm
    try:
        if hash_algorithm is None:
            raise InvalidSignature
        public.verify(certificate.signature, certificate.tbs_certificate_bytes, padding.PKCS1v15(), hash_algorithm)
    except (InvalidSignature, ValueError, TypeError):
        raise _invalid("Invalid public key data: the certificate is not signed by its own key.") from None
    return certificate, public


def _user_managed(state: EmulatorState, account: ServiceAccount) -> set[str]:
    system = state.system_keys.get(account.email, ("",))[0]
    return (account.keys.keys() | account.disabled_keys.keys()) - {system}


def upload(state: EmulatorState, email: str, data: bytes) -> str:
    """Add the certificate's key to the account; its new key id. KeyError for an unknown account."""
    certificate, public = checked_certificate(
        data, datetime.datetime.fromtimestamp(state.clock(), datetime.timezone.utc)
    )
    key = jws.verifying_key_for(public)
    pem = certificate.public_bytes(serialization.Encoding.PEM).decode("ascii")
    with state.lock:
        account = state.service_accounts[email]
        if any(spki(held) == spki(key) for held in (account.keys | account.disabled_keys).values()):
            raise UploadRefusedError(
                409, "ALREADY_EXISTS", "The public key is already uploaded to this service account."
            )
        # A public key is anyone's to copy (the x509 endpoints publish every account's): one already
        # another account's would let that account's key holder sign as this one.
        if any(
            spki(held) == spki(key)
            for other in state.service_accounts.values()
            if other is not account
            for held in (other.keys | other.disabled_keys).values()
        ):
            raise UploadRefusedError(
                409, "ALREADY_EXISTS", "The public key is already used by another service account."
            )
        if len(_user_managed(state, account)) >= MAX_USER_KEYS:
            raise UploadRefusedError(400, "FAILED_PRECONDITION", "Precondition check failed.")
        kid = secrets.token_hex(20)
        account.keys[kid] = key
        account.certificates[kid] = pem
        account.uploaded.add(kid)
    state.changed()
    return kid


def _validity(pem: str) -> tuple[str, str]:
    certificate = x509.load_pem_x509_certificate(pem.encode("ascii"))
    return certificate.not_valid_before_utc.strftime(_TIME), certificate.not_valid_after_utc.strftime(_TIME)


def _algorithm(key: jws.VerifyingKey) -> str:
    size = key.key.key_size if isinstance(key.key, rsa.RSAPublicKey) else 0
    return {1024: "KEY_ALG_RSA_1024", 2048: "KEY_ALG_RSA_2048"}.get(size, "KEY_ALG_UNSPECIFIED")


def _raw_public_key(key: jws.VerifyingKey) -> str:
    return key.key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def key_resource(
    state: EmulatorState, account: ServiceAccount, kid: str, public_key_type: str | None
) -> dict[str, Any]:
    """IAM's ServiceAccountKey for one of the account's keys (iam_v1 messages' ServiceAccountKey);
    ``publicKeyData`` (base64 of the PEM certificate, or with ``TYPE_RAW_PUBLIC_KEY`` the PEM
    public key) only when ``public_key_type`` asks for it, as keys.get does."""

    key = account.keys.get(kid) or account.disabled_keys[kid]
    not_before, not_after = _validity(account.certificates[kid])
    system = state.system_keys.get(account.email, ("",))[0] == kid
    resource: dict[str, Any] = {
        "name": f"projects/{account.project_id}/serviceAccounts/{account.email}/keys/{kid}",
        "validAfterTime": not_before,
        "validBeforeTime": not_after,
        "keyAlgorithm": _algorithm(key),
        "keyOrigin": "USER_PROVIDED" if kid in account.uploaded else "GOOGLE_PROVIDED",
        "keyType": "SYSTEM_MANAGED" if system else "USER_MANAGED",
    }
    if kid in account.disabled_keys:
        resource["disabled"] = True
        resource["disableReason"] = "SERVICE_ACCOUNT_KEY_DISABLE_REASON_USER_INITIATED"
    if public_key_type is not None:
        pem = _raw_public_key(key) if public_key_type == "TYPE_RAW_PUBLIC_KEY" else account.certificates[kid]
        resource["publicKeyData"] = base64.b64encode(pem.encode("ascii")).decode("ascii")
    return resource
