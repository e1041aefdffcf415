"""Mutual TLS with a workload key that stays in a PKCS#11 token: the OpenSSL 3 ``pkcs11``
provider (latchset/pkcs11-provider; Debian trixie and Ubuntu 24.04 ``pkcs11-provider``, built from
source on bookworm) in the OpenSSL library Python's ``ssl`` uses.

The key file is the provider's ``PKCS#11 PROVIDER URI`` PEM (a SEQUENCE of the description
"PKCS#11 Provider URI v1.0" and an RFC 7512 URI, as its tools/uri2pem.py writes it): with the
provider loaded, ``SSLContext.load_cert_chain`` decodes it into a handle on the token's key, and the
handshake signs in the token. The driver is ``PKCS11_PROVIDER_MODULE`` (the provider's variable).
The user PIN comes from ``GCPTOKEN_KEY_PIN`` or a prompt on the terminal, through the password
callback of ``load_cert_chain``; never from the file (a URI carrying one is refused). The default
property query is left alone: the provider keeps its keys' signatures to itself.
"""

from __future__ import annotations

import base64
import binascii
import os
import sys
from collections.abc import Callable

from gcptoken.keys.hardware import HardwareKeyError
from gcptoken.keys.openssl_providers import load_providers, modules_dir
from gcptoken.untrusted import one_line

__all__ = ["PIN_ENV", "check_uri", "load_pkcs11_provider", "pin_callback"]

PIN_ENV = "GCPTOKEN_KEY_PIN"  # the same variable as every hardware key of gcptoken
_URI_DESCRIPTION = b"PKCS#11 Provider URI v1.0"


def load_pkcs11_provider() -> None:
    """The pkcs11 provider, once per process; HardwareKeyError (one line) without it."""
    module = os.environ.get("PKCS11_PROVIDER_MODULE")
    driver = f"PKCS11_PROVIDER_MODULE={one_line(module)}" if module else "its default module (PKCS11_PROVIDER_MODULE)"
    load_providers(
        "pkcs11",
        None,
        missing=(
            "the workload key is in a PKCS#11 token, and OpenSSL's pkcs11 provider is not installed (no "
            f"pkcs11.so in {one_line(modules_dir())}; Debian trixie and Ubuntu 24.04: apt install pkcs11-provider)"
        ),
        unreachable=f"the workload key is in a PKCS#11 token, and OpenSSL's pkcs11 provider cannot start {driver}",
    )


def check_uri(pem: bytes, where: str) -> str:
    """The key's URI, refused when it carries the PIN; HardwareKeyError when the PEM is not one."""
    body = b"".join(line.strip() for line in pem.splitlines() if line and not line.startswith(b"-----"))
    try:
        uri = _der_uri(base64.b64decode(body, validate=True)).decode("utf-8")
    except (binascii.Error, ValueError, IndexError):
        raise HardwareKeyError(f"{where} is not a PKCS#11 PROVIDER URI file") from None
    attributes = uri.replace("?", ";").split(";")
    if any(attribute.split("=", 1)[0] in ("pin-value", "pin-source") for attribute in attributes):
        raise HardwareKeyError(f"{where}: the key's URI may not carry the PIN; gcptoken reads it from ${PIN_ENV}")
    return uri


def _der_uri(der: bytes) -> bytes:
    """The UTF8String of SEQUENCE { VisibleString description, UTF8String uri }."""
    fields, offset = [], 0
    tag, sequence, _ = _tlv(der, 0)
    if tag != 0x30:
        raise ValueError("not a SEQUENCE")
    while offset < len(sequence):
        tag, value, offset = _tlv(sequence, offset)
        fields.append((tag, value))
    if [tag for tag, _ in fields] != [0x1A, 0x0C] or fields[0][1] != _URI_DESCRIPTION:
        raise ValueError("not a PKCS#11 provider URI")
    return fields[1][1]


def _tlv(der: bytes, offset: int) -> tuple[int, bytes, int]:
    tag, length, offset = der[offset], der[offset + 1], offset + 2
    if length & 0x80:
        size = length & 0x7F
        length, offset = int.from_bytes(der[offset : offset + size], "big"), offset + size
    if offset + length > len(der):
        raise ValueError("truncated")
    return tag, der[offset : offset + length], offset + length


def pin_callback(where: str) -> Callable[[], str]:
    """The PIN for ``load_cert_chain``: ``$GCPTOKEN_KEY_PIN``, else asked on the terminal; with
    neither, HardwareKeyError now (OpenSSL would otherwise print its own prompt to stderr)."""
    pin = os.environ.get(PIN_ENV)
    if pin is not None:
        return lambda: pin
    if not sys.stdin.isatty():
        raise HardwareKeyError(f"{where} is in a PKCS#11 token: set ${PIN_ENV} to the token's user PIN")

    def ask() -> str:
        import getpass

        return getpass.getpass(f"PIN of the PKCS#11 token holding {where}: ")

    return ask
