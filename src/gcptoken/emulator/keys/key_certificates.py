"""The X.509 certificates Google wraps its published public keys in (service accounts' keys and
its own token issuers'), made as Google makes them.

Google's certificates (decoded from captured answers of ``robot/v1/metadata/x509/…`` and
``service_accounts/v1/metadata/raw/federated-signon@…``, 2013 and 2021): version 3, self-signed,
subject = issuer = ``CN=<the account's email with "@" replaced by ".">`` (e.g.
``CN=securetoken.system.gserviceaccount.com``), a random 64-bit serial, and three critical
extensions: basic constraints CA:FALSE, key usage digitalSignature, extended key usage
clientAuth. Google signs them with sha1WithRSA; these use SHA-256 (no verifier reads the
signature, and SHA-1 signing is on its way out of every crypto library).
"""

from __future__ import annotations

import datetime
import secrets

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from gcptoken.jose import jws

__all__ = ["FOREVER", "REISSUER", "certificate", "common_name", "reissued"]

# A user-managed key never expires unless an expiry policy says so: IAM lists it as valid before
# 9999-12-31T23:59:59Z (the ServiceAccountKey's validBeforeTime).
FOREVER = datetime.datetime(9999, 12, 31, 23, 59, 59, tzinfo=datetime.timezone.utc)
REISSUER = "gcptoken emulator (re-issued)"


def common_name(email: str) -> str:
    """``securetoken@system.gserviceaccount.com`` → ``securetoken.system.gserviceaccount.com``."""
    return email.replace("@", ".")


def _name(common: str) -> x509.Name:
    # An account's email can be longer than X.520's 64-character bound on a common name (account
    # ids run to 30 characters, project ids to 30); how Google names those is not documented, so
    # the name is cut to the bound.
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common[:64])])


def _builder(
    name: str, public: jws.VerifyingKey, not_before: datetime.datetime, not_after: datetime.datetime
) -> x509.CertificateBuilder:
    usage = x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=False,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )
    return (
        x509.CertificateBuilder()
        .subject_name(_name(name))
        .public_key(public.key)
        .serial_number(secrets.randbits(63) | 1)  # a positive 64-bit integer, as Google's
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(usage, critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=True)
    )


def _pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode("ascii")


def certificate(
    name: str, key: jws.SigningKey, not_before: datetime.datetime, not_after: datetime.datetime = FOREVER
) -> str:
    """The PEM certificate of ``key``, self-signed, for ``CN=name``."""
    built = _builder(name, key.public, not_before, not_after).issuer_name(_name(name))
    return _pem(built.sign(key.key, hashes.SHA256()))


def reissued(name: str, public: jws.VerifyingKey, not_before: datetime.datetime) -> str:
    """A certificate for a public key whose private half the emulator never had (a key saved by
    an older emulator): signed by a throwaway key, so its issuer says so rather than posing as
    self-signed. Verifiers only read the public key from it."""
    signer = jws.generate_ec_key()
    built = _builder(name, public, not_before, FOREVER).issuer_name(_name(REISSUER))
    return _pem(built.sign(signer.key, hashes.SHA256()))
