"""gRPC with ID tokens, sync: gcptoken's channels against a real grpcio server on loopback whose
interceptor verifies every call's token with the Verifier against the emulator's keys."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from concurrent import futures
from typing import Any

import grpc
import pytest

from gcptoken.cache.memory import default_cache
from gcptoken.credentials import Credentials, credentials_from_info
from gcptoken.emulator import EmulatorServer
from gcptoken.emulator.state.state import EmulatorState
from gcptoken.integrations.grpc import authorized_channel, id_token_call_credentials, local_channel, local_credentials
from gcptoken.testing import CLOSED_LOOPBACK, EmulatorClient
from tests.clock import Clock
from tests.integrations.grpc.server import (
    AUDIENCE,
    UNARY,
    Echo,
    EchoServer,
    SlowTokenEndpoint,
    details,
    verifier_for,
)


def fetches(emulator: EmulatorClient, key_info: dict[str, str]) -> int:
    return len(emulator.token_requests_by(key_info["client_email"]))


def test_every_kind_of_rpc_carries_a_token_the_server_verifies(
    server: EchoServer, credentials: Credentials, emulator: EmulatorClient, key_info: dict[str, str]
) -> None:
    with local_channel(server.target, credentials, audience=AUDIENCE) as channel:
        assert Echo(channel).unary(b"hi", timeout=10) == b"unary:hi"
        assert list(Echo(channel).server_stream(b"3", timeout=10)) == [b"0", b"1", b"2"]
        assert Echo(channel).client_stream(iter([b"a", b"b"]), timeout=10) == b"a+b"
        assert list(Echo(channel).bidi(iter([b"x", b"y"]), timeout=10)) == [b"echo:x", b"echo:y"]
    accepted = server.interceptor.accepted
    assert [claims["aud"] for claims in accepted] == [AUDIENCE] * 4
    assert {claims["email"] for claims in accepted} == {key_info["client_email"]}
    assert fetches(emulator, key_info) == 1  # one token for all four calls


def test_the_audience_defaults_to_the_target_and_a_wrong_one_is_refused(
    server: EchoServer, credentials: Credentials
) -> None:
    with local_channel(server.target, credentials) as channel:
        Echo(channel).unary(b"", timeout=10)
    assert server.interceptor.accepted[-1]["aud"] == f"http://{server.target}"
    wrong = local_channel(server.target, credentials, audience="https://another-uc.a.run.app")
    with wrong as channel, pytest.raises(grpc.RpcError) as refused:
        Echo(channel).unary(b"", timeout=10)
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "audience" in details(refused.value)


def test_a_refused_token_fetch_fails_the_rpc_with_unauthenticated_and_the_channel_stays_usable(
    server: EchoServer, emulator: EmulatorClient, key_info: dict[str, str]
) -> None:
    with SlowTokenEndpoint(f"{emulator.url}/token", refuse=3) as endpoint:
        credentials = credentials_from_info({**key_info, "token_uri": endpoint.url}, "test key")
        with local_channel(server.target, credentials, audience=AUDIENCE) as channel:
            with pytest.raises(grpc.RpcError) as unary:
                Echo(channel).unary(b"", timeout=10)
            stream = Echo(channel).server_stream(b"2", timeout=10)
            with pytest.raises(grpc.RpcError) as streamed:
                next(stream)
            assert stream.code() == grpc.StatusCode.UNAUTHENTICATED
            future = Echo(channel).client_stream.future(iter([b"a"]), timeout=10)  # the third fetch: refused too
            assert future.code() == grpc.StatusCode.UNAUTHENTICATED and future.done()
            with pytest.raises(grpc.RpcError):
                future.result()
            assert Echo(channel).unary(b"again", timeout=10) == b"unary:again"  # the fourth fetch works
    for error in (unary.value, streamed.value):
        assert error.code() == grpc.StatusCode.UNAUTHENTICATED
        assert details(error) == (
            f"gcptoken: no ID token for {AUDIENCE}: token endpoint {endpoint.url} refused the request "
            "(HTTP 400): invalid_grant: Invalid grant: account not found"
        )
    assert server.interceptor.refused == []  # nothing reached the server without a token


class Recording(grpc.UnaryUnaryClientInterceptor):
    """A caller's own interceptor, as a logging one would be: it keeps the metadata it saw."""

    def __init__(self) -> None:
        self.seen: list[list[tuple[str, str | bytes]]] = []

    def intercept_unary_unary(self, continuation: Any, details: grpc.ClientCallDetails, request: Any) -> Any:
        self.seen.append(list(details.metadata or ()))
        return continuation(details, request)


def test_the_callers_metadata_stays_their_interceptors_never_see_the_token_and_any_channel_can_be_wrapped(
    server: EchoServer, credentials: Credentials
) -> None:
    recording = Recording()
    mine = (("x-request-id", "42"), ("authorization", "Bearer not-a-token"))  # the token replaces the latter
    with local_channel(server.target, credentials, audience=AUDIENCE, interceptors=[recording]) as channel:
        for _ in range(3):  # the first call fetches, the others find the token cached
            answer, call = Echo(channel).unary.with_call(b"", timeout=10, metadata=mine)
            assert answer == b"unary:" and call.code() == grpc.StatusCode.OK
    assert recording.seen == [list(mine)] * 3 and server.interceptor.refused == []
    assert len(server.interceptor.accepted) == 3
    server.interceptor.accepted.clear()
    # A channel built by hand (any channel credentials) wrapped as the helpers wrap theirs:
    with authorized_channel(grpc.secure_channel(server.target, local_credentials()), AUDIENCE, credentials) as channel:
        assert Echo(channel).unary.future(b"f", timeout=10).result() == b"unary:f"
        # as code generated by grpcio-tools calls it:
        generated = channel.unary_unary(
            UNARY, request_serializer=bytes, response_deserializer=bytes, _registered_method=True
        )
        assert generated(b"g", timeout=10) == b"unary:g"
    assert [claims["aud"] for claims in server.interceptor.accepted] == [AUDIENCE] * 2


