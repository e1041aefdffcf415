"""Hostile tokens: every JSON type in every header and claim field, ``crit``, non-canonical base64url
and weak keys get a VerificationError with the fitting reason, from every preset and every policy
rule, and a 401 from every server integration; never a TypeError, never a 500."""

from __future__ import annotations

import base64
import json
import logging
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from gcptoken import Verifier
from gcptoken.errors import VerificationError
from gcptoken.jose import compact, jws
from gcptoken.testing import EmulatorClient
from gcptoken.verify.policy import Policy
from gcptoken.verify.verifier import REASONS
from tests.integrations.test_middleware import SERVERS, description_of, serving
from tests.verify.issuers import NOW, Issuer, b64json, issuers

PRESETS = ("google", "iap", "firebase", "oidc")
# Values of every JSON type but the one each field must have.
NOT_A_STRING: list[Any] = [None, True, False, 0, -1, 1.5, 10**30, [], ["x"], {}, {"a": 1}]
NOT_A_NUMBER: list[Any] = [None, True, "1800000000", "", [], [NOW], {}, {"a": 1}]
NOT_A_BOOLEAN: list[Any] = [None, "true", 1, 0, [], {}, [True]]
# Rules every policy check runs (the claim values of a valid token pass them all).
STRICT = Policy(
    require_email_verified=True,
    emails=["someone@example.com"],
    hosted_domains=["example.com"],
    subjects=["110169484474386276334"],
    max_age=3600,
)

HEADER_CASES: list[tuple[str, list[Any], str]] = [
    ("alg", NOT_A_STRING, "algorithm"),
    ("kid", NOT_A_STRING, "unknown_kid"),
    ("typ", [v for v in NOT_A_STRING if v is not None], "malformed"),
]
CLAIM_CASES: list[tuple[str, list[Any], str | dict[str, str]]] = [
    ("iss", NOT_A_STRING, "issuer"),
    ("aud", [v for v in NOT_A_STRING if v != ["x"]] + [[1, {}], [None]], "audience"),
    ("exp", NOT_A_NUMBER, "invalid_claim"),
    ("iat", NOT_A_NUMBER, "invalid_claim"),
    ("nbf", [v for v in NOT_A_NUMBER if v is not None], "not_yet_valid"),
    ("sub", NOT_A_STRING, {"firebase": "invalid_claim", "*": "subject_not_allowed"}),
    ("email", NOT_A_STRING, "email_not_allowed"),
    ("hd", NOT_A_STRING, "hosted_domain_not_allowed"),
    ("email_verified", NOT_A_BOOLEAN, "email_not_verified"),
    ("auth_time", NOT_A_NUMBER, {"firebase": "invalid_claim", "*": ""}),
]


@pytest.fixture
def everyone(emulator: EmulatorClient, monkeypatch: pytest.MonkeyPatch) -> dict[str, Issuer]:
    monkeypatch.setenv("GCPTOKEN_EMULATOR_HOST", emulator.host_port)
    return issuers(emulator)


def _signed(issuer: Issuer, header: dict[str, Any], claims: dict[str, Any]) -> str:
    signing_input = f"{b64json(header)}.{b64json(claims)}"
    return f"{signing_input}.{compact.b64url_encode(issuer.key.key.sign(signing_input.encode()))}"


def _header(issuer: Issuer, **changes: Any) -> dict[str, Any]:
    return {"alg": issuer.alg, "kid": issuer.key.kid, "typ": "JWT", **changes}


def _claims(issuer: Issuer, **changes: Any) -> dict[str, Any]:
    return issuer.claims(**{"hd": "example.com", **changes})


def _refused(verifier: Verifier, token: str) -> VerificationError:
    for _ in range(2):  # the second time through the header and result caches
        with pytest.raises(VerificationError) as caught:
            verifier.verify(token, now=NOW)
        assert caught.value.reason in REASONS
    return caught.value


@pytest.mark.parametrize("preset", PRESETS)
def test_a_valid_token_passes_the_strict_policy(everyone: dict[str, Issuer], preset: str) -> None:
    """The tables below would pass vacuously if the unchanged token failed the same checks."""
    issuer = everyone[preset]
    token = _signed(issuer, _header(issuer), _claims(issuer))
    assert issuer.make_verifier(policy=STRICT).verify(token, now=NOW)["iss"] == issuer.issuer


