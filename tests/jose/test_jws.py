"""The JWS core: signing, verifying, key loading, and the algorithm coming from the key only."""

from __future__ import annotations

import base64
import json

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from gcptoken.emulator.state.models import IssuerKey
from gcptoken.errors import CredentialsError, VerificationError
from gcptoken.jose import compact, jws

RSA = jws.generate_rsa_key()
EC = jws.SigningKey(ec.generate_private_key(ec.SECP256R1()), "ES256")


def _pem_public(key: jws.SigningKey) -> str:
    return (
        key.key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def _certificate(key: jws.SigningKey) -> str:
    return IssuerKey.create(key).certificate_pem


@pytest.mark.parametrize("key", [RSA, EC], ids=["RS256", "ES256"])
def test_round_trip(key: jws.SigningKey) -> None:
    token = jws.encode({"sub": "x", "n": 1}, key, kid="k1")
    parsed = compact.parse(token)
    assert parsed.header == {"alg": key.alg, "kid": "k1", "typ": "JWT"}
    assert parsed.claims == {"sub": "x", "n": 1}
    parsed.verify_with(key.public)


@pytest.mark.parametrize(
    ("loader", "expected_alg"),
    [
        (lambda: jws.public_key_from_pem(_pem_public(RSA)), "RS256"),
        (lambda: jws.public_key_from_pem(_certificate(RSA)), "RS256"),
        (lambda: jws.public_key_from_pem(_pem_public(EC)), "ES256"),
        (lambda: jws.public_key_from_pem(_certificate(EC)), "ES256"),
        (lambda: jws.public_key_from_jwk(RSA.public.to_jwk("a")), "RS256"),
        (lambda: jws.public_key_from_jwk(EC.public.to_jwk("b")), "ES256"),
    ],
    ids=["rsa-pem", "rsa-x509", "ec-pem", "ec-x509", "rsa-jwk", "ec-jwk"],
)
def test_every_key_format_verifies_its_own_algorithm(loader: object, expected_alg: str) -> None:
    key = loader()  # type: ignore[operator]
    assert key.alg == expected_alg
    signer = RSA if expected_alg == "RS256" else EC
    compact.parse(jws.encode({"a": 1}, signer)).verify_with(key)


def test_ec_key_refuses_an_rs256_token_and_vice_versa() -> None:
    with pytest.raises(VerificationError) as caught:
        compact.parse(jws.encode({"a": 1}, RSA)).verify_with(EC.public)
    assert caught.value.reason == "algorithm"
    with pytest.raises(VerificationError) as caught:
        compact.parse(jws.encode({"a": 1}, EC)).verify_with(RSA.public)
    assert caught.value.reason == "algorithm"


@pytest.mark.parametrize("alg", ["none", "HS256", "RS512", "PS256", "ES256", "rs256", None])
def test_header_alg_other_than_the_keys_is_refused(alg: str | None) -> None:
    token = jws.encode({"a": 1}, RSA)
    _, payload, signature = token.split(".")
    header = {"typ": "JWT"} if alg is None else {"alg": alg, "typ": "JWT"}
    forged = compact.b64url_encode(json.dumps(header).encode()) + "." + payload + "." + signature
    with pytest.raises(VerificationError) as caught:
        compact.parse(forged).verify_with(RSA.public)
    assert caught.value.reason == "algorithm"


def test_tampered_payload_fails_the_signature() -> None:
    header, _, signature = jws.encode({"admin": False}, RSA).split(".")
    payload = compact.b64url_encode(json.dumps({"admin": True}).encode())
    forged = f"{header}.{payload}.{signature}"
    with pytest.raises(VerificationError) as caught:
        compact.parse(forged).verify_with(RSA.public)
    assert caught.value.reason == "signature"


def test_es256_signature_of_wrong_length_is_refused_not_crashing() -> None:
    header, payload, signature = jws.encode({"a": 1}, EC).split(".")
    short = compact.b64url_encode(compact.b64url_decode(signature)[:63])
    with pytest.raises(VerificationError) as caught:
        compact.parse(f"{header}.{payload}.{short}").verify_with(EC.public)
    assert caught.value.reason == "signature"


@pytest.mark.parametrize("text", ["a+b", "a/b", "ab==", "a b", "é", "abcde"])
def test_b64url_decoding_is_strict(text: str) -> None:
    with pytest.raises(ValueError, match="base64url"):
        compact.b64url_decode(text)


def test_b64url_round_trip() -> None:
    for size in range(0, 40):
        data = bytes(range(size))
        encoded = compact.b64url_encode(data)
        assert "=" not in encoded
        assert compact.b64url_decode(encoded) == data
        assert base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)) == data


def test_private_keys_are_parsed_once() -> None:
    pem = RSA.private_pem()
    jws.load_private_key_pem.cache_clear()
    first = jws.load_private_key_pem(pem)
    assert jws.load_private_key_pem(pem) is first
    assert jws.load_private_key_pem.cache_info().hits == 1


@pytest.mark.parametrize(
    "pem",
    ["", "not a key", "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"],
    ids=["empty", "text", "broken-pem"],
)
def test_unreadable_private_key_is_a_credentials_error_without_the_key(pem: str) -> None:
    with pytest.raises(CredentialsError) as caught:
        jws.load_private_key_pem(pem)
    assert "AAAA" not in str(caught.value)


def test_unsupported_keys_are_refused() -> None:
    p384 = ec.generate_private_key(ec.SECP384R1())
    with pytest.raises(CredentialsError, match="curve"):
        jws.verifying_key_for(p384.public_key())
    with pytest.raises(CredentialsError, match="key type"):
        jws.public_key_from_jwk({"kty": "oct", "k": "c2VjcmV0"})
    with pytest.raises(CredentialsError, match="does not match"):
        jws.public_key_from_jwk({**RSA.public.to_jwk("a"), "alg": "HS256"})
    with pytest.raises(CredentialsError, match="malformed"):
        jws.public_key_from_jwk({"kty": "RSA", "n": "!!"})


def test_rsa_key_sizes_other_than_2048_still_verify() -> None:
    small = jws.SigningKey(rsa.generate_private_key(public_exponent=65537, key_size=3072), "RS256")
    compact.parse(jws.encode({"a": 1}, small)).verify_with(small.public)


@pytest.mark.parametrize(
    ("token", "fragment"),
    [
        ("", "empty"),
        ("abc", "1 part;"),
        ("a.b", "2 parts"),
        ("a.b.c.d", "4 parts"),
        ("!!.e30.AA", "header"),
        ("e30.!!.AA", "payload"),
        ("e30.e30.!!", "signature"),
        ("W10.e30.AA", "header is not a JSON object"),
        ("e30.bnVsbA.AA", "payload is not a JSON object"),
        ("x" * (compact.MAX_TOKEN_LENGTH + 1), "larger"),
    ],
)
def test_malformed_tokens(token: str, fragment: str) -> None:
    with pytest.raises(VerificationError, match=fragment) as caught:
        compact.parse(token)
    assert caught.value.reason == "malformed"
