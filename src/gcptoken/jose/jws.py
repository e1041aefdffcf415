"""Compact JWS (RS256, ES256) directly on ``cryptography``.

The algorithm always comes from the trusted key: an RSA key verifies RS256 only, a P-256 key
ES256 only. The token header's ``alg`` must match it; it never chooses how to verify. Parsed keys
are cached because parsing costs more than the RSA operation itself.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature

from gcptoken.errors import CredentialsError
from gcptoken.jose.compact import b64url_decode, b64url_encode, json_dumps

__all__ = [
    "JwsSigner",
    "SigningKey",
    "VerifyingKey",
    "encode",
    "generate_ec_key",
    "generate_rsa_key",
    "load_private_key_pem",
    "public_key_from_jwk",
    "public_key_from_pem",
    "verifying_key_for",
]

_PKCS1 = padding.PKCS1v15()
_SHA256 = hashes.SHA256()


@functools.cache
def _ecdsa_sha256() -> ec.ECDSA:
    """Made on first use: ECDSA's constructor imports cryptography's OpenSSL backend and with it
    every cipher, ~15 ms that RSA signing and verification never need."""
    return ec.ECDSA(hashes.SHA256())


PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey
PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


def _alg_of(key: PublicKey | PrivateKey) -> str:
    if isinstance(key, rsa.RSAPublicKey | rsa.RSAPrivateKey):
        return "RS256"
    if isinstance(key.curve, ec.SECP256R1):
        return "ES256"
    raise CredentialsError(f"unsupported elliptic curve {key.curve.name}; only P-256 (ES256) is supported")


@dataclass(frozen=True, eq=False)
class VerifyingKey:
    """A parsed public key and the one algorithm it verifies."""

    key: PublicKey
    alg: str
    # Decided once per key, not per token: an isinstance() against cryptography's ABCs costs
    # about 1 % of a verification.
    _rsa: rsa.RSAPublicKey | None = field(init=False, repr=False, default=None)

    def __post_init__(self) -> None:
        if isinstance(self.key, rsa.RSAPublicKey):
            object.__setattr__(self, "_rsa", self.key)

    def verify(self, signing_input: bytes, signature: bytes) -> bool:
        try:
            if self._rsa is not None:
                self._rsa.verify(signature, signing_input, _PKCS1, _SHA256)
                return True
            key = self.key
            assert isinstance(key, ec.EllipticCurvePublicKey)
            if len(signature) != 64:
                return False
            der = encode_dss_signature(int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big"))
            key.verify(der, signing_input, _ecdsa_sha256())
        except InvalidSignature:
            return False
        return True

    def to_jwk(self, kid: str) -> dict[str, str]:
        if isinstance(self.key, rsa.RSAPublicKey):
            numbers = self.key.public_numbers()
            return {
                "kty": "RSA",
                "alg": "RS256",
                "use": "sig",
                "kid": kid,
                "n": b64url_encode(_int_bytes(numbers.n)),
                "e": b64url_encode(_int_bytes(numbers.e)),
            }
        point = self.key.public_numbers()
        return {
            "kty": "EC",
            "alg": "ES256",
            "use": "sig",
            "kid": kid,
            "crv": "P-256",
            "x": b64url_encode(point.x.to_bytes(32, "big")),
            "y": b64url_encode(point.y.to_bytes(32, "big")),
        }


class JwsSigner(Protocol):
    """Whatever signs a JWS: a parsed key here, or a key in hardware (gcptoken.keys)."""

    @property
    def alg(self) -> str: ...

    def sign(self, signing_input: bytes) -> bytes: ...


@dataclass(frozen=True, eq=False)
class SigningKey:
    """A parsed private key, its algorithm and its public half."""

    key: PrivateKey
    alg: str

    def sign(self, signing_input: bytes) -> bytes:
        if isinstance(self.key, rsa.RSAPrivateKey):
            return self.key.sign(signing_input, _PKCS1, _SHA256)
        r, s = decode_dss_signature(self.key.sign(signing_input, _ecdsa_sha256()))
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")

    @functools.cached_property
    def public(self) -> VerifyingKey:
        return VerifyingKey(self.key.public_key(), self.alg)

    def private_pem(self) -> str:
        from cryptography.hazmat.primitives import serialization

        return self.key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode("ascii")


def _int_bytes(value: int) -> bytes:
    return value.to_bytes((value.bit_length() + 7) // 8 or 1, "big")


def generate_rsa_key(bits: int = 2048) -> SigningKey:
    return SigningKey(rsa.generate_private_key(public_exponent=65537, key_size=bits), "RS256")


def generate_ec_key() -> SigningKey:
    """A P-256 key, for ES256."""
    return SigningKey(ec.generate_private_key(ec.SECP256R1()), "ES256")


def _pem_private_key_loader() -> Callable[..., object]:
    """cryptography's PEM private-key loader: the very function ``serialization.load_pem_private_key``
    names (since cryptography 42), taken where it lives, because importing the serialization package
    (its SSH module pulls in every cipher) is ~35 ms of a one-shot CLI run that signs once. That
    module is cryptography's private one: should it move, the public function serves, only slower."""
    try:
        from cryptography.hazmat.bindings._rust import openssl as rust_openssl

        loader: Callable[..., object] = rust_openssl.keys.load_pem_private_key
    except (ImportError, AttributeError):  # pragma: no cover - a cryptography that moved it
        from cryptography.hazmat.primitives import serialization

        loader = serialization.load_pem_private_key
    return loader


