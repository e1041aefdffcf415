"""The Verifier: a table of forged and out-of-policy tokens, key rotation, and certs caching."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gcptoken import Verifier, decode
from gcptoken.errors import InvalidArgumentError, TransportError, VerificationError
from gcptoken.jose import compact, jws
from gcptoken.servers.serving import AsgiServer, bind
from gcptoken.testing import EmulatorClient
from gcptoken.verify.verifier import REASONS

AUD = "https://svc-test.a.run.app"
NOW = 1_800_000_000
ISS = "https://accounts.google.com"


def good_claims(**changes: Any) -> dict[str, Any]:
    claims: dict[str, Any] = {
        "aud": AUD,
        "azp": "sa@p.iam.gserviceaccount.com",
        "email": "sa@p.iam.gserviceaccount.com",
        "email_verified": True,
        "exp": NOW + 3600,
        "iat": NOW,
        "iss": ISS,
        "sub": "123456789012345678901",
    }
    for name, value in changes.items():
        if value is DROP:
            claims.pop(name)
        else:
            claims[name] = value
    return claims


DROP = object()


def b64json(value: Any) -> str:
    return compact.b64url_encode(json.dumps(value).encode())


class Forger:
    """Makes tokens with the emulator's real signing key, and forgeries around it."""

    def __init__(self, emulator: EmulatorClient) -> None:
        self.key = emulator.state.current_key

    def sign(self, claims: dict[str, Any] | None = None, **header: Any) -> str:
        head = {"alg": "RS256", "kid": self.key.kid, "typ": "JWT", **header}
        head = {k: v for k, v in head.items() if v is not DROP}
        signing_input = f"{b64json(head)}.{b64json(claims or good_claims())}"
        signature = self.key.key.sign(signing_input.encode())
        return f"{signing_input}.{compact.b64url_encode(signature)}"

    def unsigned(self, alg: str, signature: str = "") -> str:
        return f"{b64json({'alg': alg, 'kid': self.key.kid, 'typ': 'JWT'})}.{b64json(good_claims())}.{signature}"

    def hmac_with_public_key(self, key_material: bytes) -> str:
        signing_input = f"{b64json({'alg': 'HS256', 'kid': self.key.kid, 'typ': 'JWT'})}.{b64json(good_claims())}"
        mac = hmac.new(key_material, signing_input.encode(), hashlib.sha256).digest()
        return f"{signing_input}.{compact.b64url_encode(mac)}"

    def rs512(self) -> str:
        signing_input = f"{b64json({'alg': 'RS512', 'kid': self.key.kid, 'typ': 'JWT'})}.{b64json(good_claims())}"
        private = self.key.key.key
        assert isinstance(private, rsa.RSAPrivateKey)
        signature = private.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA512())
        return f"{signing_input}.{compact.b64url_encode(signature)}"

    def other_key_same_kid(self) -> str:
        impostor = jws.generate_rsa_key()
        return jws.encode(good_claims(), impostor, kid=self.key.kid)

    def public_pem(self) -> bytes:
        return self.key.key.key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )


def tamper(token: str, part: int, replace: Callable[[str], str]) -> str:
    parts = token.split(".")
    parts[part] = replace(parts[part])
    return ".".join(parts)


