"""Key fetching under a misbehaving key server: one bounded deadline per fetch (a blackhole or a
drip cannot stall a service), failures remembered so bursts fail fast, stale keys served for a
bounded time, max-age capped, size capped, no redirects, http only on loopback, results
forgotten with their key, and one fetch for a burst of async requests."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from gcptoken import Verifier
from gcptoken.errors import InvalidArgumentError, TransportError, VerificationError
from gcptoken.jose import jws
from tests.clock import Timer
from tests.integrations.test_middleware import serving
from tests.verify.key_servers import KeyServer, blackhole, dripping, key_server

AUD = "https://svc-keys.example"
KEY_A, KEY_B = jws.generate_rsa_key(), jws.generate_rsa_key()
JWKS = {"keys": [KEY_A.public.to_jwk("a"), KEY_B.public.to_jwk("b")]}


def token(key: jws.SigningKey = KEY_A, kid: str = "a") -> str:
    now = int(time.time())
    claims = {"iss": "https://accounts.google.com", "aud": AUD, "sub": "1", "iat": now, "exp": now + 3600}
    return jws.encode(claims, key, kid=kid)


@pytest.fixture
def keys() -> Iterator[KeyServer]:
    with key_server(JWKS) as server:
        yield server


def test_a_blackholed_key_server_fails_a_burst_fast() -> None:
    with blackhole() as (url, connections):
        verifier = Verifier(AUD, certs=url, timeout=1.0, failure_backoff=60)
        started = time.monotonic()
        for _ in range(20):
            with pytest.raises(TransportError):
                verifier.verify(token())
        elapsed = time.monotonic() - started
        assert connections[0] <= 3  # one fetch (its retries within one deadline), then remembered
        # Twenty waits of a full timeout (or three each, with retries) would take 20-60 s.
        assert elapsed < 5, elapsed


def test_a_dripping_key_server_is_cut_off_at_the_deadline() -> None:
    with dripping(byte_every=0.05) as (url, connections):
        verifier = Verifier(AUD, certs=url, timeout=1.0)
        started = time.monotonic()
        with pytest.raises(TransportError, match=r"timed out|deadline"):
            verifier.verify(token())
        assert time.monotonic() - started < 5  # the whole body would take over 200 s
        assert connections[0] >= 1


def test_oversized_and_redirected_answers_are_refused(keys: KeyServer) -> None:
    keys.oversize = True
    with pytest.raises(TransportError, match="larger than"):
        Verifier(AUD, certs=keys.url).verify(token())
    keys.oversize = False
    with key_server(JWKS) as elsewhere:
        keys.redirect_to = elsewhere.url.replace("127.0.0.1", "localhost")
        with pytest.raises(TransportError, match="302"):
            Verifier(AUD, certs=keys.url).verify(token())
        assert elsewhere.requests == []  # never followed


@pytest.mark.parametrize(
    "url", ["http://keys.example/certs", "http://10.0.0.1/certs", "ftp://127.0.0.1/certs", "https://[::1/certs"]
)
def test_key_urls_must_be_https_except_on_loopback(url: str) -> None:
    with pytest.raises(InvalidArgumentError, match="certs URL"):
        Verifier(AUD, certs=url)


def test_stale_keys_serve_while_the_server_fails_but_not_for_ever(keys: KeyServer) -> None:
    clock = Timer()
    keys.max_age = "10"
    verifier = Verifier(AUD, certs=keys.url, timer=clock, failure_backoff=5, max_stale=100)
    assert verifier.verify(token())["sub"] == "1"
    keys.status = 503
    clock.now += 11  # past max-age: a refetch fails, the keys we hold still serve
    assert verifier.verify(token(KEY_B, "b"))["sub"] == "1"
    asked = len(keys.requests)
    clock.now += 1  # within the back-off: not asked again
    assert verifier.verify(token(KEY_B, "b"))["sub"] == "1"
    assert len(keys.requests) == asked
    clock.now += 100  # more than max_stale past max-age: the keys are gone
    with pytest.raises(TransportError):
        verifier.verify(token())
    asked_again = len(keys.requests)
    assert asked < asked_again <= asked + 3  # one fetch (503 is retried within its deadline)
    with pytest.raises(TransportError):  # and the failure is remembered
        verifier.verify(token())
    assert len(keys.requests) == asked_again
    keys.status = 200
    clock.now += 6
    assert verifier.verify(token())["sub"] == "1"  # back once the server is


def test_a_huge_max_age_is_capped(keys: KeyServer) -> None:
    clock = Timer()
    keys.max_age = "100000000000000000000"
    verifier = Verifier(AUD, certs=keys.url, timer=clock)
    verifier.verify(token())
    clock.now += 86401
    verifier.verify(token(KEY_B, "b"))
    assert len(keys.requests) == 2


def test_a_result_does_not_outlive_its_key(keys: KeyServer) -> None:
    clock = Timer()
    keys.max_age = "10"
    verifier = Verifier(AUD, certs=keys.url, timer=clock)
    signed_by_a = token()
    assert verifier.verify(signed_by_a)["sub"] == "1"
    assert verifier.verify(signed_by_a)["sub"] == "1"  # from the result cache
    assert len(verifier.results) == 1
    keys.jwks = {"keys": [KEY_B.public.to_jwk("b")]}  # key a is withdrawn
    clock.now += 11
    with pytest.raises(VerificationError) as caught:
        verifier.verify(signed_by_a)
    assert caught.value.reason == "unknown_kid"
    assert len(verifier.results) == 0


def _burst(url: str, count: int) -> list[int]:
    async def run() -> list[int]:
        async with httpx.AsyncClient(timeout=30) as client:
            answers = await asyncio.gather(
                *(client.get(f"{url}/whoami", headers={"Authorization": f"Bearer {token()}"}) for _ in range(count))
            )
        return [answer.status_code for answer in answers]

    return asyncio.run(run())


@pytest.mark.parametrize("kind", ["asgi-middleware", "fastapi-dependency"])
def test_an_async_burst_shares_one_key_fetch(keys: KeyServer, kind: str) -> None:
    keys.delay = 0.5  # long enough for every request of the burst to arrive during the fetch
    with serving(kind, Verifier(AUD, certs=keys.url)) as url:
        assert _burst(url, 40) == [200] * 40
    assert len(keys.requests) == 1


def test_an_async_burst_against_a_blackhole_gets_503_from_one_fetch() -> None:
    with blackhole() as (certs, connections):
        verifier = Verifier(AUD, certs=certs, timeout=1.0, failure_backoff=60)
        with serving("asgi-middleware", verifier) as url:
            started = time.monotonic()
            statuses: list[Any] = _burst(url, 40)
            elapsed = time.monotonic() - started
        assert statuses == [503] * 40
        assert connections[0] <= 3
        assert elapsed < 10, elapsed  # forty fetches of a second each would take 40 s or more
