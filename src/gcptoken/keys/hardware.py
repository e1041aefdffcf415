"""What the rest of gcptoken needs from a key held in hardware: an RS256 signature made inside
the device, and the public half. Standard library only: the CLI's cached path imports this."""

from __future__ import annotations

from typing import Protocol

__all__ = ["HardwareKey"]


class HardwareKey(Protocol):
    """A private key inside a PKCS#11 token or a TPM: it signs, it never leaves.

    ``sign`` is RSASSA-PKCS1-v1_5 with SHA-256 over ``signing_input`` (the JWS RS256 and IAM
    signBlob algorithm), done by the device; the digest may be computed here first (a TPM signs a
    digest). ``public_key_der`` is the SubjectPublicKeyInfo, DER. ``close`` releases the session
    (or TPM context); a closed key raises ``HardwareKeyError`` when used.
    """

    @property
    def alg(self) -> str:
        """Always "RS256": Google's service-account keys are RSA."""
        ...

    def sign(self, signing_input: bytes) -> bytes: ...

    def public_key_der(self) -> bytes: ...

    def close(self) -> None: ...
