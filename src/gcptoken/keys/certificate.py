"""A self-signed X.509 certificate for a key in hardware, signed in the device: the form
``gcloud iam service-accounts keys upload`` takes (an X.509 v3 certificate of an RSA key).

cryptography's builder signs only with a key it holds, so the certificate is built with a
throwaway key, and its to-be-signed part (which names the hardware key's public half) is signed
again by the device: the throwaway signature is dropped."""

from __future__ import annotations

import datetime

from gcptoken.errors import HardwareKeyError, InvalidArgumentError
from gcptoken.keys.hardware import HardwareKey

__all__ = ["MAX_DAYS", "self_signed_certificate"]

MAX_DAYS = 36500  # a hundred years; Google's own keys are valid until 9999, uploaded ones until the cert says
# sha256WithRSAEncryption (RFC 4055 §5), the only signature the device makes here: DER, NULL parameters.
_SHA256_WITH_RSA = bytes.fromhex("300d06092a864886f70d01010b0500")


def _der(tag: int, content: bytes) -> bytes:
    size = len(content)
    if size < 0x80:
        return bytes([tag, size]) + content
    length = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(length)]) + length + content


def self_signed_certificate(key: HardwareKey, common_name: str, days: int = 3650) -> str:
    """The PEM certificate of ``key``'s public half, subject = issuer = CN ``common_name``,
    valid from a minute ago for ``days`` days, signed by ``key`` in its device."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding, rsa
    from cryptography.x509.oid import NameOID

    if not 1 <= days <= MAX_DAYS:
        raise InvalidArgumentError(f"a certificate is valid 1 to {MAX_DAYS} days")
    if not common_name.strip() or len(common_name) > 64 or not common_name.isprintable():
        raise InvalidArgumentError("the certificate's common name must be 1 to 64 printable characters")
    public = serialization.load_der_public_key(key.public_key_der())
    if not isinstance(public, rsa.RSAPublicKey):
        raise HardwareKeyError("the key is not an RSA key (Google's service-account keys are RSA)")
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False, False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
    )
    # Its signature is thrown away (the device signs the same bytes): a small key is made faster.
    throwaway = rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505
    to_be_signed = builder.sign(throwaway, hashes.SHA256()).tbs_certificate_bytes
    signature = key.sign(to_be_signed)
    der = _der(0x30, to_be_signed + _SHA256_WITH_RSA + _der(0x03, b"\x00" + signature))
    certificate = x509.load_der_x509_certificate(der)
    try:  # the device signed with the key it named: check before anyone uploads it
        public.verify(signature, to_be_signed, padding.PKCS1v15(), hashes.SHA256())
    except Exception as exc:  # cryptography's InvalidSignature
        raise HardwareKeyError("the device's signature does not verify with its own public key") from exc
    return certificate.public_bytes(serialization.Encoding.PEM).decode("ascii")
