"""X.509 certificates as a workload identity federation source (``credential_source.certificate``).

The workload's certificate and key are named by a certificate config (``certificate_config_location``,
or with ``use_default_certificate_config`` the file at ``GOOGLE_API_CERTIFICATE_CONFIG``, then
``CLOUDSDK_CONTEXT_AWARE_CERTIFICATE_CONFIG_FILE_PATH``, then gcloud's ``certificate_config.json``).
The subject token is the JSON array of base64 DER certificates, leaf first, then ``trust_chain_path``'s;
STS is called over mutual TLS with that certificate, which is what proves the workload holds the key.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from gcptoken import locations
from gcptoken.errors import CredentialsError
from gcptoken.http.tls import ClientCertificate
from gcptoken.private_files import read_credential_file, read_json_file

__all__ = ["MTLS_SUBJECT_TOKEN_TYPE", "certificate_paths", "check_source", "client_certificate", "subject_token"]

MTLS_SUBJECT_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:mtls"
CONFIG_VARIABLES = ("GOOGLE_API_CERTIFICATE_CONFIG", "CLOUDSDK_CONTEXT_AWARE_CERTIFICATE_CONFIG_FILE_PATH")
_BEGIN = b"-----BEGIN CERTIFICATE-----"


def check_source(source: Mapping[str, Any], where: str) -> None:
    certificate = source.get("certificate")
    if not isinstance(certificate, Mapping):
        raise CredentialsError(f"{where}: 'certificate' is not an object")
    location = certificate.get("certificate_config_location")
    use_default = certificate.get("use_default_certificate_config")
    if location and use_default:
        raise CredentialsError(f"{where}: give certificate_config_location or use_default_certificate_config, not both")
    if not (isinstance(location, str) and location) and use_default is not True:
        raise CredentialsError(
            f"{where}: the certificate source needs certificate_config_location or use_default_certificate_config: true"
        )
    chain = certificate.get("trust_chain_path")
    if chain is not None and not isinstance(chain, str):
        raise CredentialsError(f"{where}: 'trust_chain_path' is not a string")
    if any(kind in source for kind in ("file", "url", "executable")):
        raise CredentialsError(f"{where}: 'certificate' cannot be combined with 'file', 'url' or 'executable'")


def _config_path(certificate: Mapping[str, Any]) -> Path:
    location = certificate.get("certificate_config_location")
    if isinstance(location, str) and location:
        return Path(location).expanduser()
    for variable in CONFIG_VARIABLES:
        if os.environ.get(variable):
            return Path(os.environ[variable]).expanduser()
    # gcloud's configuration directory, where gcloud writes it: $CLOUDSDK_CONFIG, else ~/.config/gcloud
    # (never $XDG_CONFIG_HOME: _GetGlobalConfigDir in googlecloudsdk/core/config.py, Google Cloud SDK).
    return Path(locations.gcloud_config_dir()) / "certificate_config.json"


def _read(path: Path, what: str, where: str) -> bytes:
    return read_credential_file(path, f"{where}: {what}")


def certificate_paths(source: Mapping[str, Any], where: str) -> ClientCertificate:
    """The workload's certificate and key, as its certificate config names them."""
    path = _config_path(source["certificate"])
    config = read_json_file(path, f"{where}: certificate config")
    configs = config.get("cert_configs")
    workload = configs.get("workload") if isinstance(configs, dict) else None
    if not isinstance(workload, dict):
        # gcloud's enterprise certificate proxy forms (a key in PKCS#11, a keychain, a Windows store)
        others = (
            sorted(set(configs) & {"pkcs11", "macos_keychain", "windows_store"}) if isinstance(configs, dict) else []
        )
        if others:
            raise CredentialsError(
                f"{where}: certificate config {path} is the enterprise certificate proxy's form "
                f"(cert_configs.{others[0]}), which gcptoken does not read: give cert_configs.workload with "
                "cert_path and key_path (a TPM key file works as key_path)"
            )
        raise CredentialsError(f"{where}: certificate config {path} has no cert_configs.workload")
    cert_path, key_path = workload.get("cert_path"), workload.get("key_path")
    if not (isinstance(cert_path, str) and cert_path and isinstance(key_path, str) and key_path):
        raise CredentialsError(f"{where}: certificate config {path} needs workload cert_path and key_path")
    return ClientCertificate(cert_path, key_path)


def client_certificate(source: Mapping[str, Any], where: str) -> ClientCertificate | None:
    """The certificate STS must see over mutual TLS, for a certificate source; None for others."""
    return certificate_paths(source, where) if "certificate" in source else None


def _der_certificates(pem: bytes, what: str, where: str) -> list[bytes]:
    from cryptography import x509  # only certificate sources pay for it

    blocks = [_BEGIN + block for block in pem.split(_BEGIN)[1:]]
    try:
        return [x509.load_pem_x509_certificate(block).public_bytes(_der()) for block in blocks]
    except ValueError:
        raise CredentialsError(f"{where}: {what} holds a certificate that cannot be parsed") from None


def _der() -> Any:
    from cryptography.hazmat.primitives.serialization import Encoding

    return Encoding.DER


def subject_token(source: Mapping[str, Any], where: str) -> str:
    """``["<leaf>", "<intermediate>", …]`` (base64 DER), as google-auth serializes it."""
    paths = certificate_paths(source, where)
    leaf = _der_certificates(_read(Path(paths.cert_path), "workload certificate", where), "the certificate", where)
    if not leaf:
        raise CredentialsError(f"{where}: workload certificate {paths.cert_path} holds no PEM certificate")
    chain_path = source["certificate"].get("trust_chain_path")
    chain = (
        _der_certificates(_read(Path(chain_path), "trust chain", where), "the trust chain", where) if chain_path else []
    )
    if chain and chain[0] == leaf[0]:
        chain = chain[1:]
    if leaf[0] in chain:
        raise CredentialsError(f"{where}: the leaf certificate must be at the top of the trust chain file")
    return json.dumps([base64.b64encode(der).decode("ascii") for der in (leaf[0], *chain)])
