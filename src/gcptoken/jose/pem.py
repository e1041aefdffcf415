"""A cheap structural check of a PEM private key, standard library only: enough to refuse a
missing, garbage or non-RSA key before any cache lookup without paying ≈ 55 ms for cryptography's
full RSA parse (the CLI's cached path runs this on every call)."""

from __future__ import annotations

import binascii

__all__ = ["rsa_private_key_problem"]

# DER of rsaEncryption's OID (1.2.840.113549.1.1.1), as a PKCS#8 PrivateKeyInfo names it.
_RSA_ENCRYPTION_OID = bytes.fromhex("06092a864886f70d010101")
_BASE64_ALPHABET = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=")
_LABELS = {"PRIVATE KEY": "pkcs8", "RSA PRIVATE KEY": "pkcs1"}


def rsa_private_key_problem(pem: str) -> str | None:
    """What is wrong with ``pem`` as an unencrypted RSA private key, or None if it looks right."""
    text = pem.strip().replace("\r\n", "\n")
    first, _, rest = text.partition("\n")
    label = first.removeprefix("-----BEGIN ").removesuffix("-----") if first.startswith("-----BEGIN ") else ""
    if not label or not first.endswith("-----"):
        return "is not a PEM private key"
    if label not in _LABELS:
        kind = "an encrypted private key" if "ENCRYPTED" in label else f"a {label[:40]!r} block"
        return f"is {kind}, not an unencrypted RSA private key"
    body, _, end = rest.rpartition("\n")
    if end.strip() != f"-----END {label}-----":
        return "is not a complete PEM private key (no END line)"
    encoded = "".join(body.split())
    try:
        if not set(encoded) <= _BASE64_ALPHABET:
            raise ValueError(encoded[:0])
        der = binascii.a2b_base64(encoded)
    except (binascii.Error, ValueError):
        return "is not valid PEM (its base64 does not decode)"
    if len(der) < 64 or der[0] != 0x30:
        return "is not a private key (not DER inside the PEM)"
    if _LABELS[label] == "pkcs8" and _RSA_ENCRYPTION_OID not in der[:32]:
        return "is not an RSA key (Google's service-account keys are RSA)"
    return None
