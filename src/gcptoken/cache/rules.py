"""What the in-process and on-disk caches agree on: how a key is made from a credential's
identity, and when a token is due for refresh. Standard library only, so the CLI's cached path
can use it without loading anything else.

An identity always carries a digest of a secret the caller holds (the private key's PEM text,
the refresh token, the subject token): the public fields of a credential file (email, key id,
endpoint) are published by Google, so a cache keyed by them alone would hand one party's tokens
to anyone who copied those fields.
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False  # not typing's: the CLI's cached path imports this module
if TYPE_CHECKING:
    from typing import Any

__all__ = [
    "MAX_MARGIN",
    "cache_key",
    "external_identity",
    "hardware_pin_proof",
    "hardware_signature_proof",
    "impersonated_identity",
    "metadata_identity",
    "private_key_proof",
    "refresh_margin",
    "secret_digest",
    "service_account_identity",
    "subject_token_proof",
    "user_identity",
]

# One-hour tokens are refreshed five minutes early; shorter ones proportionately (a twelfth).
MAX_MARGIN = 300.0


def _builtin_sha256() -> Any:
    """CPython's own SHA-256 (the same digest): importing hashlib loads OpenSSL, about 4 ms of the
    CLI's cached path. hashlib's where a build lacks the builtin module."""
    try:
        return __import__("_sha2" if sys.version_info >= (3, 12) else "_sha256").sha256
    except (ImportError, AttributeError):
        import hashlib

        return hashlib.sha256


_sha256 = _builtin_sha256()


def refresh_margin(lifetime: float) -> float:
    return min(MAX_MARGIN, max(lifetime, 0.0) / 12)


def cache_key(*parts: str) -> str:
    # surrogatepass: a non-UTF-8 byte in an argument (os.fsdecode's lone surrogate) keys a miss,
    # and the command's own checks report it, instead of a UnicodeEncodeError here.
    digest: str = _sha256("\x1f".join(parts).encode("utf-8", "surrogatepass")).hexdigest()
    return digest


def secret_digest(kind: str, secret: str | bytes) -> str:
    """A one-way, domain-separated digest of a secret: proof of holding it, never the secret."""
    data = secret.encode("utf-8") if isinstance(secret, str) else secret
    digest: str = _sha256(b"gcptoken-cache-proof\x00" + kind.encode() + b"\x00" + data).hexdigest()
    return digest


def private_key_proof(private_key_pem: str) -> str:
    """Proof of holding a key: a digest of its PEM text (hashing the text, not parsing the key,
    keeps the CLI's cached path fast)."""
    return secret_digest("private_key", private_key_pem)


def hardware_pin_proof(reference: str, pin: str, pepper: bytes) -> str:
    """Proof of holding a key in hardware that takes a PIN: its reference and its PIN, keyed with
    the user's pepper (cache.pepper: a PIN is too small a secret to digest bare). See
    keys.opened.possession_proof for why that suffices and when it is used."""
    text = reference.encode("utf-8", "surrogatepass") + b"\x00" + pin.encode("utf-8", "surrogatepass")
    return secret_digest("hardware_pin", pepper + text)


def hardware_signature_proof(signature: bytes) -> str:
    """Proof of holding a key in hardware that takes no PIN: its signature over a fixed challenge."""
    return secret_digest("hardware_signature", signature)


def service_account_identity(client_email: str, private_key_id: str, token_url: str, key_proof: str) -> str:
    """A key file's identity: its public fields bound to ``private_key_proof`` of its key."""
    return f"service_account|{client_email}|{private_key_id}|{token_url}|{key_proof}"


def user_identity(client_id: str, refresh_token: str) -> str:
    """A user credential's identity (before its token endpoint): a one-way digest of the refresh
    token, never the token."""
    return f"authorized_user|{client_id}|{secret_digest('refresh_token', refresh_token)}"


def impersonated_identity(
    source_identity: str, chain: list[str], include_email: bool, lifetime: int, iam_base: str
) -> str:
    """Impersonation's identity: its source's (secret-bound) identity and what it asks IAM for."""
    return f"impersonated|{source_identity}|{','.join(chain)}|{include_email}|{lifetime}|{iam_base}"


def external_identity(audience: str, token_url: str, proof: str) -> str:
    """A federated identity: the provider, the STS endpoint, and proof of its subject token."""
    return f"external_account|{audience}|{token_url}|{proof}"


def subject_token_proof(subject_token: str) -> str:
    return secret_digest("subject_token", subject_token)


def metadata_identity(host: str, token_format: str, include_license: bool) -> str:
    """The metadata server holds the secret: its host (and the instance's account) is the identity."""
    return f"metadata|{host}|{token_format}|{include_license}"
