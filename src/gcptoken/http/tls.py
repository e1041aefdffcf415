"""TLS client settings for mutual TLS (X.509 workload identity federation): the workload's
certificate and key, and the CAs a server must chain to (``SSL_CERT_FILE`` when set, as OpenSSL
and Python read it, else the system's; plus the emulator's CA when GCPTOKEN_EMULATOR_CA names it)."""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

from gcptoken.errors import CredentialsError
from gcptoken.private_files import open_credential_file, read_credential_file

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
        pem = read_credential_file(emulator_ca, EMULATOR_CA_ENV).decode("ascii", "replace")
        try:
            context.load_verify_locations(cadata=pem)
        except ssl.SSLError:
            raise CredentialsError(f"{EMULATOR_CA_ENV} names no readable CA certificate ({emulator_ca})") from None
    _load_certificate(context, certificate)
    return context


def _same_file(fd: int, path: str) -> str:
    """A name that opens the very file ``fd`` is (checked: regular, credential-sized): /dev/fd/N
    where there is one, so nothing swapped in at ``path`` since (a FIFO, say) is read instead."""
    return f"/dev/fd/{fd}" if os.path.isdir("/dev/fd") else path


def _load_certificate(context: ssl.SSLContext, certificate: ClientCertificate) -> None:
    """``load_cert_chain`` of the certificate and key, each opened first as every credential file
    is (``private_files.open_credential_file``): a FIFO, a device or a directory there is one line,
    never a read that blocks for ever."""
    import ssl

    cert_fd = open_credential_file(certificate.cert_path, "the workload certificate")
    try:
        key_fd = open_credential_file(certificate.key_path, "the workload key")
        try:
            cert, key = _same_file(cert_fd, certificate.cert_path), _same_file(key_fd, certificate.key_path)
            context.load_cert_chain(cert, key)
        except (OSError, ssl.SSLError) as exc:
            raise CredentialsError(
                f"the workload certificate {certificate.cert_path} and key {certificate.key_path} cannot be used "
                f"({type(exc).__name__})"
            ) from None
        finally:
            os.close(key_fd)
    finally:
        os.close(cert_fd)