FORGERIES: list[tuple[str, Callable[[Forger], str], str]] = [
    ("alg none, no signature", lambda f: f.unsigned("none"), "algorithm"),
    ("alg none with a signature", lambda f: f.unsigned("none", "c2ln"), "algorithm"),
    ("alg None spelled differently", lambda f: f.unsigned("nOnE"), "algorithm"),
    ("HS256 keyed with the public PEM", lambda f: f.hmac_with_public_key(f.public_pem()), "algorithm"),
    ("HS256 keyed with the kid", lambda f: f.hmac_with_public_key(f.key.kid.encode()), "algorithm"),
    ("RS512 signed by the real key", lambda f: f.rs512(), "algorithm"),
    ("ES256 header on an RSA kid", lambda f: f.sign(alg="ES256"), "algorithm"),
    ("alg missing", lambda f: f.sign(alg=DROP), "algorithm"),
    ("another key under the same kid", lambda f: f.other_key_same_kid(), "signature"),
    ("payload tampered", lambda f: tamper(f.sign(), 1, lambda _: b64json(good_claims(aud="x"))), "signature"),
    (
        "payload swapped from another token",
        lambda f: tamper(f.sign(), 1, lambda _: f.sign(good_claims(sub="2")).split(".")[1]),
        "signature",
    ),
    (
        "header tampered (typ)",
        lambda f: tamper(f.sign(), 0, lambda _: b64json({"alg": "RS256", "kid": f.key.kid, "typ": "JOSE"})),
        "signature",
    ),
    ("signature truncated", lambda f: tamper(f.sign(), 2, lambda s: s[:-10]), "signature"),
    ("signature empty", lambda f: tamper(f.sign(), 2, lambda _: ""), "signature"),
    (
        "signature bit-flipped",
        lambda f: tamper(f.sign(), 2, lambda s: ("A" if s[5] != "A" else "B").join([s[:5], s[6:]])),
        "signature",
    ),
    ("wrong issuer", lambda f: f.sign(good_claims(iss="https://evil.example")), "issuer"),
    ("issuer with a suffix", lambda f: f.sign(good_claims(iss="https://accounts.google.com.evil")), "issuer"),
    ("issuer missing", lambda f: f.sign(good_claims(iss=DROP)), "issuer"),
    ("wrong audience", lambda f: f.sign(good_claims(aud="https://other.a.run.app")), "audience"),
    ("audience list without ours", lambda f: f.sign(good_claims(aud=["a", "b"])), "audience"),
    ("audience missing", lambda f: f.sign(good_claims(aud=DROP)), "audience"),
    ("audience a number", lambda f: f.sign(good_claims(aud=7)), "audience"),
    ("expired", lambda f: f.sign(good_claims(iat=NOW - 7200, exp=NOW - 3600)), "expired"),
    ("iat in the future", lambda f: f.sign(good_claims(iat=NOW + 600, exp=NOW + 4200)), "issued_in_future"),
    ("nbf in the future", lambda f: f.sign(good_claims(nbf=NOW + 600)), "not_yet_valid"),
    ("exp missing", lambda f: f.sign(good_claims(exp=DROP)), "missing_claim"),
    ("iat missing", lambda f: f.sign(good_claims(iat=DROP)), "missing_claim"),
    ("exp a string", lambda f: f.sign(good_claims(exp=str(NOW + 3600))), "invalid_claim"),
    ("exp a boolean", lambda f: f.sign(good_claims(exp=True)), "invalid_claim"),
    ("iat null", lambda f: f.sign(good_claims(iat=None)), "invalid_claim"),
    ("unknown kid", lambda f: f.sign(kid="0" * 40), "unknown_kid"),
    ("kid missing", lambda f: f.sign(kid=DROP), "unknown_kid"),
    ("kid not a string", lambda f: f.sign(kid=12), "unknown_kid"),
    ("two parts", lambda f: ".".join(f.sign().split(".")[:2]), "malformed"),
    ("four parts", lambda f: f.sign() + ".e30", "malformed"),
    ("bad base64 in header", lambda f: tamper(f.sign(), 0, lambda s: s[:-2] + "*="), "malformed"),
    (
        "header not JSON",
        lambda f: tamper(f.sign(), 0, lambda _: compact.b64url_encode(b"{not json")),
        "malformed",
    ),
    ("payload a JSON array", lambda f: tamper(f.sign(), 1, lambda _: b64json([1, 2])), "malformed"),
    ("empty string", lambda f: "", "malformed"),
    ("huge", lambda f: f.sign(good_claims(pad="x" * 20_000)), "malformed"),
    ("non-ASCII", lambda f: f.sign() + "é", "malformed"),
]


@pytest.fixture
def forger(emulator: EmulatorClient) -> Forger:
    return Forger(emulator)


@pytest.fixture
def verifier(certs_url: str) -> Verifier:
    return Verifier(AUD, certs=certs_url)


def test_the_table_is_large_enough() -> None:
    assert len(FORGERIES) >= 25
    assert len({name for name, _, _ in FORGERIES}) == len(FORGERIES)


@pytest.mark.parametrize(("make", "reason"), [(m, r) for _, m, r in FORGERIES], ids=[n for n, _, _ in FORGERIES])
def test_forged_and_out_of_policy_tokens_are_refused(
    forger: Forger, verifier: Verifier, make: Callable[[Forger], str], reason: str
) -> None:
    token = make(forger)
    with pytest.raises(VerificationError) as caught:
        verifier.verify(token, now=NOW)
    assert caught.value.reason == reason
    assert token[-20:] not in str(caught.value) or not token  # messages never echo the token