@functools.lru_cache(maxsize=128)
def load_private_key_pem(pem: str) -> SigningKey:
    """Parse a PEM private key once; later calls with the same text are free."""
    try:
        # cryptography's RSA consistency check (~55 ms) guards against inconsistent keys, whose faulty
        # signatures could leak their factors; a key we sign with is the caller's own, and whoever
        # could tamper with the file could read it.
        key = _pem_private_key_loader()(pem.encode("utf-8"), password=None, unsafe_skip_rsa_key_validation=True)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise CredentialsError("private_key is not a readable unencrypted PEM private key") from exc
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise CredentialsError("private_key must be an RSA or P-256 EC key")
    return SigningKey(key, _alg_of(key))


# NIST SP 800-131A: RSA below 2048 bits no longer verifies signatures anyone should trust.
MIN_RSA_BITS = 2048


def verifying_key_for(key: PublicKey) -> VerifyingKey:
    """The key and its algorithm; weak keys (RSA under 2048 bits, curves other than P-256) are
    refused, so a key set that publishes one cannot be used to forge with it."""
    if isinstance(key, rsa.RSAPublicKey) and key.key_size < MIN_RSA_BITS:
        raise CredentialsError(f"RSA key of {key.key_size} bits is too weak (at least {MIN_RSA_BITS})")
    return VerifyingKey(key, _alg_of(key))


@functools.lru_cache(maxsize=256)
def public_key_from_pem(pem: str) -> VerifyingKey:
    """A public key from an x509 certificate PEM (Google's v1 certs) or a public key PEM."""
    data = pem.encode("utf-8")
    key: object
    try:
        if b"-----BEGIN CERTIFICATE-----" in data:
            from cryptography import x509  # ~100 ms to import: only for certificates, never to sign

            key = x509.load_pem_x509_certificate(data).public_key()
        else:
            from cryptography.hazmat.primitives import serialization

            key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise CredentialsError("not a PEM certificate or public key") from exc
    if not isinstance(key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey):
        raise CredentialsError("only RSA and P-256 EC public keys are supported")
    return verifying_key_for(key)


def public_key_from_jwk(jwk: Mapping[str, Any]) -> VerifyingKey:
    """A public key from a JWK. A JWK whose ``alg`` disagrees with its key type is refused."""
    try:
        kty = jwk["kty"]
        if kty == "RSA":
            n = int.from_bytes(b64url_decode(jwk["n"]), "big")
            e = int.from_bytes(b64url_decode(jwk["e"]), "big")
            key: PublicKey = rsa.RSAPublicNumbers(e, n).public_key()
        elif kty == "EC":
            if jwk.get("crv") != "P-256":
                raise CredentialsError(f"unsupported JWK curve {jwk.get('crv')!r}; only P-256")
            x = int.from_bytes(b64url_decode(jwk["x"]), "big")
            y = int.from_bytes(b64url_decode(jwk["y"]), "big")
            key = ec.EllipticCurvePublicNumbers(x, y, ec.SECP256R1()).public_key()
        else:
            raise CredentialsError(f"unsupported JWK key type {kty!r}")
    except (KeyError, TypeError, ValueError) as exc:
        raise CredentialsError("malformed JWK") from exc
    verifying = verifying_key_for(key)
    declared = jwk.get("alg")
    if declared is not None and declared != verifying.alg:
        raise CredentialsError(f"JWK alg {declared!r} does not match its {kty} key")
    return verifying


@functools.lru_cache(maxsize=256)
def _header_segment(alg: str, kid: str | None, typ: str) -> str:
    """Encoded once per key: every token a key signs shares its header."""
    header: dict[str, str] = {"alg": alg}
    if kid is not None:
        header["kid"] = kid
    header["typ"] = typ
    return b64url_encode(json_dumps(header))


def encode(claims: Mapping[str, Any], key: JwsSigner, *, kid: str | None = None, typ: str = "JWT") -> str:
    """Sign ``claims`` as a compact JWS; the header's alg is the key's."""
    signing_input = _header_segment(key.alg, kid, typ) + "." + b64url_encode(json_dumps(dict(claims)))
    return signing_input + "." + b64url_encode(key.sign(signing_input.encode("ascii")))
