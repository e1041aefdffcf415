"""Differential test: our Verifier and PyJWT reach the same accept/reject decision on a generated
corpus of valid, forged and out-of-policy tokens. Where we are deliberately stricter (a numeric
claim sent as a string, which PyJWT coerces with int()), the difference is declared, and we are
never more lenient than PyJWT."""

from __future__ import annotations

import hashlib
import hmac
import itertools
import random
import time
from typing import Any

import httpx
import jwt
import pytest

from gcptoken import Verifier
from gcptoken.errors import VerificationError
from gcptoken.jose import compact, jws
from gcptoken.testing import EmulatorClient
from tests.verify.issuers import DROP, Issuer, b64json, issuers

SKEW = {"google": 60, "iap": 30, "firebase": 60, "oidc": 60}
JWKS_PATH = {
    "google": "/oauth2/v3/certs",
    "iap": "/iap/verify/public_key-jwk",
    "firebase": "/service_accounts/v1/jwk/securetoken@system.gserviceaccount.com",
    "oidc": "/oidc/jwks",
}

MISSING = object()


def claim_variants(issuer: Issuer, now: int) -> dict[str, list[Any]]:
    life = issuer.lifetime
    return {
        "aud": [issuer.audience, "https://other.example", [issuer.audience, "x"], ["x"], MISSING, 5],
        "iss": [issuer.issuer, "https://evil.example", "accounts.google.com", MISSING],
        "exp": [now + life, now - life, now + 30.5, now - 20, now + 7200, MISSING, str(now + life), True],
        "iat": [now, now + 3600, now - 10.25, MISSING, str(now)],
    }


SIGNINGS = [
    "valid",
    "other-key",
    "none",
    "hs256-public-pem",
    "other-alg-header",
    "other-alg-issuer",
    "payload-tampered",
    "sig-truncated",
]


def build(signing: str, claims: dict[str, Any], issuer: Issuer, other: Issuer, impostor: jws.SigningKey) -> str:
    key, kid = issuer.key.key, issuer.key.kid
    if signing == "valid":
        return jws.encode(claims, key, kid=kid)
    if signing == "other-key":
        return jws.encode(claims, impostor, kid=kid)
    if signing == "none":
        return f"{b64json({'alg': 'none', 'kid': kid})}.{b64json(claims)}."
    if signing == "hs256-public-pem":
        from cryptography.hazmat.primitives import serialization

        secret = key.key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        signing_input = f"{b64json({'alg': 'HS256', 'kid': kid, 'typ': 'JWT'})}.{b64json(claims)}"
        mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
        return f"{signing_input}.{compact.b64url_encode(mac)}"
    if signing == "other-alg-header":
        _, payload, signature = jws.encode(claims, key, kid=kid).split(".")
        flipped = "RS256" if key.alg == "ES256" else "ES256"
        return f"{b64json({'alg': flipped, 'kid': kid, 'typ': 'JWT'})}.{payload}.{signature}"
    if signing == "other-alg-issuer":
        return jws.encode(claims, other.key.key, kid=other.key.kid)
    if signing == "payload-tampered":
        header, _, signature = jws.encode(claims, key, kid=kid).split(".")
        return f"{header}.{b64json({**claims, 'sub': 'someone-else'})}.{signature}"
    header, payload, signature = jws.encode(claims, key, kid=kid).split(".")
    return f"{header}.{payload}.{signature[:-8]}"


def corpus(issuer: Issuer, other: Issuer, forged: int = 300) -> list[tuple[str, dict[str, Any]]]:
    """Every claim combination validly signed, plus a seeded sample of forged ones."""
    now = int(time.time())
    variants = claim_variants(issuer, now)
    combos = list(itertools.product(SIGNINGS, *variants.values()))
    valid = [combo for combo in combos if combo[0] == "valid"]
    others = [combo for combo in combos if combo[0] != "valid"]
    chosen = valid + random.Random(20261122).sample(others, forged)
    tokens = []
    impostor = jws.generate_ec_key() if issuer.alg == "ES256" else jws.generate_rsa_key()
    base = issuer.claims(auth_time=now - 100, exp=DROP, iat=DROP, iss=DROP, aud=DROP)
    for signing, *values in chosen:
        claims = dict(base)
        for name, value in zip(variants, values, strict=True):
            if value is not MISSING:
                claims[name] = value
        tokens.append((build(signing, claims, issuer, other, impostor), claims))
    return tokens


def pyjwt_accepts(token: str, keys: jwt.PyJWKSet, issuer: Issuer, issuers: list[str]) -> bool:
    try:
        kid = jwt.get_unverified_header(token).get("kid")
        key = next(k for k in keys.keys if k.key_id == kid)
        jwt.decode(
            token,
            key.key,
            algorithms=[issuer.alg],
            audience=issuer.audience,
            issuer=issuers,
            leeway=SKEW[issuer.name],
            options={"require": ["exp", "iat", "iss", "aud"]},
        )
    except (jwt.PyJWTError, StopIteration):
        return False
    return True


def ours_accepts(token: str, verifier: Verifier) -> bool:
    try:
        verifier.verify(token)
    except VerificationError:
        return False
    return True


def declared_stricter(issuer: Issuer, claims: dict[str, Any]) -> bool:
    """Where we refuse by design and PyJWT does not: times must be JSON numbers (RFC 7519
    NumericDate, PyJWT coerces strings with int()), and IAP's assertions live at most 10 minutes."""
    if any(isinstance(claims.get(name), str) for name in ("exp", "iat")):
        return True
    exp, iat = claims.get("exp"), claims.get("iat")
    return issuer.name == "iap" and isinstance(exp, int | float) and isinstance(iat, int | float) and exp - iat > 600


@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")
@pytest.mark.parametrize("preset", ["google", "iap", "firebase", "oidc"])
def test_same_decisions_as_pyjwt(emulator: EmulatorClient, monkeypatch: pytest.MonkeyPatch, preset: str) -> None:
    monkeypatch.setenv("GCPTOKEN_EMULATOR_HOST", emulator.host_port)
    everyone = issuers(emulator)
    issuer = everyone[preset]
    other = everyone["google" if issuer.alg == "ES256" else "iap"]
    keys = jwt.PyJWKSet.from_dict(httpx.get(emulator.url + JWKS_PATH[preset]).json())
    accepted_issuers = ["https://accounts.google.com", "accounts.google.com"] if preset == "google" else [issuer.issuer]
    verifier = issuer.make_verifier()
    accepted = rejected = declared = 0
    disagreements = []
    for token, claims in corpus(issuer, other):
        ours, theirs = ours_accepts(token, verifier), pyjwt_accepts(token, keys, issuer, accepted_issuers)
        if ours == theirs:
            accepted += ours
            rejected += not ours
        elif not ours and theirs and declared_stricter(issuer, claims):
            declared += 1
        else:
            disagreements.append((ours, theirs, compact.parse(token).header, claims))
    assert disagreements == []
    print(f"{preset}: {accepted} accepted, {rejected} rejected, {declared} declared stricter")
    # The corpus must exercise both outcomes, or the comparison proves nothing.
    assert accepted >= 10 and rejected >= 500, (accepted, rejected)
    assert declared > 0
