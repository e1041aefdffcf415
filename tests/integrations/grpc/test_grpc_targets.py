"""Which audience a gRPC channel's tokens get: from the target the helpers are given, from the
service URL gRPC hands call credentials (over TLS: ``https://`` + the authority with ``:443``
dropped), or explicit; and which status a failed fetch becomes. TLS end to end on loopback."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import grpc
import grpc.aio
import pytest

from gcptoken.credentials import Credentials
from gcptoken.errors import CredentialsError, InvalidArgumentError, TokenRequestError, TransportError
from gcptoken.integrations.grpc import aio, cloud_run_channel, id_token_call_credentials, local_channel
from gcptoken.integrations.grpc.failures import status_for
from gcptoken.integrations.grpc.targets import audience_from_service_url, dial_target, parse_target
from gcptoken.testing import EmulatorClient
from tests.integrations.grpc.server import AUDIENCE, AioEcho, Echo, EchoServer, certificate, verifier_for


@pytest.mark.parametrize(
    ("given", "target", "https", "http"),
    [
        ("svc-xyz-uc.a.run.app", "svc-xyz-uc.a.run.app:443", "https://svc-xyz-uc.a.run.app", None),
        ("svc-xyz-uc.a.run.app:443", "svc-xyz-uc.a.run.app:443", "https://svc-xyz-uc.a.run.app", None),
        ("https://SVC-xyz-uc.a.run.app/", "svc-xyz-uc.a.run.app:443", "https://svc-xyz-uc.a.run.app", None),
        ("grpc.example.com:8443", "grpc.example.com:8443", "https://grpc.example.com:8443", None),
        ("dns:///grpc.example.com:8443", "grpc.example.com:8443", "https://grpc.example.com:8443", None),
        ("127.0.0.1:50051", "127.0.0.1:50051", "https://127.0.0.1:50051", "http://127.0.0.1:50051"),
        ("[::1]:50051", "[::1]:50051", "https://[::1]:50051", "http://[::1]:50051"),
        ("ipv6:[::1]:443", "[::1]:443", "https://[::1]", "http://[::1]:443"),
        ("svc-xyz-uc.a.run.app.", "svc-xyz-uc.a.run.app:443", "https://svc-xyz-uc.a.run.app", None),  # as dig prints it
        ("svc.a.run.app.:8443", "svc.a.run.app:8443", "https://svc.a.run.app:8443", None),
        ("dns://8.8.8.8/grpc.example.com:443", "grpc.example.com:443", "https://grpc.example.com", None),
    ],
)
def test_a_target_and_its_audience(given: str, target: str, https: str, http: str | None) -> None:
    parsed = parse_target(given)
    assert parsed.target == target and parsed.audience("https") == https
    if http is not None:
        assert parsed.audience("http") == http


@pytest.mark.parametrize(
    "given",
    [
        *(
            "",
            "   ",
            "unix:/tmp/grpc.sock",
            "http://svc.a.run.app",
            "https://svc/v1/items",
            "svc:0",
            "svc:70000",
            "a b",
        ),
        *("-", "..", "-svc", "svc-", "a..b", ".svc", "svc..", "xds:///svc", "ipv4:10.0.0.1:443,10.0.0.2:443"),
    ],
)
def test_a_target_without_a_host_and_port_is_refused_in_one_line(given: str) -> None:
    with pytest.raises(
        InvalidArgumentError, match=r"^host must be HOST, HOST:PORT or https://HOST\[:PORT\] to take the"
    ):
        cloud_run_channel(given)  # refused before any channel exists
    with pytest.raises(InvalidArgumentError, match=r"^target must be"):
        local_channel(given)
    with pytest.raises(InvalidArgumentError, match=r"pass audience=$"):
        aio.local_channel(given)


@pytest.mark.parametrize(
    ("given", "dialed"),
    [
        ("unix:/run/svc.sock", "unix:/run/svc.sock"),
        ("xds:///svc.example", "xds:///svc.example"),
        ("ipv4:10.0.0.1:443,10.0.0.2:443", "ipv4:10.0.0.1:443,10.0.0.2:443"),
        ("https://svc.a.run.app", "svc.a.run.app:443"),  # still read when it can be
    ],
)
def test_with_an_audience_any_grpc_target_is_dialed_as_given(given: str, dialed: str) -> None:
    assert dial_target(given, "https://svc.a.run.app", "https") == (dialed, "https://svc.a.run.app")


def test_a_local_channel_reaches_a_unix_socket_with_an_audience(
    emulator: EmulatorClient, credentials: Credentials, tmp_path: Path
) -> None:
    echo = EchoServer(verifier_for(emulator.url))
    socket = f"unix:{tmp_path}/echo.sock"
    echo.server.add_secure_port(socket, grpc.local_server_credentials(grpc.LocalConnectionType.UDS))
    with echo, local_channel(socket, credentials, audience=AUDIENCE) as channel:
        assert Echo(channel).unary(b"uds", timeout=10) == b"unary:uds"
    assert echo.interceptor.accepted[-1]["aud"] == AUDIENCE


@pytest.mark.parametrize(
    ("service_url", "audience"),
    [
        ("https://svc.a.run.app/pkg.Svc", "https://svc.a.run.app"),
        ("https://SVC.A.run.app:8443/pkg.v1.Svc", "https://svc.a.run.app:8443"),
        ("https://[::1]/pkg.Svc", "https://[::1]"),
        ("https://svc.a.run.app./pkg.Svc", "https://svc.a.run.app"),
        ("https://svc.a.run.app.:8443/pkg.Svc", "https://svc.a.run.app:8443"),
        ("://127.0.0.1:50051/pkg.Svc", "http://127.0.0.1:50051"),  # local credentials: no scheme
    ],
)
def test_the_audience_from_a_calls_service_url(service_url: str, audience: str) -> None:
    assert audience_from_service_url(service_url) == audience


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (TransportError("cannot reach oauth2.googleapis.com"), grpc.StatusCode.UNAVAILABLE),
        *((TokenRequestError("busy", status=status), grpc.StatusCode.UNAVAILABLE) for status in (429, 502, 503, 504)),
        *((TokenRequestError("no", status=status), grpc.StatusCode.UNAUTHENTICATED) for status in (400, 401, 403, 500)),
        (CredentialsError("no credentials found"), grpc.StatusCode.UNAUTHENTICATED),
    ],
)
def test_a_failed_fetch_gets_the_status_grfc_a83_gives(error: Exception, code: grpc.StatusCode) -> None:
    assert status_for(error) == code  # type: ignore[arg-type]


# -- over TLS, as to Cloud Run --------------------------------------------------------------------------

NAMES = ("localhost", "svc.a.run.app")
KEY, CERT = certificate(*NAMES)


@pytest.fixture(scope="module")
def tls_server(gcptoken_emulator: EmulatorClient) -> Iterator[EchoServer]:
    verifier = verifier_for(gcptoken_emulator.url)
    with EchoServer(verifier, tls=(KEY, CERT)) as server:
        audiences = [f"https://localhost:{server.port}", "https://svc.a.run.app", "https://svc.a.run.app:8443"]
        server.interceptor.verifier = verifier_for(gcptoken_emulator.url, *audiences, "https://[::1]")
        yield server


def test_cloud_run_channels_speak_tls_with_the_hosts_audience(tls_server: EchoServer, credentials: Credentials) -> None:
    with cloud_run_channel(f"localhost:{tls_server.port}", credentials, root_certificates=CERT) as channel:
        assert Echo(channel).unary(b"tls", timeout=10) == b"unary:tls"

    async def aio_call() -> bytes:
        async with aio.cloud_run_channel(
            f"localhost:{tls_server.port}", credentials, root_certificates=CERT
        ) as channel:
            answer: bytes = await AioEcho(channel).unary(b"aio", timeout=10)
            return answer

    assert asyncio.run(aio_call()) == b"unary:aio"
    assert [claims["aud"] for claims in tls_server.interceptor.accepted[-2:]] == [
        f"https://localhost:{tls_server.port}"
    ] * 2


@pytest.mark.parametrize(
    ("authority", "audience"),
    [
        ("svc.a.run.app:443", "https://svc.a.run.app"),
        ("svc.a.run.app", "https://svc.a.run.app"),
        ("SVC.A.run.app:443", "https://svc.a.run.app"),
        ("svc.a.run.app:8443", "https://svc.a.run.app:8443"),
        ("[::1]:443", "https://[::1]"),
    ],
)
def test_call_credentials_read_the_audience_from_the_authority_grpc_calls(
    authority: str, audience: str, tls_server: EchoServer, credentials: Credentials
) -> None:
    """The service URL is grpc's own (the authority, :443 dropped over TLS), so is the audience."""
    composite = grpc.composite_channel_credentials(
        grpc.ssl_channel_credentials(CERT), id_token_call_credentials(credentials)
    )
    options = [("grpc.default_authority", authority), ("grpc.ssl_target_name_override", "svc.a.run.app")]
    with grpc.secure_channel(tls_server.target, composite, options) as channel:
        Echo(channel).unary(b"", timeout=10)
    assert tls_server.interceptor.accepted[-1]["aud"] == audience
