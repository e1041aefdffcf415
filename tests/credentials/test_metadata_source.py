"""The metadata-server source through the library and the CLI, over real HTTP."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from gcptoken import MetadataCredentials, TokenRequestError, TransportError, Verifier
from gcptoken.errors import InvalidArgumentError
from gcptoken.servers.serving import AsgiServer, bind
from gcptoken.testing import EmulatorClient
from tests.cli.test_cli import gcptoken
from tests.scopes import S1, S2

AUD = "https://svc-mds.a.run.app"
IDENTITY = "/computeMetadata/v1/instance/service-accounts/default/identity"


@pytest.fixture
def on_vm(emulator: EmulatorClient, monkeypatch: pytest.MonkeyPatch) -> EmulatorClient:
    monkeypatch.setenv("GCE_METADATA_HOST", emulator.host_port)
    return emulator


def identity_requests(emulator: EmulatorClient) -> int:
    return len(emulator.requests(IDENTITY))


def test_id_token_standard(on_vm: EmulatorClient, certs_url: str) -> None:
    token = MetadataCredentials().id_token(AUD)
    claims = Verifier(AUD, certs=certs_url).verify(token.value)
    assert set(claims) == {"aud", "azp", "exp", "iat", "iss", "sub"}
    assert token.expires_at.timestamp() == claims["exp"]


def test_id_token_full_with_license(on_vm: EmulatorClient, certs_url: str) -> None:
    token = MetadataCredentials("full", include_license=True).id_token(AUD)
    claims = Verifier(AUD, certs=certs_url).verify(token.value)
    assert claims["email"] == on_vm.state.default_account.email
    assert claims["google"]["compute_engine"]["license_id"]


def test_access_token_and_email(on_vm: EmulatorClient) -> None:
    credentials = MetadataCredentials()
    default = credentials.access_token()
    custom = credentials.access_token([S1, S2])
    for token, scope in ((default, "https://www.googleapis.com/auth/cloud-platform"), (custom, f"{S1} {S2}")):
        info = httpx.post(f"{on_vm.url}/tokeninfo", data={"access_token": token.value}).json()
        assert info["scope"] == scope
        assert 3590 < token.expires_in() <= 3600
    assert credentials.email() == on_vm.state.default_account.email


def test_async(on_vm: EmulatorClient, certs_url: str) -> None:
    token = asyncio.run(MetadataCredentials().id_token_async(AUD))
    assert Verifier(AUD, certs=certs_url).verify(token.value)["aud"] == AUD


def test_host_is_read_at_call_time_and_root_is_the_fallback(
    emulator: EmulatorClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    credentials = MetadataCredentials()
    monkeypatch.delenv("GCE_METADATA_HOST")
    monkeypatch.setenv("GCE_METADATA_ROOT", emulator.host_port)
    before = identity_requests(emulator)
    credentials.id_token(AUD)
    assert identity_requests(emulator) == before + 1
    monkeypatch.setenv("GCE_METADATA_HOST", "127.0.0.1:9")  # HOST wins over ROOT, read again now
    with pytest.raises(TransportError, match=r"127\.0\.0\.1:9"):
        credentials.id_token(AUD)


class Flaky:
    """A metadata server that answers ``status`` for the first ``failures`` requests, then a token."""

    def __init__(self, token: str, failures: int, status: int = 503) -> None:
        self.token, self.failures, self.status = token, failures, status
        self.hits = 0
        self.lock = threading.Lock()

    async def identity(self, request: Request) -> Response:
        with self.lock:
            self.hits += 1
            failing = self.hits <= self.failures
        if failing:
            return PlainTextResponse("unavailable", status_code=self.status, headers={"Metadata-Flavor": "Google"})
        return PlainTextResponse(self.token, headers={"Metadata-Flavor": "Google"})


@pytest.fixture
def flaky(request: pytest.FixtureRequest, on_vm: EmulatorClient, monkeypatch: pytest.MonkeyPatch) -> Iterator[Flaky]:
    failures, status = request.param
    token = MetadataCredentials().id_token(AUD).value
    server = Flaky(token, failures, status)
    with AsgiServer(Starlette(routes=[Route(IDENTITY, server.identity)]), bind("127.0.0.1", 0)) as running:
        monkeypatch.setenv("GCE_METADATA_HOST", running.host_port)
        yield server


@pytest.mark.parametrize("flaky", [(2, 503)], indirect=True)
def test_5xx_then_success_is_retried(flaky: Flaky) -> None:
    assert MetadataCredentials().id_token(AUD).value == flaky.token
    assert flaky.hits == 3


@pytest.mark.parametrize("flaky", [(100, 500)], indirect=True)
def test_retries_are_bounded(flaky: Flaky) -> None:
    with pytest.raises(TokenRequestError, match="HTTP 500") as caught:
        MetadataCredentials().id_token(AUD)
    assert caught.value.status == 500 and caught.value.retryable
    assert flaky.hits == 4  # one try and three retries


@pytest.mark.parametrize("flaky", [(1, 403)], indirect=True)
def test_refusals_are_not_retried(flaky: Flaky) -> None:
    with pytest.raises(TokenRequestError, match="HTTP 403"):
        MetadataCredentials().id_token(AUD)
    assert flaky.hits == 1


def test_connection_failures_are_retried_then_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GCE_METADATA_HOST", "127.0.0.1:9")
    with pytest.raises(TransportError, match=r"cannot reach .*: connection refused \(after 4 attempts\)"):
        MetadataCredentials().id_token(AUD)


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [(("tiny",), {}), (("standard",), {"include_license": True})],
    ids=["bad-format", "license-standard"],
)
def test_bad_options(args: tuple[str, ...], kwargs: dict[str, bool]) -> None:
    with pytest.raises(InvalidArgumentError):
        MetadataCredentials(*args, **kwargs)  # type: ignore[arg-type]


def test_cli_metadata_source(on_vm: EmulatorClient, certs_url: str) -> None:
    env = {"GCE_METADATA_HOST": on_vm.host_port}
    full = gcptoken("id", AUD, "--source", "metadata", "--token-format", "full", "--include-license", env=env)
    assert full.code == 0, full.err
    claims = Verifier(AUD, certs=certs_url).verify(full.out.strip())
    assert "license_id" in claims["google"]["compute_engine"]
    access = gcptoken("access", "--source", "metadata", env=env)
    assert access.code == 0 and access.out.startswith("ya29.")


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["id", AUD, "--token-format", "full", "--credentials", "{key}"], "only to the metadata server"),
        (["id", AUD, "--token-format", "full"], "comes from file"),  # found through GOOGLE_APPLICATION_CREDENTIALS
        (["id", AUD, "--include-license"], "needs --token-format full"),
        (["id", AUD, "--source", "metadata", "--include-license"], "needs --token-format full"),
        (["id", AUD, "--source", "metadata", "--credentials", "{key}"], "exclude each other"),
    ],
)
def test_cli_metadata_usage_errors(key_path: Path, args: list[str], fragment: str) -> None:
    result = gcptoken(
        *(arg.format(key=key_path) for arg in args), env={"GOOGLE_APPLICATION_CREDENTIALS": str(key_path)}
    )
    assert (result.code, result.out) == (2, "")
    assert len(result.err.splitlines()) == 1 and fragment in result.err


def test_cli_unreachable_metadata_fails_clearly() -> None:
    result = gcptoken("id", AUD, "--source", "metadata", env={"GCE_METADATA_HOST": "127.0.0.1:9"})
    assert result.code == 3 and result.out == ""
    assert "connection refused" in result.err and len(result.err.splitlines()) == 1