@pytest.mark.parametrize("preset", PRESETS)
@pytest.mark.parametrize(("field", "values", "reason"), HEADER_CASES, ids=[c[0] for c in HEADER_CASES])
def test_every_wrong_json_type_in_the_header(
    everyone: dict[str, Issuer], preset: str, field: str, values: list[Any], reason: str
) -> None:
    issuer = everyone[preset]
    verifier = issuer.make_verifier(policy=STRICT)
    for value in values:
        error = _refused(verifier, _signed(issuer, _header(issuer, **{field: value}), _claims(issuer)))
        assert error.reason == reason, (field, value, error)


@pytest.mark.parametrize("preset", PRESETS)
@pytest.mark.parametrize(("field", "values", "reason"), CLAIM_CASES, ids=[c[0] for c in CLAIM_CASES])
def test_every_wrong_json_type_in_the_claims(
    everyone: dict[str, Issuer], preset: str, field: str, values: list[Any], reason: str | dict[str, str]
) -> None:
    issuer = everyone[preset]
    want = reason if isinstance(reason, str) else reason.get(preset, reason["*"])
    verifier = issuer.make_verifier(policy=STRICT)
    for value in values:
        token = _signed(issuer, _header(issuer), _claims(issuer, **{field: value}))
        if not want:  # not this issuer's claim: ignored
            assert verifier.verify(token, now=NOW)["iss"] == issuer.issuer
            continue
        error = _refused(verifier, token)
        assert error.reason == want, (field, value, error)
        assert "Traceback" not in str(error) and "\n" not in str(error)


@pytest.mark.parametrize("preset", PRESETS)
def test_crit_is_refused(everyone: dict[str, Issuer], preset: str) -> None:
    issuer = everyone[preset]
    for crit in (["exp"], [], "b64", None):
        token = _signed(issuer, _header(issuer, crit=crit), _claims(issuer))
        assert _refused(issuer.make_verifier(), token).reason == "malformed"


