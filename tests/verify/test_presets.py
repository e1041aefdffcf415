"""Every preset against the emulator's issuers: the forged/tampered table, each issuer's own rules,
policy, the result cache, OIDC discovery, and async verification."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import threading
from collections.abc import Callable
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gcptoken import Verifier
from gcptoken.errors import InvalidArgumentError, TransportError, VerificationError
from gcptoken.jose import compact, jws
from gcptoken.testing import EmulatorClient
from gcptoken.verify.key_cache import KeyCache
from gcptoken.verify.policy import Policy
from gcptoken.verify.verifier import REASONS
from tests.verify.issuers import DROP, NOW, Issuer, b64json, issuers

PRESETS = ("google", "iap", "firebase", "oidc")


@pytest.fixture
def all_issuers(emulator: EmulatorClient, monkeypatch: pytest.MonkeyPatch) -> dict[str, Issuer]:
    monkeypatch.setenv("GCPTOKEN_EMULATOR_HOST", emulator.host_port)
    return issuers(emulator)


def tamper(token: str, part: int, replace: Callable[[str], str]) -> str:
    parts = token.split(".")
    parts[part] = replace(parts[part])
    return ".".join(parts)


def hmac_signed(issuer: Issuer, secret: bytes) -> str:
    signing_input = f"{b64json({'alg': 'HS256', 'kid': issuer.key.kid, 'typ': 'JWT'})}.{b64json(issuer.claims())}"
    return f"{signing_input}.{compact.b64url_encode(hmac.new(secret, signing_input.encode(), hashlib.sha256).digest())}"


def public_pem(issuer: Issuer) -> bytes:
    return issuer.key.key.key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def other_algorithm(issuer: Issuer, everyone: dict[str, Issuer]) -> Issuer:
    """An issuer whose keys use the other algorithm: IAP (ES256) for the RSA ones, Google for IAP."""
    return everyone["google" if issuer.alg == "ES256" else "iap"]


def impostor_key(issuer: Issuer) -> jws.SigningKey:
    return jws.generate_ec_key() if issuer.alg == "ES256" else jws.generate_rsa_key()


def flipped(alg: str) -> str:
    return "RS256" if alg == "ES256" else "ES256"


Make = Callable[[Issuer, dict[str, Issuer]], str]
# name → (forgery, reason; or a mapping preset → reason where presets differ)
FORGERIES: list[tuple[str, Make, str | dict[str, str]]] = [
    ("alg none", lambda i, _: f"{b64json({'alg': 'none', 'kid': i.key.kid})}.{b64json(i.claims())}.", "algorithm"),
    ("HS256 keyed with the public key PEM", lambda i, _: hmac_signed(i, public_pem(i)), "algorithm"),
    (
        "the other algorithm named on this kid",
        lambda i, _: tamper(i.sign(), 0, lambda _: b64json({"alg": flipped(i.alg), "kid": i.key.kid, "typ": "JWT"})),
        "algorithm",
    ),
    (
        "a real token of the other algorithm's issuer",
        lambda i, everyone: (o := other_algorithm(i, everyone)).sign(i.claims(), key=o.key),
        {"google": "algorithm", "iap": "algorithm", "firebase": "algorithm", "oidc": "unknown_kid"},
    ),
    (
        "another key under the same kid",
        lambda i, _: jws.encode(i.claims(), impostor_key(i), kid=i.key.kid),
        "signature",
    ),
    ("payload tampered", lambda i, _: tamper(i.sign(), 1, lambda _: b64json(i.claims(sub="attacker"))), "signature"),
    ("signature truncated", lambda i, _: tamper(i.sign(), 2, lambda s: s[:-9] + "A"), "signature"),
    ("signature empty", lambda i, _: tamper(i.sign(), 2, lambda _: ""), "signature"),
    (
        "signature bit-flipped",
        lambda i, _: tamper(i.sign(), 2, lambda s: s[:3] + ("A" if s[3] != "A" else "B") + s[4:]),
        "signature",
    ),
    ("unknown kid", lambda i, _: i.sign(kid="not-published"), "unknown_kid"),
    ("wrong issuer", lambda i, _: i.sign(i.claims(iss="https://evil.example")), "issuer"),
    (
        "another preset's issuer",
        lambda i, everyone: i.sign(i.claims(iss=other_algorithm(i, everyone).issuer)),
        "issuer",
    ),
    ("wrong audience", lambda i, _: i.sign(i.claims(aud="https://other.example")), "audience"),
    ("expired", lambda i, _: i.sign(i.claims(iat=NOW - 2 * i.lifetime, exp=NOW - i.lifetime)), "expired"),
    (
        "issued in the future",
        lambda i, _: i.sign(i.claims(iat=NOW + 300, exp=NOW + 300 + i.lifetime)),
        "issued_in_future",
    ),
    ("exp missing", lambda i, _: i.sign(i.claims(exp=DROP)), "missing_claim"),
    ("malformed", lambda i, _: i.sign()[:-1] + "*", "malformed"),
    (
        "lives longer than the issuer allows",
        lambda i, _: i.sign(i.claims(exp=NOW + 3600)),
        {"google": "", "iap": "lifetime", "firebase": "", "oidc": ""},
    ),
    (
        "Firebase: auth_time missing",
        lambda i, _: i.sign(i.claims(auth_time=DROP)),
        {"google": "", "iap": "", "firebase": "missing_claim", "oidc": ""},
    ),
    (
        "Firebase: auth_time in the future",
        lambda i, _: i.sign(i.claims(auth_time=NOW + 600)),
        {"google": "", "iap": "", "firebase": "issued_in_future", "oidc": ""},
    ),
    (
        "Firebase: empty subject",
        lambda i, _: i.sign(i.claims(sub="")),
        {"google": "", "iap": "", "firebase": "invalid_claim", "oidc": ""},
    ),
    (
        "Firebase: subject over 128 characters",
        lambda i, _: i.sign(i.claims(sub="u" * 129)),
        {"google": "", "iap": "", "firebase": "invalid_claim", "oidc": ""},
    ),
]


def expected(reason: str | dict[str, str], preset: str) -> str:
    return reason if isinstance(reason, str) else reason[preset]


@pytest.mark.parametrize("preset", PRESETS)
@pytest.mark.parametrize(("make", "reason"), [(m, r) for _, m, r in FORGERIES], ids=[n for n, _, _ in FORGERIES])
def test_forged_and_out_of_policy_tokens_per_preset(
    all_issuers: dict[str, Issuer], preset: str, make: Make, reason: str | dict[str, str]
) -> None:
    issuer = all_issuers[preset]
    token = make(issuer, all_issuers)
    verifier = issuer.make_verifier()
    want = expected(reason, preset)
    if not want:  # not this issuer's rule: the token is fine here
        assert verifier.verify(token, now=NOW)["iss"] == issuer.issuer
        return
    with pytest.raises(VerificationError) as caught:
        verifier.verify(token, now=NOW)
    assert caught.value.reason == want, caught.value
    assert token.split(".")[-1][-12:] not in str(caught.value) or len(token.split(".")[-1]) < 12


@pytest.mark.parametrize("preset", PRESETS)
def test_each_preset_accepts_its_issuers_tokens(all_issuers: dict[str, Issuer], preset: str) -> None:
    issuer = all_issuers[preset]
    claims = issuer.claims()
    assert issuer.make_verifier().verify(issuer.sign(claims), now=NOW) == claims


def test_emulator_minted_iap_and_firebase_tokens_verify(
    emulator: EmulatorClient, all_issuers: dict[str, Issuer]
) -> None:
    assertion = emulator.iap_assertion(
        "alice@example.com", "/projects/123456789012/apps/emulated-project", hd="example.com"
    )
    claims = Verifier.iap("/projects/123456789012/apps/emulated-project").verify(assertion)
    assert claims["iss"] == "https://cloud.google.com/iap" and claims["email"] == "alice@example.com"
    assert claims["sub"].startswith("accounts.google.com:") and claims["exp"] - claims["iat"] == 600
    token = emulator.firebase_token("uid-1", email="bob@example.com", claims={"role": "admin"})
    claims = Verifier.firebase("emulated-project").verify(token)
    assert (claims["sub"], claims["user_id"], claims["role"]) == ("uid-1", "uid-1", "admin")
    assert claims["firebase"] == {"identities": {"email": ["bob@example.com"]}, "sign_in_provider": "password"}


def test_iap_audience_must_look_like_iaps(all_issuers: dict[str, Issuer]) -> None:
    for audience in (
        "123-abc.apps.googleusercontent.com",
        "/projects/abc/apps/x",
        "/projects/1/global/backendServices/x",
    ):
        with pytest.raises(InvalidArgumentError, match="IAP audience"):
            Verifier.iap(audience)
    assert Verifier.iap("/projects/1/apps/my-project").audiences == {"/projects/1/apps/my-project"}


def test_iap_allows_30_seconds_of_skew(all_issuers: dict[str, Issuer]) -> None:
    issuer = all_issuers["iap"]
    token = issuer.sign(issuer.claims(iat=NOW - 600, exp=NOW))
    assert issuer.make_verifier().verify(token, now=NOW + 30)["aud"] == issuer.audience
    with pytest.raises(VerificationError, match="expired"):
        issuer.make_verifier().verify(token, now=NOW + 31)


POLICY_CASES: list[tuple[str, Policy, dict[str, Any], str]] = [
    ("email allowed", Policy(emails=["Someone@Example.com"]), {}, ""),
    ("email not allowed", Policy(emails=["other@example.com"]), {}, "email_not_allowed"),
    ("email missing", Policy(emails=["someone@example.com"]), {"email": DROP}, "email_not_allowed"),
    (
        "email marked unverified",
        Policy(emails=["someone@example.com"]),
        {"email_verified": False},
        "email_not_verified",
    ),
    ("verification required, given", Policy(require_email_verified=True), {}, ""),
    (
        "verification required, false",
        Policy(require_email_verified=True),
        {"email_verified": False},
        "email_not_verified",
    ),
    (
        "verification required, a string",
        Policy(require_email_verified=True),
        {"email_verified": "true"},
        "email_not_verified",
    ),
    ("hosted domain allowed", Policy(hosted_domains=["example.com"]), {"hd": "example.com"}, ""),
    ("hosted domain other", Policy(hosted_domains=["example.com"]), {"hd": "evil.com"}, "hosted_domain_not_allowed"),
    ("hosted domain missing", Policy(hosted_domains=["example.com"]), {"hd": DROP}, "hosted_domain_not_allowed"),
    ("subject allowed", Policy(subjects=["110169484474386276334"]), {}, ""),
    ("subject other", Policy(subjects=["1"]), {}, "subject_not_allowed"),
    ("young enough", Policy(max_age=300), {"iat": NOW - 200, "exp": NOW + 400}, ""),
    ("too old", Policy(max_age=300), {"iat": NOW - 400, "exp": NOW + 200}, "too_old"),
]


@pytest.mark.parametrize("preset", PRESETS)
@pytest.mark.parametrize(
    ("policy", "changes", "reason"), [c[1:] for c in POLICY_CASES], ids=[c[0] for c in POLICY_CASES]
)
def test_policy_per_preset(
    all_issuers: dict[str, Issuer], preset: str, policy: Policy, changes: dict[str, Any], reason: str
) -> None:
    issuer = all_issuers[preset]
    token = issuer.sign(issuer.claims(**changes))
    verifier = issuer.make_verifier(policy=policy)
    if not reason:
        assert verifier.verify(token, now=NOW)["sub"] == "110169484474386276334"
        return
    with pytest.raises(VerificationError) as caught:
        verifier.verify(token, now=NOW)
    assert caught.value.reason == reason


@pytest.mark.parametrize(
    "options",
    [{"emails": []}, {"emails": [""]}, {"hosted_domains": [3]}, {"subjects": []}, {"max_age": 0}, {"max_age": -5}],
)
def test_bad_policy_is_refused(options: dict[str, Any]) -> None:
    with pytest.raises(InvalidArgumentError):
        Policy(**options)


def test_every_reason_is_declared() -> None:
    reasons = {expected(r, p) for _, _, r in FORGERIES for p in PRESETS} | {c[3] for c in POLICY_CASES}
    assert reasons - {""} <= REASONS


# -- the result cache ------------------------------------------------------------------------------


def test_a_repeated_token_skips_the_signature_but_not_the_clock(all_issuers: dict[str, Issuer]) -> None:
    issuer = all_issuers["google"]
    verifier = issuer.make_verifier()
    token = issuer.sign()
    first = verifier.verify(token, now=NOW)
    assert len(verifier.results) == 1
    first["aud"] = "edited by the caller"
    assert verifier.verify(token, now=NOW)["aud"] == issuer.audience  # a fresh copy every time
    with pytest.raises(VerificationError, match="expired"):  # a cached token still expires
        verifier.verify(token, now=NOW + issuer.lifetime + 61)
    assert len(verifier.results) == 0
    with pytest.raises(VerificationError) as caught:  # and is not valid before it was issued
        verifier.verify(token, now=NOW - 120)
    assert caught.value.reason == "issued_in_future"


def test_the_result_cache_only_hits_for_the_identical_token(all_issuers: dict[str, Issuer]) -> None:
    issuer = all_issuers["google"]
    verifier = issuer.make_verifier()
    token = issuer.sign()
    verifier.verify(token, now=NOW)
    header, payload, signature = token.split(".")
    for forged in (f"{header}.{payload}.", f"{header}.{payload}.{signature[:-4]}AAAA", f"{header}.{payload}"):
        with pytest.raises(VerificationError):
            verifier.verify(forged, now=NOW)


def test_the_result_cache_is_bounded_and_respects_max_age(all_issuers: dict[str, Issuer]) -> None:
    issuer = all_issuers["google"]
    verifier = issuer.make_verifier(result_cache_size=3, policy=Policy(max_age=100))
    tokens = [issuer.sign(issuer.claims(sub=str(n))) for n in range(5)]
    for token in tokens:
        verifier.verify(token, now=NOW)
    assert len(verifier.results) == 3
    assert set(verifier.results.entries) == set(tokens[2:])  # the oldest went first
    with pytest.raises(VerificationError, match="issued"):
        verifier.verify(tokens[-1], now=NOW + 161)  # max_age bounds the cached entry too
    unbounded = issuer.make_verifier(result_cache_size=0)
    unbounded.verify(tokens[0], now=NOW)
    assert len(unbounded.results) == 0


# -- discovery and fetching ------------------------------------------------------------------------


def test_discovery_of_googles_own_issuer_through_the_emulator(
    emulator: EmulatorClient, all_issuers: dict[str, Issuer]
) -> None:
    emulator.state.clear_requests()
    token = all_issuers["google"].sign()
    verifier = Verifier.oidc("https://accounts.google.com", all_issuers["google"].audience)
    assert verifier.verify(token, now=NOW)["iss"] == "https://accounts.google.com"
    paths = [entry["path"] for entry in emulator.requests()]
    assert paths == ["/.well-known/openid-configuration", "/oauth2/v3/certs"]


@pytest.mark.parametrize(
    "issuer", ["http://issuer.example", "https://issuer.example?x=1", "ftp://issuer.example", "issuer.example"]
)
def test_unsafe_issuers_are_refused_for_discovery(issuer: str) -> None:
    with pytest.raises(InvalidArgumentError, match="https"):
        Verifier.oidc(issuer, "aud")


def test_discovery_document_naming_another_issuer_is_refused(emulator: EmulatorClient) -> None:
    # The emulator's federation issuer lives at /oidc; asking for its parent finds Google's
    # document at the root, which names https://accounts.google.com, not the URL asked for.
    verifier = Verifier.oidc(emulator.url, "aud")
    with pytest.raises(TransportError, match="names issuer"):
        verifier.verify(emulator.firebase_token("x"))


def test_verify_async_fetches_keys_off_the_event_loop(all_issuers: dict[str, Issuer]) -> None:
    issuer = all_issuers["iap"]
    verifier = issuer.make_verifier()
    token = issuer.sign()
    keys = verifier._cache
    assert isinstance(keys, KeyCache)
    fetched_in: list[str] = []
    real_fetch = keys._fetch

    def recording_fetch() -> Any:  # the real fetch, noting which thread made it
        fetched_in.append(threading.current_thread().name)
        return real_fetch()

    keys._fetch = recording_fetch  # type: ignore[method-assign]

    async def main() -> list[dict[str, Any]]:
        return await asyncio.gather(*(verifier.verify_async(token, now=NOW) for _ in range(20)))

    results = asyncio.run(main())
    assert all(claims["aud"] == issuer.audience for claims in results)
    assert len(fetched_in) == 1 and fetched_in[0] != threading.main_thread().name
    asyncio.run(verifier.verify_async(issuer.sign(issuer.claims(sub="2")), now=NOW))
    assert len(fetched_in) == 1  # fresh keys: verified on the loop, nothing fetched
    with pytest.raises(VerificationError, match="1 part"):
        asyncio.run(verifier.verify_async("not-a-token"))


# -- properties ------------------------------------------------------------------------------------

_TOKENISH = st.text(alphabet='abcXYZ0189-_.=+/ {}"é\x00', max_size=400)


@pytest.fixture
def verifiers(all_issuers: dict[str, Issuer]) -> dict[str, Verifier]:
    return {name: issuer.make_verifier() for name, issuer in all_issuers.items()}


def outcome(verifier: Verifier, value: Any) -> dict[str, Any] | str:
    """Claims, or the reason it was refused; any other exception fails the property."""
    try:
        return verifier.verify(value, now=NOW)
    except VerificationError as exc:
        reason = exc.reason
    assert reason in REASONS
    return reason


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.one_of(st.binary(max_size=600), st.text(max_size=300), _TOKENISH), preset=st.sampled_from(PRESETS))
def test_any_input_gives_claims_or_a_verification_error(
    verifiers: dict[str, Verifier], data: bytes | str, preset: str
) -> None:
    verifier = verifiers[preset]
    assert outcome(verifier, data) == "malformed" or isinstance(data, str)
    if isinstance(data, bytes):
        assert isinstance(outcome(verifier, data.decode("latin-1")), str)  # no valid token out of noise


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    preset=st.sampled_from(PRESETS),
    position=st.integers(min_value=0),
    replacement=st.sampled_from("AQgw-_.=+/~é0z"),
)
def test_a_token_changed_anywhere_is_refused_or_means_the_same(
    all_issuers: dict[str, Issuer], verifiers: dict[str, Verifier], preset: str, position: int, replacement: str
) -> None:
    issuer = all_issuers[preset]
    token = issuer.sign()
    index = position % len(token)
    changed = token[:index] + replacement + token[index + 1 :]
    result = outcome(verifiers[preset], changed)
    # Only a change in a segment's unused trailing bits can leave the same signed bytes.
    assert isinstance(result, str) or result == issuer.claims()