@pytest.mark.parametrize(
    "claims",
    [
        good_claims(),
        good_claims(iss="accounts.google.com"),
        good_claims(aud=["x", AUD]),
        good_claims(exp=NOW - 30),  # expired, but within the 60 s clock skew
        good_claims(iat=NOW + 30),  # a little ahead, within skew
        good_claims(exp=NOW + 3600.5, iat=NOW - 0.5),
    ],
    ids=["plain", "bare-issuer", "audience-list", "expired-within-skew", "iat-within-skew", "float-times"],
)
def test_good_tokens_are_accepted(forger: Forger, verifier: Verifier, claims: dict[str, Any]) -> None:
    assert verifier.verify(forger.sign(claims), now=NOW) == claims


def test_emulator_issued_token_verifies_from_v1_and_v3_certs(emulator: EmulatorClient, key_path: Path) -> None:
    from gcptoken import load_credentials

    token = load_credentials(key_path).id_token(AUD).value
    for path in ("/oauth2/v1/certs", "/oauth2/v3/certs"):
        assert Verifier(AUD, certs=emulator.url + path).verify(token)["aud"] == AUD


def test_certs_from_files_in_either_format_and_from_a_mapping(
    emulator: EmulatorClient, forger: Forger, tmp_path: Path
) -> None:
    token = forger.sign()
    for name in ("v1", "v3"):
        document = httpx.get(f"{emulator.url}/oauth2/{name}/certs").json()
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps(document))
        assert Verifier(AUD, certs=path).verify(token, now=NOW)["sub"] == good_claims()["sub"]
        assert Verifier(AUD, certs=document).verify(token, now=NOW)["sub"] == good_claims()["sub"]


def test_issuer_and_clock_skew_are_configurable(forger: Forger, certs_url: str) -> None:
    token = forger.sign(good_claims(iss="https://issuer.example", exp=NOW - 100))
    strict = Verifier(AUD, certs=certs_url, issuers="https://issuer.example", clock_skew=0)
    with pytest.raises(VerificationError, match="expired"):
        strict.verify(token, now=NOW)
    lenient = Verifier(AUD, certs=certs_url, issuers=["https://issuer.example"], clock_skew=120)
    assert lenient.verify(token, now=NOW)["iss"] == "https://issuer.example"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"audience": ""},
        {"audience": []},
        {"audience": "a", "issuers": []},
        {"audience": "a", "clock_skew": -1},
    ],
)
def test_bad_verifier_configuration_is_refused(kwargs: dict[str, Any]) -> None:
    with pytest.raises(InvalidArgumentError):
        Verifier(**kwargs)


class FakeTimer:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def certs_fetches(emulator: EmulatorClient) -> int:
    return len(emulator.requests("/oauth2/v3/certs"))


def test_many_verifications_fetch_certs_once(emulator: EmulatorClient, forger: Forger, certs_url: str) -> None:
    verifier = Verifier(AUD, certs=certs_url)
    before = certs_fetches(emulator)
    for sub in range(200):
        verifier.verify(forger.sign(good_claims(sub=str(sub))), now=NOW)
    assert certs_fetches(emulator) - before == 1


def test_certs_are_refetched_only_after_max_age(emulator: EmulatorClient, forger: Forger, certs_url: str) -> None:
    timer = FakeTimer()
    # No result cache: the same token must reach the keys every time.
    verifier = Verifier(AUD, certs=certs_url, timer=timer, result_cache_size=0)
    token = forger.sign()
    before = certs_fetches(emulator)
    verifier.verify(token, now=NOW)
    timer.now += emulator.state.certs_max_age - 1
    verifier.verify(token, now=NOW)
    assert certs_fetches(emulator) - before == 1
    timer.now += 2
    verifier.verify(token, now=NOW)
    assert certs_fetches(emulator) - before == 2


