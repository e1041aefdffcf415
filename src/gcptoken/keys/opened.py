"""Opening a key in hardware once per process, and what its holder proves to the token cache.

Opening costs a module load and a login (PKCS#11) or a key load (TPM): it is done when something
is first signed, never for a cache lookup of a key that takes a PIN (see cache.rules)."""

from __future__ import annotations

import threading

from gcptoken.cache.rules import hardware_pin_proof, hardware_signature_proof, secret_digest
from gcptoken.errors import HardwareKeyError
from gcptoken.keys.hardware import HardwareKey
from gcptoken.keys.reference import HardwareReference

__all__ = ["close_all", "opened_key", "possession_proof"]

_OPENED: dict[tuple[str, str, str], HardwareKey] = {}
_LOCK = threading.Lock()


def opened_key(reference: HardwareReference, pin: str | None) -> HardwareKey:
    """The key ``reference`` names, opened with ``pin`` (once per process for the same pair)."""
    memo = (reference.kind, reference.text, secret_digest("pin", pin or ""))
    with _LOCK:
        key = _OPENED.get(memo)
        if key is None:
            key = _open(reference, pin)
            if key.alg != "RS256":
                key.close()
                raise HardwareKeyError("the key is not an RSA key (Google's service-account keys are RSA)")
            _OPENED[memo] = key
        return key


def _open(reference: HardwareReference, pin: str | None) -> HardwareKey:
    if reference.kind == "pkcs11":
        from gcptoken.keys import pkcs11
        from gcptoken.keys.pkcs11_uri import parse_uri

        return pkcs11.open_key(parse_uri(reference.text), pin)
    from gcptoken.keys import tpm
    from gcptoken.keys.tpm_reference import parse_reference

    return tpm.open_key(parse_reference(reference.text), pin)


def possession_proof(reference: HardwareReference, pin: str | None) -> str:
    """What a caller proves to get a cached token for this key (the cache rule).

    With a PIN: the reference and the PIN, which together are what it takes to use the key on this
    machine, keyed with the user's pepper (a PIN is too small a secret to digest bare); an entry
    under them is only ever written after the device accepted that PIN, so a wrong PIN finds
    nothing. The device is not touched: a cached call costs what a key file's does.
    Without a PIN (a TPM key with no auth value), or without a pepper: a signature the key makes,
    in the device, over a fixed challenge (RSASSA-PKCS1-v1_5 is deterministic, so the same key
    gives the same proof, and nothing else can make it)."""
    from gcptoken.cache.pepper import cache_pepper

    pepper = cache_pepper() if pin is not None else None
    if pin is not None and pepper is not None:
        return hardware_pin_proof(reference.text, pin, pepper)
    signature = opened_key(reference, pin).sign(_challenge(reference))
    return hardware_signature_proof(signature)


def _challenge(reference: HardwareReference) -> bytes:
    return b"gcptoken cache proof v1\x00" + reference.text.encode("utf-8")


def close_all() -> None:
    with _LOCK:
        keys = list(_OPENED.values())
        _OPENED.clear()
    for key in keys:
        key.close()