def _non_canonical(segment: str) -> str:
    """The same bytes, spelled with non-zero trailing bits in the last character."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    assert len(segment) % 4 in (2, 3), "the segment has no spare bits"
    return segment[:-1] + alphabet[alphabet.index(segment[-1]) + 1]


def _with_spare_bits(issuer: Issuer) -> tuple[dict[str, Any], dict[str, Any]]:
    """A header and claims whose base64url segments both end in a partial group."""
    header, claims = _header(issuer), _claims(issuer)
    while len(b64json(header)) % 4 not in (2, 3):
        header["x"] = header.get("x", "") + "a"
    while len(b64json(claims)) % 4 not in (2, 3):
        claims["x"] = claims.get("x", "") + "a"
    return header, claims


@pytest.mark.parametrize("preset", PRESETS)
def test_only_the_canonical_base64url_spelling_is_accepted(everyone: dict[str, Issuer], preset: str) -> None:
    issuer = everyone[preset]
    verifier = issuer.make_verifier()
    header, claims = _with_spare_bits(issuer)
    token = _signed(issuer, header, claims)
    assert verifier.verify(token, now=NOW)["iss"] == issuer.issuer
    parts = token.split(".")
    lax = base64.urlsafe_b64decode  # a decoder that drops the trailing bits, as most do
    assert lax(_non_canonical(parts[2]) + "==") == lax(parts[2] + "==")  # really the same bytes
    for index in range(3):
        respelled = list(parts)
        respelled[index] = _non_canonical(parts[index])
        assert _refused(issuer.make_verifier(), ".".join(respelled)).reason == "malformed", index
    standard_alphabet = parts[2].replace("-", "+").replace("_", "/")
    for other in (parts[2] + "=", parts[2] + "==", standard_alphabet):
        if other != parts[2]:
            assert _refused(verifier, f"{parts[0]}.{parts[1]}.{other}").reason == "malformed"


def test_weak_keys_in_a_key_set_are_skipped_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    weak = jws.SigningKey(rsa.generate_private_key(public_exponent=65537, key_size=1024), "RS256")
    p384 = ec.generate_private_key(ec.SECP384R1())
    strong = jws.generate_rsa_key()
    numbers = p384.public_key().public_numbers()
    p384_jwk = {
        "kty": "EC",
        "crv": "P-384",
        "kid": "p384",
        "use": "sig",
        "x": compact.b64url_encode(numbers.x.to_bytes(48, "big")),
        "y": compact.b64url_encode(numbers.y.to_bytes(48, "big")),
    }
    weak_jwk = {
        "kty": "RSA",
        "kid": "weak",
        "use": "sig",
        "n": compact.b64url_encode(_modulus(weak).to_bytes(128, "big")),
        "e": "AQAB",
    }
    keys = {"keys": [weak_jwk, p384_jwk, strong.public.to_jwk("strong")]}
    with caplog.at_level(logging.WARNING, logger="gcptoken.verify.verifier"):
        verifier = Verifier("aud", certs=keys)
    assert "weak" in caplog.text and "1024 bits" in caplog.text and "p384" in caplog.text
    claims = {"iss": "https://accounts.google.com", "aud": "aud", "iat": NOW, "exp": NOW + 3600}
    assert verifier.verify(jws.encode(claims, strong, kid="strong"), now=NOW)["aud"] == "aud"
    with pytest.raises(VerificationError) as caught:
        verifier.verify(jws.encode(claims, weak, kid="weak"), now=NOW)
    assert caught.value.reason == "unknown_kid"
    pem_set = {"weak": _public_pem(weak), "ok": _public_pem(strong)}
    with pytest.raises(VerificationError, match="no published key"):
        Verifier("aud", certs=pem_set).verify(jws.encode(claims, weak, kid="weak"), now=NOW)


def _modulus(key: jws.SigningKey) -> int:
    assert isinstance(key.key, rsa.RSAPrivateKey)
    return key.key.public_key().public_numbers().n


def _public_pem(key: jws.SigningKey) -> str:
    from cryptography.hazmat.primitives import serialization

    return (
        key.key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


# -- the same tokens at the door of a real service --------------------------------------------------


def _hostile_tokens(issuer: Issuer) -> list[str]:
    import time

    now = int(time.time())
    live = {"iat": now, "exp": now + issuer.lifetime}
    tokens = [_signed(issuer, _header(issuer, crit=["exp"]), _claims(issuer, **live))]
    for field, values, _ in HEADER_CASES:
        tokens += [_signed(issuer, _header(issuer, **{field: v}), _claims(issuer, **live)) for v in values[:6]]
    for field, values, _ in CLAIM_CASES[:5]:
        tokens += [_signed(issuer, _header(issuer), {**_claims(issuer, **live), field: v}) for v in values[:6]]
    header, claims = _with_spare_bits(issuer)
    parts = _signed(issuer, header, {**claims, **live}).split(".")
    tokens.append(f"{parts[0]}.{parts[1]}.{_non_canonical(parts[2])}")
    return tokens


@pytest.mark.parametrize("kind", SERVERS)
def test_every_integration_answers_401_to_hostile_tokens(everyone: dict[str, Issuer], kind: str) -> None:
    google = everyone["google"]
    with serving(kind, google.make_verifier(policy=STRICT)) as url, httpx.Client() as client:
        for token in _hostile_tokens(google):
            response = client.get(f"{url}/whoami", headers={"Authorization": f"Bearer {token}"})
            assert response.status_code == 401, (token, response.text)
            description_of(response)


def test_websocket_refuses_hostile_tokens(everyone: dict[str, Issuer]) -> None:
    google = everyone["google"]
    with serving("asgi-middleware", google.make_verifier(policy=STRICT)) as url:
        for token in _hostile_tokens(google)[:12]:
            with pytest.raises(InvalidStatus) as refused:
                connect(f"{url.replace('http', 'ws')}/ws", additional_headers={"Authorization": f"Bearer {token}"})
            assert refused.value.response.status_code == 403


# -- any JSON value anywhere ---------------------------------------------------------------------------

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3),
    max_leaves=8,
)
HEADER_FIELDS = ["alg", "kid", "typ", "crit"]
CLAIM_FIELDS = ["iss", "aud", "sub", "exp", "iat", "nbf", "email", "hd", "email_verified", "auth_time", "azp"]
FIELDS = HEADER_FIELDS + CLAIM_FIELDS


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(preset=st.sampled_from(PRESETS), changes=st.dictionaries(st.sampled_from(FIELDS), JSON, min_size=1, max_size=4))
def test_any_json_value_in_any_field_gives_claims_or_a_verification_error(
    everyone: dict[str, Issuer], preset: str, changes: dict[str, Any]
) -> None:
    issuer = everyone[preset]
    header, claims = _header(issuer), _claims(issuer)
    for field, value in changes.items():
        (header if field in HEADER_FIELDS else claims)[field] = value
    token = _signed(issuer, header, claims)
    for verifier in (issuer.make_verifier(), issuer.make_verifier(policy=STRICT)):
        reason = None
        try:
            result = verifier.verify(token, now=NOW)
        except VerificationError as error:  # the only exception that may ever escape
            reason = error.reason
        else:
            assert isinstance(result, dict) and json.dumps(result)
        assert reason is None or reason in REASONS