def test_unknown_kid_refetches_at_most_once_per_interval(
    emulator: EmulatorClient, forger: Forger, certs_url: str
) -> None:
    timer = FakeTimer()
    verifier = Verifier(AUD, certs=certs_url, timer=timer, refetch_interval=30)
    verifier.verify(forger.sign(), now=NOW)
    before = certs_fetches(emulator)
    unknown = forger.sign(kid="f" * 40)
    for _ in range(5):
        with pytest.raises(VerificationError, match="kid"):
            verifier.verify(unknown, now=NOW)
    assert certs_fetches(emulator) == before  # keys were just fetched: no refetch yet
    timer.now += 31
    for _ in range(5):
        with pytest.raises(VerificationError, match="kid"):
            verifier.verify(unknown, now=NOW)
    assert certs_fetches(emulator) - before == 1


def test_rotation_new_key_is_picked_up_and_previous_key_still_verifies(
    emulator: EmulatorClient, certs_url: str
) -> None:
    timer = FakeTimer()
    verifier = Verifier(AUD, certs=certs_url, timer=timer)
    old = Forger(emulator)
    old_token = old.sign()
    verifier.verify(old_token, now=NOW)
    emulator.state.rotate_signing_key(immediate=True)  # signing switches at once: the unknown-kid path
    new_token = Forger(emulator).sign()
    assert Forger(emulator).key.kid != old.key.kid
    timer.now += 31  # past the refetch rate limit
    assert verifier.verify(new_token, now=NOW)["aud"] == AUD
    assert verifier.verify(old_token, now=NOW)["aud"] == AUD  # previous key stays published
    fresh = Verifier(AUD, certs=certs_url)
    assert fresh.verify(old_token, now=NOW)["aud"] == AUD


class FlakyCerts:
    """A certs endpoint that serves the emulator's JWKS until told to fail."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document
        self.failing = False
        self.hits = 0
        self.lock = threading.Lock()

    async def certs(self, request: Request) -> Response:
        with self.lock:
            self.hits += 1
        if self.failing:
            return JSONResponse({"error": "unavailable"}, status_code=503)
        return JSONResponse(self.document, headers={"Cache-Control": "public, max-age=60"})


def test_a_failed_refresh_keeps_the_cached_keys(emulator: EmulatorClient, forger: Forger) -> None:
    flaky = FlakyCerts(httpx.get(f"{emulator.url}/oauth2/v3/certs").json())
    with AsgiServer(Starlette(routes=[Route("/certs", flaky.certs)]), bind("127.0.0.1", 0)) as server:
        timer = FakeTimer()
        verifier = Verifier(AUD, certs=f"{server.url}/certs", timer=timer, result_cache_size=0)
        token = forger.sign()
        verifier.verify(token, now=NOW)
        flaky.failing = True
        timer.now += 61  # cached keys are stale now; the refresh fails
        assert verifier.verify(token, now=NOW)["aud"] == AUD
        assert flaky.hits == 1 + 3  # the refresh: one try and two retries, then the cached keys
        assert verifier.verify(token, now=NOW)["aud"] == AUD
        assert flaky.hits == 4  # the failure is not retried on every call

        cold = Verifier(AUD, certs=f"{server.url}/certs", timer=timer)
        with pytest.raises(TransportError, match="HTTP 503"):
            cold.verify(token, now=NOW)


def test_unreachable_certs_url_is_a_transport_error(forger: Forger) -> None:
    verifier = Verifier(AUD, certs="http://127.0.0.1:9/certs", timeout=2)
    with pytest.raises(TransportError, match=r"cannot reach .*: connection refused"):
        verifier.verify(forger.sign(), now=NOW)


_ALPHABET = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.=+/ é{}":,'


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    text=st.one_of(
        st.text(max_size=200),
        st.text(alphabet=_ALPHABET, max_size=300),
        st.builds(
            lambda a, b, c: f"{a}.{b}.{c}",
            st.sampled_from([b64json({"alg": "RS256", "kid": "k"}), b64json({"alg": "none"}), "e30", "!!", ""]),
            st.one_of(
                st.text(alphabet=_ALPHABET, max_size=80),
                st.builds(b64json, st.dictionaries(st.text(max_size=5), st.integers())),
            ),
            st.text(alphabet=_ALPHABET, max_size=80),
        ),
    )
)
def test_any_text_gives_claims_or_a_verification_error(forger: Forger, text: str) -> None:
    verifier = Verifier(AUD, certs={"keys": [forger.key.key.public.to_jwk(forger.key.kid)]})
    for attempt in (verifier.verify, decode):
        reason = None
        try:
            attempt(text)
        except VerificationError as exc:  # any other exception fails the test
            reason = exc.reason
        assert reason is None or reason in REASONS
