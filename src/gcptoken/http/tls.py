"""TLS client settings for mutual TLS (X.509 workload identity federation): the workload's
certificate and key, and the CAs a server must chain to (``SSL_CERT_FILE`` or ``SSL_CERT_DIR`` when
set, as OpenSSL and Python read them, else the system's; plus the emulator's CA when
GCPTOKEN_EMULATOR_CA names it); ``server_context`` gives every transport the same CAs."""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

from gcptoken.errors import CredentialsError
from gcptoken.private_files import open_credential_file, read_credential_file
from gcptoken.untrusted import one_line

if TYPE_CHECKING:
    import ssl
    from collections.abc import Callable

__all__ = [
    "CA_DIR_ENV",
    "CA_FILE_ENV",
    "EMULATOR_CA_ENV",
    "ClientCertificate",
    "client_context",
    "h2_context",
    "server_context",
]

# The emulator's CA, trusted besides the system's for mutual TLS (its --state-dir env sets it).
EMULATOR_CA_ENV = "GCPTOKEN_EMULATOR_CA"
# The CAs servers must chain to, as OpenSSL, Python's ssl and httpx (trust_env) read them.
CA_FILE_ENV = "SSL_CERT_FILE"
CA_DIR_ENV = "SSL_CERT_DIR"
# A CA bundle is larger than a key file (the system's is ~200 KB), but still no stream.
_MAX_CA_FILE = 16 << 20


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
    return _context(certificate, _trust_locations(), extra, stamp)


def server_context() -> ssl.SSLContext | None:
    """A context trusting the CAs ``SSL_CERT_FILE`` or ``SSL_CERT_DIR`` names, for every transport
    alike; None when neither is set (each transport keeps its default). CredentialsError, in one
    line naming the variable, when what it names cannot be used."""
    locations = _trust_locations()
    return _server_context(locations) if any(locations) else None


def h2_context() -> ssl.SSLContext:
    """A new client context (the CAs as :func:`server_context`'s) offering only HTTP/2 by ALPN."""
    context = _new_context(_trust_locations())
    context.set_alpn_protocols(["h2"])
    return context


def _trust_locations() -> tuple[str, str, tuple[int, ...]]:
    """The CA file and directory from the environment, and when they last changed (the cache key)."""
    ca_file, ca_dir = os.environ.get(CA_FILE_ENV) or "", os.environ.get(CA_DIR_ENV) or ""
    try:
        stamp = tuple(os.stat(path).st_mtime_ns for path in (ca_file, ca_dir) if path)
    except OSError:
        stamp = ()
    return ca_file, ca_dir, stamp


@functools.lru_cache(maxsize=4)
def _server_context(locations: tuple[str, str, tuple[int, ...]]) -> ssl.SSLContext:
    return _new_context(locations)


def _new_context(locations: tuple[str, str, tuple[int, ...]]) -> ssl.SSLContext:
    """A client context trusting the CAs the environment names (they replace the system's, as in
    OpenSSL), else the system's; what the variables name is checked first, each failure one line
    naming the variable ("SSL_CERT_FILE PATH cannot be read (permission denied)")."""
    import ssl  # only for https: loading it is not free

    ca_file, ca_dir, _ = locations
    if not ca_file and not ca_dir:
        return ssl.create_default_context()
    if ca_dir and not os.path.isdir(ca_dir):
        reason = "is not a directory" if os.path.exists(ca_dir) else "does not exist"
        raise CredentialsError(f"{CA_DIR_ENV} {one_line(ca_dir, None)} {reason}")
    if ca_dir and not os.access(ca_dir, os.R_OK | os.X_OK):
        raise CredentialsError(f"{CA_DIR_ENV} {one_line(ca_dir, None)} cannot be read (permission denied)")
    # Opened as every credential file is: a FIFO or a device there is one line, never a hang.
    fd = open_credential_file(ca_file, CA_FILE_ENV, _MAX_CA_FILE) if ca_file else None
    try:
        cafile = None if fd is None else _same_file(fd, ca_file)
        return ssl.create_default_context(cafile=cafile, capath=ca_dir or None)
    except (OSError, ssl.SSLError) as exc:
        name, path = (CA_FILE_ENV, ca_file) if ca_file else (CA_DIR_ENV, ca_dir)
        reason = getattr(exc, "reason", None) or type(exc).__name__
        raise CredentialsError(f"{name} {one_line(path, None)} holds no PEM CA certificate ({reason})") from None
    finally:
        if fd is not None:
            os.close(fd)


@functools.lru_cache(maxsize=8)
def _context(
    certificate: ClientCertificate, trust: tuple[str, str, tuple[int, ...]], emulator_ca: str, stamp: tuple[int, ...]
) -> ssl.SSLContext:
    import ssl  # only for mutual TLS: loading it is not free, and most credentials never need it

    context = _new_context(trust)
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
        device = ""
        try:
            device, password = _hardware_key(key_fd, certificate.key_path)
            cert, key = _same_file(cert_fd, certificate.cert_path), _same_file(key_fd, certificate.key_path)
            context.load_cert_chain(cert, key, password)
        except (OSError, ssl.SSLError) as exc:
            if device:
                raise CredentialsError(
                    f"the {device} cannot load the workload key {certificate.key_path} for {certificate.cert_path} "
                    f"({_WHY_NOT[device]})"
                ) from None
            raise CredentialsError(
                f"the workload certificate {certificate.cert_path} and key {certificate.key_path} cannot be used "
                f"({type(exc).__name__})"
            ) from None
        finally:
            os.close(key_fd)
    finally:
        os.close(cert_fd)


_MAX_KEY_FILE = 64 << 10  # a PEM key file, or a file naming a key in hardware
_WHY_NOT = {"TPM": "made by another TPM, or not this certificate's key?"}


def _head(key_fd: int) -> bytes:
    return os.pread(key_fd, _MAX_KEY_FILE, 0).lstrip()


def key_file_head(path: str) -> bytes | None:
    """The start of a workload key file, as _hardware_key reads it; None where the file is not one
    to read (a FIFO, a device, missing: the ordinary path says so in one line)."""
    try:
        fd = open_credential_file(path, "the workload key")
    except (OSError, CredentialsError):
        return None
    try:
        return _head(fd)
    finally:
        os.close(fd)


def _hardware_key(key_fd: int, key_path: str) -> tuple[str, Callable[[], str] | None]:
    """What holds the key when the file only names it (a TPM key), with the OpenSSL provider that
    can use it loaded first; ("", None) for a key file (which never pays for any of it)."""
    head = _head(key_fd)
    # The PEM label of a TPM key (tpm2-openssl, draft-bottomley-tpm2-keys): checked here so that
    # other keys never import the module.
    if head.startswith(b"-----BEGIN TSS2 PRIVATE KEY-----"):
        from gcptoken.keys import tpm_tls

        tpm_tls.load_tpm_provider()
        return "TPM", tpm_tls.pin_callback(f"the workload key {key_path}")
    if head.startswith(b"-----BEGIN PKCS#11 PROVIDER URI-----"):
        raise CredentialsError(
            f"the workload key {key_path} names a key in a PKCS#11 token: mutual TLS from a PKCS#11 key is not "
            "supported (it needs OpenSSL's pkcs11-provider; see the README); a TPM key is"
        )
    return "", None
