"""Verifier.service_account, ``gcptoken verify --service-account`` and the inspector against a
hostile key server (it plays www.googleapis.com through GCPTOKEN_EMULATOR_HOST, over HTTP on
127.0.0.1) and hostile tokens: algorithm confusion (HS256 keyed with the public key, none, ES256,
an RSA key declaring another alg), one kid in two accounts' key sets, an oversized or dripping
answer, a redirect, emails that only look ASCII; every key set is asked of the account's own path
only, and nothing secret is repeated."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from gcptoken import Verifier
from gcptoken.errors import InvalidArgumentError, TransportError, VerificationError
from gcptoken.inspector.server import inspector_app
from gcptoken.jose import jws
from gcptoken.jose.compact import b64url_encode
from gcptoken.servers.launch import OneTimeLink
from gcptoken.servers.serving import AsgiServer, bind
from tests.cli.test_cli import gcptoken

AUD = "https://api.endpoints.emulated-project.cloud.goog"
EMAIL = "signer@emulated-project.iam.gserviceaccount.com"
OTHER = "other@emulated-project.iam.gserviceaccount.com"
KEYS = "/service_accounts/v1/metadata/jwk/"


@dataclass
class KeyServer:
    """www.googleapis.com as the test has it answer: ``sets`` holds each account's JWK set, ``mode``
    says how to answer instead (huge, drip, redirect to ``elsewhere``); ``hits`` every path asked."""

    sets: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    mode: str = "keys"
    elsewhere: str = ""
    hits: list[str] = field(default_factory=list)

    async def answer(self, request: Request) -> Response:
        self.hits.append(request.url.path)
        if self.mode == "huge":
            return Response(b'{"keys": [], "pad": "' + b"k" * (2 << 20) + b'"}', media_type="application/json")
        if self.mode == "drip":
            return StreamingResponse(_drip(), media_type="application/json")
        if self.mode == "redirect":
            return Response(status_code=302, headers={"Location": self.elsewhere})
        email = request.url.path.removeprefix(KEYS)
        if email not in self.sets:
            return JSONResponse({"error": {"code": 404, "message": "Not Found"}}, status_code=404)
        return JSONResponse({"keys": self.sets[email]}, headers={"Cache-Control": "public, max-age=21600"})


async def _drip() -> AsyncIterator[bytes]:
    for byte in b'{"keys": []}':  # about 6 s in all
        yield bytes([byte])
        await asyncio.sleep(0.5)


@pytest.fixture
def keys(monkeypatch: pytest.MonkeyPatch) -> Iterator[KeyServer]:
    server = KeyServer()
    app = Starlette(routes=[Route("/{path:path}", server.answer, methods=["GET"])])
    with AsgiServer(app, bind("127.0.0.1", 0)) as running:
        monkeypatch.setenv("GCPTOKEN_EMULATOR_HOST", running.url.removeprefix("http://"))
        yield server


def token(key: jws.SigningKey, kid: str, email: str = EMAIL, **claims: Any) -> str:
    now = int(time.time())
    return jws.encode({"iss": email, "sub": email, "aud": AUD, "iat": now, "exp": now + 600, **claims}, key, kid=kid)


def forged(header: dict[str, Any], claims: dict[str, Any], sign: Any) -> str:
    """A JWS with any header, signed by ``sign(signing_input) -> bytes``."""
    signing_input = f"{b64url_encode(json.dumps(header).encode())}.{b64url_encode(json.dumps(claims).encode())}"
    return f"{signing_input}.{b64url_encode(sign(signing_input.encode()))}"


def refused(verifier: Verifier, value: str) -> str:
    with pytest.raises(VerificationError) as caught:
        verifier.verify(value)
    return caught.value.reason


def test_algorithm_confusion_is_refused(keys: KeyServer) -> None:
    rsa_key, ec_key = jws.generate_rsa_key(), jws.generate_ec_key()
    public_jwk = rsa_key.public.to_jwk("rsa")
    keys.sets[EMAIL] = [
        public_jwk,
        ec_key.public.to_jwk("ec"),
        {**jws.generate_rsa_key().public.to_jwk("says-hs256"), "alg": "HS256"},
        {"kty": "oct", "kid": "oct", "k": b64url_encode(b"shared secret")},
    ]
    verifier = Verifier.service_account(EMAIL, AUD)
    assert verifier.verify(token(rsa_key, "rsa"))["iss"] == EMAIL  # the baseline: the real key verifies
    now = int(time.time())
    claims = {"iss": EMAIL, "sub": EMAIL, "aud": AUD, "iat": now, "exp": now + 600}

    def hs256(kid: str, secret: bytes) -> str:
        return forged({"alg": "HS256", "kid": kid}, claims, lambda data: hmac.digest(secret, data, hashlib.sha256))

    def rs256(kid: str) -> str:
        return forged({"alg": "RS256", "kid": kid}, claims, rsa_key.sign)

    pem = rsa_key.public.key.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    for secret in (pem, json.dumps(public_jwk).encode(), public_jwk["n"].encode()):  # keyed with the public key
        assert refused(verifier, hs256("rsa", secret)) == "algorithm"
    assert refused(verifier, hs256("oct", b"shared secret")) == "algorithm"
    assert refused(verifier, forged({"alg": "none", "kid": "rsa"}, claims, lambda data: b"")) == "algorithm"
    assert refused(verifier, forged({"alg": "RS512", "kid": "rsa"}, claims, lambda data: b"x" * 256)) == "algorithm"
    assert refused(verifier, token(ec_key, "ec")) == "algorithm"  # ES256: not what a service account signs
    assert refused(verifier, rs256("ec")) == "algorithm"  # an RS256 header naming the P-256 key
    assert refused(verifier, rs256("oct")) == "unknown_kid"  # a symmetric key is never one
    assert refused(verifier, rs256("says-hs256")) == "unknown_kid"  # nor an RSA key claiming another alg
    assert keys.hits == [KEYS + EMAIL] * len(keys.hits) and len(keys.hits) <= 3


def test_one_kid_in_two_accounts_key_sets_does_not_cross(keys: KeyServer) -> None:
    mine, theirs = jws.generate_rsa_key(), jws.generate_rsa_key()
    keys.sets = {EMAIL: [mine.public.to_jwk("shared")], OTHER: [theirs.public.to_jwk("shared")]}
    for_me, for_them = Verifier.service_account(EMAIL, AUD), Verifier.service_account(OTHER, AUD)
    assert for_me.verify(token(mine, "shared"))
    assert for_them.verify(token(theirs, "shared", OTHER))
    assert refused(for_me, token(theirs, "shared")) == "signature"  # their key under my kid, claiming to be me
    assert refused(for_them, token(mine, "shared", OTHER)) == "signature"
    assert sorted(set(keys.hits)) == [KEYS + OTHER, KEYS + EMAIL]


def test_an_oversized_key_set_is_refused_and_not_asked_again_at_once(keys: KeyServer) -> None:
    keys.mode = "huge"
    verifier = Verifier.service_account(EMAIL, AUD)
    value = token(jws.generate_rsa_key(), "k")
    with pytest.raises(TransportError) as caught:
        verifier.verify(value)
    message = str(caught.value)
    assert "larger than" in message and "kkkk" not in message and len(message) < 400
    asked = len(keys.hits)
    assert 1 <= asked <= 3  # read no further than the limit, retried within the one deadline
    for _ in range(5):
        with pytest.raises(TransportError):
            verifier.verify(value)
    assert len(keys.hits) == asked  # the failure backoff answers the next ones


def test_a_dripping_key_server_is_given_up_at_the_timeout(keys: KeyServer) -> None:
    keys.mode = "drip"
    verifier = Verifier.service_account(EMAIL, AUD, timeout=1.5)
    value = token(jws.generate_rsa_key(), "k")

    async def many() -> list[BaseException | dict[str, Any]]:
        return await asyncio.gather(*(verifier.verify_async(value) for _ in range(20)), return_exceptions=True)

    started = time.monotonic()
    outcomes = asyncio.run(many())
    assert time.monotonic() - started < 4.5  # the 1.5 s deadline (and the waiters' own), not the 6 s drip
    assert all(isinstance(outcome, TransportError) for outcome in outcomes), outcomes[:3]
    assert len(keys.hits) == 1  # one fetch for twenty waiting verifications


def test_a_redirect_to_another_key_set_is_not_followed(keys: KeyServer) -> None:
    forger = jws.generate_rsa_key()
    planted = KeyServer(sets={"planted": [forger.public.to_jwk("k")]})
    app = Starlette(routes=[Route("/{path:path}", planted.answer, methods=["GET"])])
    with AsgiServer(app, bind("127.0.0.1", 0)) as elsewhere:
        keys.mode, keys.elsewhere = "redirect", f"{elsewhere.url}{KEYS}planted"
        with pytest.raises(TransportError):
            Verifier.service_account(EMAIL, AUD).verify(token(forger, "k"))
    assert planted.hits == []


@pytest.mark.parametrize(
    "email",
    [
        "\u212a@p.iam.gserviceaccount.com",  # the Kelvin sign: [a-z] matches it under IGNORECASE alone
        "\u017f@p.iam.gserviceaccount.com",  # long s
        "sa@\u0131am.gserviceaccount.com",  # dotless i
        "\uff53a@p.iam.gserviceaccount.com",  # fullwidth s
        "sa@p.iam.gserviceaccount.com\n",
        "sa@p.iam.gserviceaccount.com%2F..",
        "sa@p.iam.gserviceaccount.com#",
        "sa@p.iam.gserviceaccount.com?x=1",
        "sa@127.0.0.1:8080",
    ],
)
def test_an_email_that_only_looks_like_one_is_refused_before_any_fetch(keys: KeyServer, email: str) -> None:
    with pytest.raises(InvalidArgumentError, match="is not a service account's email"):
        Verifier.service_account(email, AUD)
    result = gcptoken("verify", "a.b.c", "--service-account", email, "--audience", AUD)
    assert result.code == 2 and len(result.err.splitlines()) == 1 and "Traceback" not in result.err
    assert keys.hits == []


def test_the_cli_says_one_line_for_a_hostile_key_server_and_never_the_token(keys: KeyServer) -> None:
    signer = jws.generate_rsa_key()
    value = token(signer, "k")
    for mode in ("huge", "keys"):
        keys.mode = mode
        keys.sets[EMAIL] = [jws.generate_rsa_key().public.to_jwk("k")]  # the right kid, another key
        result = gcptoken("verify", value, "--service-account", EMAIL, "--audience", AUD)
        assert result.code != 0 and result.out == "" and "Traceback" not in result.err
        (line,) = result.err.splitlines()
        assert value.rsplit(".", 1)[1][:16] not in line and value not in line


def test_the_inspector_fetches_each_issuers_own_keys_only(keys: KeyServer) -> None:
    """A pasted token names its issuer; the inspector asks for that account's keys at Google's one
    path for them, keeps each account's keys apart, and never fetches for an email no path carries."""
    mine, theirs = jws.generate_rsa_key(), jws.generate_rsa_key()
    keys.sets = {EMAIL: [mine.public.to_jwk("shared")], OTHER: [theirs.public.to_jwk("shared")]}
    link = OneTimeLink("inspect")
    with AsgiServer(inspector_app(link, None), bind("127.0.0.1", 0)) as inspector, httpx.Client() as client:
        page = client.get(f"{inspector.url}/{link.secret}/")
        cookie = page.headers["set-cookie"].split(";", 1)[0]

        def verdict(value: str) -> dict[str, Any]:
            answer = client.post(
                f"{inspector.url}/{link.secret}/api/inspect",
                json={"token": value},
                headers={"Cookie": cookie},
            )
            assert answer.status_code == 200, answer.text
            assert value.rsplit(".", 1)[1] not in answer.text  # the signature is never shown back
            return dict(answer.json()["verdict"])

        assert verdict(token(mine, "shared"))["valid"] is True
        assert verdict(token(theirs, "shared", OTHER))["valid"] is True
        assert verdict(token(theirs, "shared"))["reason"] == "signature"  # theirs, claiming to be mine
        lookalike = token(theirs, "shared", "\u212a@emulated-project.iam.gserviceaccount.com")
        assert verdict(lookalike)["checked"] is False
        traversal = token(theirs, "shared", "..%2F..%2Foauth2%2Fv3%2Fcerts@x.iam.gserviceaccount.com")
        assert verdict(traversal)["checked"] is False
    assert set(keys.hits) == {KEYS + EMAIL, KEYS + OTHER}
