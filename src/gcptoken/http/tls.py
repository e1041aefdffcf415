"""TLS client settings for mutual TLS (X.509 workload identity federation): the workload's
certificate and key, and the CAs a server must chain to (``SSL_CERT_FILE`` when set, as OpenSSL
and Python read it, else the system's; plus the emulator's CA when GCPTOKEN_EMULATOR_CA names it)."""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

from gcptoken.errors import CredentialsError

if TYPE_CHECKING:
    import ssl

__all__ = ["EMULATOR_CA_ENV", "ClientCertificate", "client_context"]

# The emulator's CA, trusted besides the system's for mutual TLS (its --state-dir env sets it).
EMULATOR_CA_ENV = "GCPTOKEN_EMULATOR_CA"


@dataclass(frozen=True)
class ClientCertificate:
    """Paths of a PEM certificate (chain) and its private key."""

    cert_path: str
    key_path: str


def client_context(certificate: ClientCertificate) -> ssl.SSLContext:
    """An SSL context presenting ``certificate``; CredentialsError when it cannot be loaded.
    Reloaded when the files change (workload certificates are short-lived and rotated in place)."""
    try:
        stamp = tuple(os.stat(path).st_mtime_ns for path in (certificate.cert_path, certificate.key_path))
    except OSError:
        stamp = ()
    extra = os.environ.get(EMULATOR_CA_ENV) or ""
    return _context(certificate, os.environ.get("SSL_CERT_FILE") or "", extra, stamp)


@functools.lru_cache(maxsize=8)
def _context(certificate: ClientCertificate, ca_file: str, emulator_ca: str, stamp: tuple[int, ...]) -> ssl.SSLContext:
    import ssl  # only for mutual TLS: loading it is not free, and most credentials never need it

    context = ssl.create_default_context(cafile=ca_file or None)
    if emulator_ca:
        try:
            context.load_verify_locations(cafile=emulator_ca)
        except (OSError, ssl.SSLError):
            raise CredentialsError(f"{EMULATOR_CA_ENV} names no readable CA certificate ({emulator_ca})") from None
    try:
        context.load_cert_chain(certificate.cert_path, certificate.key_path)
    except (OSError, ssl.SSLError) as exc:
        raise CredentialsError(
            f"the workload certificate {certificate.cert_path} and key {certificate.key_path} cannot be used "
            f"({type(exc).__name__})"
        ) from None
    return context
