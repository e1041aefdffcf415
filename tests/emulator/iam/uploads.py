"""Key pairs and certificates for upload tests, made with `cryptography` as a token or TPM would
make them (the private half stays with the test), and a caller holding Key Admin on an account."""

from __future__ import annotations

import base64
import datetime
from dataclasses import dataclass
from typing import Any

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from gcptoken.testing import EmulatorClient

CLOUD_PLATFORM = "https://www.googleapis.com/auth/cloud-platform"


@dataclass
class KeyPair:
    private: rsa.RSAPrivateKey
    certificate_pem: str

    @property
    def private_pem(self) -> str:
        return self.private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode("ascii")

    @property
    def public_key_data(self) -> str:
        return base64.b64encode(self.certificate_pem.encode("ascii")).decode("ascii")


def certificate(
    subject_key: Any,
    signer: Any | None = None,
    days: float = 365,
    start_days: float = -1,
) -> str:
    """A v3 certificate for ``subject_key``'s public half, signed by ``signer`` (itself by default)."""
    now = datetime.datetime.now(datetime.timezone.utc)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "unused")])
    built = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(subject_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now + datetime.timedelta(days=start_days))
        .not_valid_after(now + datetime.timedelta(days=days))
    )
    signed = built.sign(signer or subject_key, hashes.SHA256())
    return signed.public_bytes(serialization.Encoding.PEM).decode("ascii")


def key_pair(bits: int = 2048) -> KeyPair:
    private = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    return KeyPair(private, certificate(private))


def ec_certificate() -> str:
    return certificate(ec.generate_private_key(ec.SECP256R1()))


def key_admin(emulator: EmulatorClient, target: str, prefix: str = "key-admin") -> dict[str, str]:
    """Authorization headers of a service account holding roles/iam.serviceAccountKeyAdmin on ``target``."""
    admin = emulator.state.create_service_account(f"{prefix}-{len(emulator.state.service_accounts)}")
    emulator.state.key_admins.setdefault(target, set()).add(f"serviceAccount:{admin.email}")
    grant = emulator.state.issue_access_token(admin, (CLOUD_PLATFORM,))
    return {"Authorization": f"Bearer {grant.token}"}


def keys_url(emulator: EmulatorClient, email: str, project: str = "-") -> str:
    return f"{emulator.url}/v1/projects/{project}/serviceAccounts/{email}/keys"


def upload(emulator: EmulatorClient, email: str, data: str, headers: dict[str, str]) -> httpx.Response:
    return httpx.post(keys_url(emulator, email) + ":upload", json={"publicKeyData": data}, headers=headers)


def key_file(emulator: EmulatorClient, email: str, kid: str, pair: KeyPair) -> dict[str, str]:
    """The key file a user would write for an uploaded key: the private half is the test's own."""
    account = emulator.state.service_accounts[email]
    return {
        "type": "service_account",
        "project_id": account.project_id,
        "private_key_id": kid,
        "private_key": pair.private_pem,
        "client_email": email,
        "client_id": account.unique_id,
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": f"{emulator.url}/token",
        "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
        "client_x509_cert_url": emulator.state.certs_url(email),
        "universe_domain": "googleapis.com",
    }


def uploaded_key_file(emulator: EmulatorClient, name: str) -> tuple[str, str, dict[str, str], dict[str, str]]:
    """A new account with a freshly uploaded key: its email, the key id, Key Admin headers and the key file."""
    email = emulator.state.create_service_account(f"{name}-{len(emulator.state.service_accounts)}").email
    headers = key_admin(emulator, email)
    pair = key_pair()
    response = upload(emulator, email, pair.public_key_data, headers)
    assert response.status_code == 200, response.text
    kid = response.json()["name"].rsplit("/", 1)[1]
    return email, kid, headers, key_file(emulator, email, kid, pair)