def test_network_trouble_fetching_a_token_is_unavailable(server: EchoServer, key_info: dict[str, str]) -> None:
    credentials = credentials_from_info({**key_info, "token_uri": f"http://{CLOSED_LOOPBACK}/token"}, "test key")
    channel = local_channel(server.target, credentials, audience=AUDIENCE)
    with channel, pytest.raises(grpc.RpcError) as failed:
        Echo(channel).unary.with_call(b"", timeout=10)
    assert failed.value.code() == grpc.StatusCode.UNAVAILABLE
    assert details(failed.value).startswith(f"gcptoken: no ID token for {AUDIENCE}: POST http://{CLOSED_LOOPBACK}")
    assert "PRIVATE KEY" not in details(failed.value)


def test_100_concurrent_rpcs_cost_one_token_fetch(
    server: EchoServer, emulator: EmulatorClient, key_info: dict[str, str]
) -> None:
    with SlowTokenEndpoint(f"{emulator.url}/token", delay=0.3) as endpoint:
        credentials = credentials_from_info({**key_info, "token_uri": endpoint.url}, "test key")
        start = threading.Barrier(100)
        with local_channel(server.target, credentials, audience=AUDIENCE) as channel:
            call = Echo(channel).unary

            def one(index: int) -> bytes:
                start.wait()
                return call(b"%d" % index, timeout=10)

            with futures.ThreadPoolExecutor(max_workers=100) as pool:
                answers = list(pool.map(one, range(100)))
    assert answers == [b"unary:%d" % index for index in range(100)]
    assert endpoint.hits == 1 and fetches(emulator, key_info) == 1


def test_call_credentials_take_the_audience_from_the_call(
    server: EchoServer, credentials: Credentials, key_info: dict[str, str]
) -> None:
    composite = grpc.composite_channel_credentials(local_credentials(), id_token_call_credentials(credentials))
    with grpc.secure_channel(server.target, composite) as channel:
        assert Echo(channel).unary(b"", timeout=10) == b"unary:"
        # One call with other credentials: an explicit audience.
        explicit = id_token_call_credentials(credentials, audience=AUDIENCE)
        assert list(Echo(channel).server_stream(b"1", timeout=10, credentials=explicit)) == [b"0"]
    assert [claims["aud"] for claims in server.interceptor.accepted] == [f"http://{server.target}", AUDIENCE]


def test_call_credentials_that_cannot_fetch_are_unavailable_as_grpc_core_says(
    server: EchoServer, key_info: dict[str, str]
) -> None:
    broken = credentials_from_info({**key_info, "token_uri": f"http://{CLOSED_LOOPBACK}/token"}, "test key")
    composite = grpc.composite_channel_credentials(local_credentials(), id_token_call_credentials(broken))
    with grpc.secure_channel(server.target, composite) as channel, pytest.raises(grpc.RpcError) as failed:
        Echo(channel).unary(b"", timeout=10)
    assert failed.value.code() == grpc.StatusCode.UNAVAILABLE  # every plugin failure, in gRPC core
    assert details(failed.value).startswith(
        f"Getting metadata from plugin failed with error: gcptoken: no ID token for http://{server.target}: "
    )


# -- a stream that outlives its token -----------------------------------------------------------------


@pytest.fixture(scope="module")
def clock() -> Clock:
    return Clock()


@pytest.fixture(scope="module")
def clocked_emulator(clock: Clock) -> Iterator[EmulatorServer]:
    with EmulatorServer(EmulatorState(clock=clock)) as emulator:
        yield emulator


def test_a_stream_outlives_its_token_and_the_next_call_gets_a_fresh_one(
    clocked_emulator: EmulatorServer, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(default_cache(), "clock", clock)  # the client's cache lives on the test clock too
    key = clocked_emulator.key_file("grpc-stream")
    credentials = credentials_from_info(key, "test key")
    outbox: queue.Queue[bytes | None] = queue.Queue()
    with (
        EchoServer(verifier_for(clocked_emulator.url), clock=clock) as server,
        local_channel(server.target, credentials, audience=AUDIENCE) as channel,
    ):
        stream = Echo(channel).bidi(iter(outbox.get, None), timeout=30)
        outbox.put(b"1")
        assert next(stream) == b"echo:1"
        first = server.interceptor.accepted[-1]
        clock.offset += first["exp"] - first["iat"] + 120  # past the token's expiry and the verifier's skew
        outbox.put(b"2")
        assert next(stream) == b"echo:2"  # the open stream goes on: it was authorized when it began
        with grpc.secure_channel(server.target, local_credentials()) as bare, pytest.raises(grpc.RpcError) as stale:
            Echo(bare).unary(b"", timeout=10, metadata=(("authorization", f"Bearer {first['token']}"),))
        assert stale.value.code() == grpc.StatusCode.UNAUTHENTICATED  # a new call with that token: refused
        assert Echo(channel).unary(b"later", timeout=10) == b"unary:later"
        outbox.put(None)
        assert list(stream) == []
    second = server.interceptor.accepted[-1]
    assert second["token"] != first["token"] and second["iat"] > first["exp"]
    tokens = [entry for entry in clocked_emulator.state.request_log() if entry["path"] == "/token"]
    assert len(tokens) == 2
