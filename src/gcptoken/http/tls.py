"""TLS client settings for mutual TLS (X.509 workload identity federation): the workload's
certificate and key, and the CAs a server must chain to (``SSL_CERT_FILE`` when set, as OpenSSL
and Python read it, else the system's)."""

from __future__ import annotations

import functools
import os
import ssl
from dataclasses import dataclass

from gcptoken.errors import CredentialsError

__all__ = ["ClientCertificate", "client_context"]


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
    return _context(certificate, os.environ.get("SSL_CERT_FILE") or "", stamp)


@functools.lru_cache(maxsize=8)
def _context(certificate: ClientCertificate, ca_file: str, stamp: tuple[int, ...]) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=ca_file or None)
    try:
        context.load_cert_chain(certificate.cert_path, certificate.key_path)
    except (OSError, ssl.SSLError) as exc:
        raise CredentialsError(
            f"the workload certificate {certificate.cert_path} and key {certificate.key_path} cannot be used "
            f"({type(exc).__name__})"
        ) from None
    return context
