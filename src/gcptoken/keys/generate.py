"""Making a key inside a PKCS#11 token or a TPM: what ``gcptoken key generate`` does."""

from __future__ import annotations

from gcptoken.errors import HardwareKeyError
from gcptoken.keys.reference import HardwareReference, hardware_kind, hardware_reference

__all__ = ["TPM_NEW", "generate_key"]

TPM_NEW = "tpm"  # a new TPM key returned as a TSS2 key file (tpm2:handle=… makes it persistent there)


def generate_key(where: str, pin: str | None, *, pin_env: str | None = None) -> HardwareReference:
    """A new RSA-2048 signing key made in the device ``where`` names: a ``pkcs11:`` URI naming the
    token and the new key's label (``pin``: the token's user PIN), ``tpm`` or a ``tpm2:handle=``
    to persist it at (``pin``: the new key's auth value; None makes a key without one).
    Returns the reference that names the new key."""
    text = where.strip()
    if hardware_kind(text) == "pkcs11":
        from gcptoken.keys import pkcs11
        from gcptoken.keys.pkcs11_uri import parse_uri

        if pin is None:
            raise HardwareKeyError("a PKCS#11 token needs its user PIN to make a key")
        made = pkcs11.generate_key(parse_uri(text), pin)
        return hardware_reference(made.text, pin_env)
    if text == TPM_NEW or text.startswith("tpm2:"):
        from gcptoken.keys import tpm
        from gcptoken.keys.tpm_reference import parse_reference

        persist = None if text == TPM_NEW else parse_reference(text).handle
        if text != TPM_NEW and persist is None:
            raise HardwareKeyError("a new TPM key is made persistent at a tpm2:handle=0x81…, or written as a key file")
        made_tpm = tpm.generate_key(pin, persist=persist)
        return hardware_reference(made_tpm.text, pin_env)
    raise HardwareKeyError("where to make the key: a pkcs11: URI (token and object label), tpm, or tpm2:handle=0x81…")
