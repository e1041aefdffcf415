"""A credential file's ``private_key`` that names a key in hardware instead of holding one, and the
PIN that unlocks it. Light on imports (no typing, no dataclasses): the CLI's cached path reads
references too.

The forms (the PIN is never in the file: an environment variable or a prompt):

- ``pkcs11:token=…;object=…?module-path=…`` — an RFC 7512 URI naming a key in a PKCS#11 token;
- ``-----BEGIN TSS2 PRIVATE KEY-----`` — a TPM 2.0 key file (usable only in the TPM that made it);
- ``tpm2:handle=0x81000001`` — a key persisted in the TPM.
"""

from __future__ import annotations

import os
import re

from gcptoken.errors import HardwareKeyError

__all__ = [
    "MAX_PIN",
    "PIN_ENV",
    "HardwareReference",
    "hardware_kind",
    "hardware_reference",
    "is_hardware_reference",
    "pin_env_name",
    "pin_from_env",
    "without_pins",
]

# The default variable; a credential file may name another in "pin_env" (one per key).
PIN_ENV = "GCPTOKEN_KEY_PIN"
MAX_PIN = 256  # PKCS#11 tokens take far less; a longer value is a mistake, not a PIN
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
_TSS2_PEM = "-----BEGIN TSS2 PRIVATE KEY-----"
_PIN_VARIABLES = {PIN_ENV}  # and each "pin_env" a credential file of this process named


def hardware_kind(private_key: str) -> str | None:
    """ "pkcs11" or "tpm" for a reference, None for anything else (a PEM key, garbage)."""
    text = private_key.lstrip()
    if text.startswith("pkcs11:"):
        return "pkcs11"
    if text.startswith(("tpm2:", _TSS2_PEM)):
        return "tpm"
    return None


def is_hardware_reference(private_key: str) -> bool:
    return hardware_kind(private_key) is not None


def pin_env_name(pin_env: str | None) -> str:
    """The variable holding the PIN: the file's "pin_env", checked, or GCPTOKEN_KEY_PIN."""
    if pin_env is None:
        return PIN_ENV
    if not _ENV_NAME.fullmatch(pin_env):
        raise HardwareKeyError("'pin_env' must name an environment variable (letters, digits, underscores)")
    _PIN_VARIABLES.add(pin_env)
    return pin_env


class HardwareReference:
    """Which device holds the key (``kind``: "pkcs11" or "tpm"), the reference's exact ``text``,
    the variable of its PIN, and whether it takes one: False only for a key that says it has none
    (a TPM key file with emptyAuth), which proves possession by signing (keys.opened)."""

    __slots__ = ("kind", "pin_env", "takes_pin", "text")

    def __init__(self, kind: str, text: str, pin_env: str = PIN_ENV, takes_pin: bool = True) -> None:
        self.kind, self.text, self.pin_env, self.takes_pin = kind, text, pin_env, takes_pin

    @property
    def device(self) -> str:
        return "PKCS#11 token" if self.kind == "pkcs11" else "TPM"

    def __repr__(self) -> str:  # the text is not secret, but a TSS2 key file is long
        return f"HardwareReference({self.kind!r}, pin_env={self.pin_env!r}, takes_pin={self.takes_pin})"


def hardware_reference(private_key: str, pin_env: str | None = None) -> HardwareReference:
    """The checked reference in ``private_key`` (syntax only: no device is opened). Raises
    HardwareKeyError for a malformed reference or a PIN written into it."""
    kind = hardware_kind(private_key)
    if kind is None:
        raise HardwareKeyError("it is not a pkcs11: URI, a TSS2 key file or a tpm2: handle")
    variable = pin_env_name(pin_env)
    text = private_key.strip()
    if kind == "pkcs11":
        from gcptoken.keys.pkcs11_uri import parse_uri

        parse_uri(text)  # refuses pin-value / pin-source: the PIN never comes from the file
        return HardwareReference("pkcs11", text, variable)
    from gcptoken.keys.tpm_reference import parse_reference

    return HardwareReference("tpm", text, variable, takes_pin=parse_reference(text).needs_auth)


def pin_from_env(reference: HardwareReference) -> str | None:
    """The PIN from the reference's variable (None for a key that takes none); empty = unset."""
    if not reference.takes_pin:
        return None
    value = os.environ.get(reference.pin_env, "")
    return value or None


def without_pins(environment: dict[str, str] | None = None) -> dict[str, str]:
    """``environment`` (the process's) without the variables that hold hardware keys' PINs: for
    the programs gcptoken runs that have no use for them (curl, gcloud, an executable source)."""
    source = dict(os.environ if environment is None else environment)
    return {name: value for name, value in source.items() if name not in _PIN_VARIABLES}
