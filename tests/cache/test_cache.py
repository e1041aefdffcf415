"""The token cache: freshness, refresh margin, failures, and single flight (counted at the emulator)."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from gcptoken import TokenRequestError, load_credentials
from gcptoken.cache.memory import TokenCache
from gcptoken.cache.rules import refresh_margin
from gcptoken.testing import EmulatorClient
from gcptoken.tokens import Token, utc_from_epoch

AUD = "https://svc-cache.a.run.app"
T0 = 1_800_000_000.0


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


class Upstream:
    """A fetch function that counts calls and issues tokens living ``lifetime`` seconds."""

    def __init__(self, clock: Clock, lifetime: float = 3600) -> None:
        self.clock, self.lifetime, self.calls = clock, lifetime, 0
        self.fail = False

    def __call__(self) -> Token:
        self.calls += 1
        if self.fail:
            raise TokenRequestError("upstream is down", status=503)
        return Token(f"token-{self.calls}", utc_from_epoch(self.clock() + self.lifetime))


def test_margin_is_five_minutes_for_an_hour_and_proportionate_below() -> None:
    assert refresh_margin(3600) == 300
    assert refresh_margin(600) == 50
    assert refresh_margin(7200) == 300


def test_reuse_then_refresh_ahead_of_expiry() -> None:
    clock = Clock()
    cache, upstream = TokenCache(clock), Upstream(clock)
    first = cache.get("k", upstream)
    clock.now += 3600 - 301
    assert cache.get("k", upstream) is first and upstream.calls == 1
    clock.now += 2  # inside the five-minute margin
    assert cache.get("k", upstream).value == "token-2"


def test_short_tokens_get_a_proportionate_margin() -> None:
    clock = Clock()
    cache, upstream = TokenCache(clock), Upstream(clock, lifetime=600)
    cache.get("k", upstream)
    clock.now += 549
    cache.get("k", upstream)
    assert upstream.calls == 1
    clock.now += 2
    cache.get("k", upstream)
    assert upstream.calls == 2


def test_a_failed_refresh_serves_the_still_valid_token_but_never_an_expired_one() -> None:
    clock = Clock()
    cache, upstream = TokenCache(clock), Upstream(clock)
    first = cache.get("k", upstream)
    upstream.fail = True
    clock.now += 3500  # stale but valid
    assert cache.get("k", upstream) is first
    clock.now += 200  # expired
    with pytest.raises(TokenRequestError):
        cache.get("k", upstream)


def test_failures_are_not_cached() -> None:
    clock = Clock()
    cache, upstream = TokenCache(clock), Upstream(clock)
    upstream.fail = True
    with pytest.raises(TokenRequestError):
        cache.get("k", upstream)
    upstream.fail = False
    assert cache.get("k", upstream).value == "token-2"


def test_keys_are_separate_and_the_cache_is_bounded() -> None:
    clock = Clock()
    cache, upstream = TokenCache(clock, max_entries=2), Upstream(clock)
    a, b = cache.get("a", upstream), cache.get("b", upstream)
    assert a is not b
    cache.get("c", upstream)  # evicts "a", the oldest
    assert cache.get("b", upstream) is b
    assert cache.get("a", upstream).value == "token-4"


def token_requests(emulator: EmulatorClient, key_info: dict[str, str]) -> int:
    return len(emulator.token_requests_by(key_info["client_email"]))


def test_two_credential_objects_for_one_key_share_tokens(
    emulator: EmulatorClient, key_path: Path, key_info: dict[str, str]
) -> None:
    first = load_credentials(key_path).id_token(AUD)
    assert load_credentials(key_path).id_token(AUD) == first
    load_credentials(key_path).id_token(AUD + "/other")
    assert token_requests(emulator, key_info) == 2


def test_200_threads_on_a_cold_cache_make_one_request(
    emulator: EmulatorClient, key_path: Path, key_info: dict[str, str]
) -> None:
    credentials = load_credentials(key_path)
    barrier = threading.Barrier(200)

    def ask(_: int) -> str:
        barrier.wait()
        return credentials.id_token(AUD).value

    with ThreadPoolExecutor(max_workers=200) as pool:
        values = set(pool.map(ask, range(200)))
    assert len(values) == 1
    assert token_requests(emulator, key_info) == 1


def test_200_tasks_on_a_cold_cache_make_one_request(
    emulator: EmulatorClient, key_path: Path, key_info: dict[str, str]
) -> None:
    credentials = load_credentials(key_path)

    async def everyone() -> set[str]:
        tokens = await asyncio.gather(*(credentials.id_token_async(AUD) for _ in range(200)))
        return {token.value for token in tokens}

    assert len(asyncio.run(everyone())) == 1
    assert token_requests(emulator, key_info) == 1


def test_a_failure_reaches_every_waiter_and_is_not_cached(
    emulator: EmulatorClient, key_path: Path, key_info: dict[str, str]
) -> None:
    credentials = load_credentials(key_path)
    emulator.state.delete_key(key_info["client_email"], key_info["private_key_id"])
    barrier = threading.Barrier(50)

    def ask(_: int) -> str:
        barrier.wait()
        try:
            credentials.id_token(AUD)
        except TokenRequestError as exc:
            return str(exc.description)
        return "no error"

    with ThreadPoolExecutor(max_workers=50) as pool:
        outcomes = set(pool.map(ask, range(50)))
    assert outcomes == {"Invalid JWT Signature."}
    # Callers arriving together share a fetch; one arriving after a failure rightly asks again.
    shared = token_requests(emulator, key_info)
    assert 1 <= shared < 50
    with pytest.raises(TokenRequestError):
        credentials.id_token(AUD)
    assert token_requests(emulator, key_info) == shared + 1  # the failure was not cached


def test_one_failing_fetch_reaches_every_concurrent_waiter() -> None:
    clock = Clock()
    cache = TokenCache(clock)
    calls = 0
    barrier = threading.Barrier(20)

    def slow_failure() -> Token:
        nonlocal calls
        calls += 1
        time.sleep(0.3)  # every other thread is waiting on this fetch by now
        raise TokenRequestError("upstream is down", status=503)

    def ask(_: int) -> str:
        barrier.wait()
        try:
            cache.get("k", slow_failure)
        except TokenRequestError as exc:
            return str(exc)
        return "no error"

    with ThreadPoolExecutor(max_workers=20) as pool:
        assert set(pool.map(ask, range(20))) == {"upstream is down"}
    assert calls == 1


def _in_the_margin(cache: TokenCache, clock: Clock, upstream: Upstream) -> Token:
    first = cache.get("k", upstream)
    clock.now += 3600 - 200  # inside the five-minute margin, still valid
    return first


def test_inside_the_margin_one_thread_refreshes_and_the_others_go_on_with_the_valid_token() -> None:
    clock = Clock()
    cache, upstream = TokenCache(clock), Upstream(clock)
    first = _in_the_margin(cache, clock, upstream)
    started, release = threading.Event(), threading.Event()

    def slow_refresh() -> Token:
        started.set()
        release.wait(5)
        return upstream()

    with ThreadPoolExecutor(max_workers=1) as pool:
        leader = pool.submit(cache.get, "k", slow_refresh)
        assert started.wait(5)
        began = time.monotonic()
        assert [cache.get("k", slow_refresh) for _ in range(5)] == [first] * 5  # no wait on the refresh
        assert time.monotonic() - began < 1
        release.set()
        assert leader.result().value == "token-2"
    assert cache.get("k", upstream).value == "token-2" and upstream.calls == 2


def test_inside_the_margin_one_task_refreshes_and_the_others_go_on_with_the_valid_token() -> None:
    clock = Clock()
    cache, upstream = TokenCache(clock), Upstream(clock)
    first = _in_the_margin(cache, clock, upstream)

    async def run() -> tuple[list[Token], Token]:
        started, release = asyncio.Event(), asyncio.Event()

        async def slow_refresh() -> Token:
            started.set()
            await release.wait()
            return upstream()

        leader = asyncio.create_task(cache.get_async("k", slow_refresh))
        await started.wait()
        others = [await cache.get_async("k", slow_refresh) for _ in range(5)]  # would hang if they waited
        release.set()
        return others, await leader

    others, refreshed = asyncio.run(asyncio.wait_for(run(), 5))
    assert others == [first] * 5 and refreshed.value == "token-2" and upstream.calls == 2


def test_a_cancelled_refresh_is_a_cancellation_not_a_failed_refresh(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    cache, upstream = TokenCache(clock), Upstream(clock)
    _in_the_margin(cache, clock, upstream)

    async def run() -> None:
        async def hanging() -> Token:
            await asyncio.sleep(10)
            raise AssertionError("not reached")

        task = asyncio.create_task(cache.get_async("k", hanging))
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(run())
    assert "refresh failed" not in caplog.text
    assert cache.get("k", upstream).value == "token-2"  # nothing left in flight


def test_credentials_without_a_cache_identity_cache_for_their_own_object(monkeypatch: pytest.MonkeyPatch) -> None:
    """gcloud's tokens have no identity to share a cache by: each object keeps its own, so 20
    concurrent callers cost one gcloud run, and another object never gets the first one's token."""
    import gcptoken.credentials.gcloud as gcloud
    from gcptoken.credentials import GcloudCredentials

    runs = 0

    def fake_gcloud(audience: str, *args: object) -> Token:
        nonlocal runs
        runs += 1
        time.sleep(0.2)  # every other thread is waiting on this run by now
        return Token(f"gcloud-{runs}", utc_from_epoch(time.time() + 3600))

    monkeypatch.setattr(gcloud, "id_token", fake_gcloud)
    credentials = GcloudCredentials()
    assert credentials.identity() is None
    barrier = threading.Barrier(20)

    def ask(_: int) -> str:
        barrier.wait()
        return credentials.id_token(AUD).value

    with ThreadPoolExecutor(max_workers=20) as pool:
        assert set(pool.map(ask, range(20))) == {"gcloud-1"}
    assert credentials.cached_id_token(AUD) is not None and runs == 1
    assert GcloudCredentials().id_token(AUD).value == "gcloud-2"  # another object: its own run
    assert credentials.id_token(AUD, use_cache=False).value == "gcloud-3"
