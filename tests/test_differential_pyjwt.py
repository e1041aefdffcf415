"""Differential test: our Verifier and PyJWT reach the same accept/reject decision on a generated
corpus of valid, forged and out-of-policy tokens. Where we are deliberately stricter (a numeric
claim sent as a string, which PyJWT coerces with int()), the difference is declared, and we are
never more lenient than PyJWT."""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import random
import time
from typing import Any

import httpx
import jwt
import pytest

from gcptoken import Verifier, jws
from gcptoken.errors import VerificationError
from gcptoken.testing import EmulatorClient

AUD = "https://svc-diff.a.run.app"
ISSUERS = ["https://accounts.google.com", "accounts.google.com"]
SKEW = 60

MISSING = object()


def _b64json(value: Any) -> str:
    return jws.b64url_encode(json.dumps(value).encode())


def claim_variants(now: int) -> dict[str, list[Any]]:
    return {
        "aud": [AUD, "https://other.example", [AUD, "x"], ["x"], MISSING, 5],
        "iss": ["https://accounts.google.com", "accounts.google.com", "https://evil.example", MISSING],
        "exp": [now + 3600, now - 3600, now + 30.5, now - 30, MISSING, str(now + 3600), True],
        "iat": [now, now + 3600, now - 100.25, MISSING, str(now)],
    }


SIGNINGS = [
    "valid",
    "other-key",
    "none",
    "hs256-public-pem",
    "rs512-header",
    "payload-tampered",
    "sig-truncated",
]


def build(signing: str, claims: dict[str, Any], key: Any, impostor: jws.SigningKey) -> str:
    kid = key.kid
    if signing == "valid":
        return jws.encode(claims, key.key, kid=kid)
    if signing == "other-key":
        return jws.encode(claims, impostor, kid=kid)
    if signing == "none":
        return f"{_b64json({'alg': 'none', 'kid': kid})}.{_b64json(claims)}."
    if signing == "hs256-public-pem":
        from cryptography.hazmat.primitives import serialization

        secret = key.key.key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        signing_input = f"{_b64json({'alg': 'HS256', 'kid': kid, 'typ': 'JWT'})}.{_b64json(claims)}"
        return f"{signing_input}.{jws.b64url_encode(hmac.new(secret, signing_input.encode(), hashlib.sha256).digest())}"
    if signing == "rs512-header":
        header, payload, signature = jws.encode(claims, key.key, kid=kid).split(".")
        return f"{_b64json({'alg': 'RS512', 'kid': kid, 'typ': 'JWT'})}.{payload}.{signature}"
    if signing == "payload-tampered":
        header, _, signature = jws.encode(claims, key.key, kid=kid).split(".")
        return f"{header}.{_b64json({**claims, 'sub': 'someone-else'})}.{signature}"
    header, payload, signature = jws.encode(claims, key.key, kid=kid).split(".")
    return f"{header}.{payload}.{signature[:-8]}"


def corpus(emulator: EmulatorClient, forged: int = 400) -> list[tuple[str, dict[str, Any]]]:
    """Every claim combination validly signed, plus a seeded sample of forged ones."""
    now = int(time.time())
    key = emulator.state.current_key
    impostor = jws.generate_rsa_key()
    variants = claim_variants(now)
    combos = list(itertools.product(SIGNINGS, *variants.values()))
    valid = [combo for combo in combos if combo[0] == "valid"]
    others = [combo for combo in combos if combo[0] != "valid"]
    chosen = valid + random.Random(20261121).sample(others, forged)
    tokens = []
    for signing, *values in chosen:
        claims = {"sub": "1" * 21}
        for name, value in zip(variants, values, strict=True):
            if value is not MISSING:
                claims[name] = value
        tokens.append((build(signing, claims, key, impostor), claims))
    return tokens


def pyjwt_accepts(token: str, keys: jwt.PyJWKSet) -> bool:
    try:
        kid = jwt.get_unverified_header(token).get("kid")
        key = next(k for k in keys.keys if k.key_id == kid)
        jwt.decode(
            token,
            key.key,
            algorithms=["RS256"],
            audience=AUD,
            issuer=ISSUERS,
            leeway=SKEW,
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


def declared_stricter(claims: dict[str, Any]) -> bool:
    """Where we refuse by design and PyJWT does not: times must be JSON numbers (RFC 7519 NumericDate)."""
    return any(isinstance(claims.get(name), str) for name in ("exp", "iat"))


@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")
def test_same_decisions_as_pyjwt(emulator: EmulatorClient, certs_url: str) -> None:
    document = httpx.get(certs_url).json()
    keys = jwt.PyJWKSet.from_dict(document)
    verifier = Verifier(AUD, certs=document, issuers=ISSUERS, clock_skew=SKEW)
    accepted = rejected = declared = 0
    disagreements = []
    for token, claims in corpus(emulator):
        ours, theirs = ours_accepts(token, verifier), pyjwt_accepts(token, keys)
        if ours == theirs:
            accepted += ours
            rejected += not ours
        elif not ours and theirs and declared_stricter(claims):
            declared += 1
        else:
            disagreements.append((ours, theirs, jws.parse(token).header, claims))
    assert disagreements == []
    # The corpus must exercise both outcomes, or the comparison proves nothing.
    assert accepted >= 20 and rejected >= 800, (accepted, rejected)
    assert declared > 0
