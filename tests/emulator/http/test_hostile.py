"""The emulator under hostile clients: bodies over the limit refused while they arrive, deep JSON
nesting a 400, fault fields validated, disconnects not logged as errors, no 500 from any request;
and the "response lost" fault, after which a client's retry still ends well."""

from __future__ import annotations

import json
import logging
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gcptoken import ImpersonatedCredentials, Verifier, load_credentials
from gcptoken.emulator.http.responses import MAX_BODY
from gcptoken.testing import EmulatorClient
from tests.cli.test_cli import gcptoken

AUD = "https://svc-hostile.a.run.app"
JSON_PATHS = [
    "/emulator/v1/serviceAccounts",
    "/emulator/v1/faults",
    "/emulator/v1/users",
    "/emulator/v1/oidc/tokens",
    "/emulator/v1/iap/assertions",
    "/emulator/v1/firebase/tokens",
    "/emulator/v1/workloadIdentityPools/providers",
    "/emulator/v1/policies/credentialLifetimeExtension",
]
FORM_PATHS = ["/token", "/oauth2/v4/token", "/v1/token", "/tokeninfo", "/oauth2/v3/tokeninfo"]


class Errors(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def server_errors() -> Iterator[list[logging.LogRecord]]:
    """What the emulator and its server log at WARNING or above while the test runs."""
    handler = Errors()
    loggers = [logging.getLogger(name) for name in ("gcptoken.emulator", "uvicorn.error", "uvicorn")]
    for logger in loggers:
        logger.addHandler(handler)
    try:
        yield handler.records
    finally:
        for logger in loggers:
            logger.removeHandler(handler)


JSON_TYPE = {"Content-Type": "application/json"}  # the admin API takes nothing else


def _raw(emulator: EmulatorClient, request: bytes, read: bool = True) -> bytes:
    host, port = emulator.host_port.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as connection:
        connection.sendall(request)
        if not read:
            return b""
        return connection.recv(65536)


def test_a_huge_declared_body_is_refused_before_it_is_read(emulator: EmulatorClient) -> None:
    for path in ("/token", "/emulator/v1/serviceAccounts"):
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {emulator.host_port}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {512 * 1024 * 1024}\r\n\r\n"
        )
        answer = _raw(emulator, head.encode() + b"{}")  # 2 of 512 MiB sent: the answer must not wait for more
        assert answer.startswith(b"HTTP/1.1 413"), answer[:200]


def test_a_streamed_body_over_the_limit_is_cut_off(emulator: EmulatorClient) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(64):
            yield b"a" * (MAX_BODY // 16)

    response = httpx.post(
        f"{emulator.url}/emulator/v1/serviceAccounts", content=chunks(), timeout=30, headers=JSON_TYPE
    )
    assert response.status_code == 413 and response.json()["error"]["code"] == 413
    ok = httpx.post(f"{emulator.url}/emulator/v1/serviceAccounts", json={"accountId": "after-the-flood"})
    assert ok.status_code == 201  # and the emulator is fine


@pytest.mark.parametrize("path", JSON_PATHS)
def test_deep_json_nesting_is_a_400(emulator: EmulatorClient, path: str, server_errors: list[Any]) -> None:
    deep = "[" * 50_000 + "]" * 50_000
    method = "PUT" if path.startswith("/emulator/v1/policies/") else "POST"
    for body in (deep, f'{{"claims": {deep}, "email": "a@b.c"}}'):
        response = httpx.request(
            method, f"{emulator.url}{path}", content=body, headers={"Content-Type": "application/json"}
        )
        assert response.status_code == 400, (path, response.status_code, response.text[:200])
    assert server_errors == []


def test_deep_nesting_inside_iam_payloads_and_jwks_is_a_400(emulator: EmulatorClient, key_info: dict[str, str]) -> None:
    deep = "[" * 50_000 + "]" * 50_000
    provider = {"poolId": "deep-pool", "providerId": "deep-prov", "issuerUri": "https://x.example", "jwksJson": deep}
    assert httpx.post(f"{emulator.url}/emulator/v1/workloadIdentityPools/providers", json=provider).status_code == 400
    access = load_credentials_from(key_info).access_token().value
    email = key_info["client_email"]
    emulator.state.grant_token_creator(email, f"serviceAccount:{email}")
    url = f"{emulator.url}/v1/projects/-/serviceAccounts/{email}:signJwt"
    answer = httpx.post(url, json={"payload": deep}, headers={"Authorization": f"Bearer {access}"})
    assert answer.status_code == 400


def load_credentials_from(key_info: dict[str, str]) -> Any:
    from gcptoken.credentials import credentials_from_info

    return credentials_from_info(dict(key_info), "test key")


BAD_FAULTS: list[dict[str, Any] | str] = [
    "[1, 2]",
    '{"path": "/token", "delay": NaN}',
    '{"path": "/token", "delay": Infinity}',
    {"path": "/token", "delay": 1e9},
    {"path": "/token", "delay": 301},
    {"path": "/token", "delay": -1},
    {"path": "/token", "delay": "5"},
    {"path": "/token", "delay": True},
    {"path": "/token", "status": 99},
    {"path": "/token", "status": 600},
    {"path": "/token", "status": True},
    {"path": "/token", "status": "503"},
    {"path": "/token", "status": 503.0},
    {"path": "/token", "status": 503, "count": 0},
    {"path": "/token", "status": 503, "count": -1},
    {"path": "/token", "status": 503, "count": 1.5},
    {"path": "/token", "status": 503, "count": True},
    {"path": "/token", "status": 503, "count": "2"},
    {"path": "/token", "status": 503, "count": 10**30},
    {"status": 503},
    {"path": 5, "status": 503},
    {"path": "token", "status": 503},
    {"path": "/token", "drop": "yes"},
    {"path": "/token", "lose_response": 1},
    {"path": "/token"},
]


@pytest.mark.parametrize("fault", BAD_FAULTS, ids=[str(i) for i in range(len(BAD_FAULTS))])
def test_faults_validate_their_fields(emulator: EmulatorClient, fault: dict[str, Any] | str) -> None:
    body = fault if isinstance(fault, str) else json.dumps(fault)
    response = httpx.post(f"{emulator.url}/emulator/v1/faults", content=body, headers=JSON_TYPE)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["message"]
    assert httpx.get(f"{emulator.url}/emulator/v1/faults").json()["faults"] == []


def test_a_client_that_goes_away_is_not_an_error(emulator: EmulatorClient, server_errors: list[Any]) -> None:
    head = f"POST /token HTTP/1.1\r\nHost: {emulator.host_port}\r\n".encode()
    head += b"Content-Type: application/x-www-form-urlencoded\r\n"
    _raw(emulator, head + b"Content-Length: 1000\r\n\r\ngrant_type=", read=False)  # closes mid-body
    httpx.post(f"{emulator.url}/emulator/v1/faults", json={"path": "/oauth2/v1/certs", "delay": 2})
    with pytest.raises(httpx.ReadTimeout):
        httpx.get(f"{emulator.url}/oauth2/v1/certs", timeout=0.3)  # gives up while the server waits
    time.sleep(2.5)
    assert httpx.get(f"{emulator.url}/emulator/v1/info").status_code == 200
    assert server_errors == [], [r.getMessage() for r in server_errors]


# Anything at all, to anything at all: never a 500.
BODIES = st.one_of(
    st.binary(max_size=300),
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
        max_leaves=12,
    ).map(lambda value: json.dumps(value).encode()),
    st.dictionaries(
        st.sampled_from(["grant_type", "assertion", "audience", "subject_token", "refresh_token", "token", "x"]),
        st.text(max_size=40),
    ).map(lambda form: httpx.QueryParams(form).__str__().encode()),
)


@pytest.fixture(scope="module")
def one_client() -> Iterator[httpx.Client]:
    """One client for the 400 examples: a new one each time costs more than the request."""
    with httpx.Client() as client:
        yield client


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    path=st.sampled_from(JSON_PATHS + FORM_PATHS + ["/v1/projects/-/serviceAccounts/a@b:generateIdToken"]), body=BODIES
)
def test_no_request_gets_a_500(emulator: EmulatorClient, one_client: httpx.Client, path: str, body: bytes) -> None:
    headers = {"Authorization": "Bearer ya29.not-a-token", "Content-Type": "application/json"}
    method = "PUT" if path.startswith("/emulator/v1/policies/") else "POST"
    response = one_client.request(method, f"{emulator.url}{path}", content=body, headers=headers)
    assert response.status_code < 500, (path, body[:100], response.text[:300])


def test_no_500_was_recorded(emulator: EmulatorClient) -> None:
    assert [entry for entry in emulator.requests() if entry["status"] == 500] == []


# -- a response lost on the way back ----------------------------------------------------------------


def test_a_lost_token_response_is_retried_and_the_retry_wins(
    emulator: EmulatorClient, key_path: Path, key_info: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GCPTOKEN_EMULATOR_HOST", emulator.host_port)
    httpx.post(f"{emulator.url}/emulator/v1/faults", json={"path": "/token", "lose_response": True})
    token = load_credentials(key_path).id_token(AUD)
    calls = emulator.token_requests_by(key_info["client_email"])
    assert len(calls) == 2  # the first was carried out; its answer was lost
    assert calls[0]["detail"]["fault"] == {"path": "/token", "count": 0, "lose_response": True}
    claims = Verifier(AUD, certs=f"{emulator.url}/oauth2/v3/certs").verify(token.value)
    assert claims["email"] == key_info["client_email"]


def test_a_lost_response_in_the_cli_and_through_impersonation(
    emulator: EmulatorClient, key_path: Path, key_info: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GCPTOKEN_EMULATOR_HOST", emulator.host_port)
    target = emulator.new_key("lost-target")["client_email"]
    emulator.state.grant_token_creator(target, f"serviceAccount:{key_info['client_email']}")
    path = f"/v1/projects/-/serviceAccounts/{target}:generateIdToken"
    httpx.post(f"{emulator.url}/emulator/v1/faults", json={"path": path, "lose_response": True})
    token = ImpersonatedCredentials(load_credentials(key_path), target).id_token(AUD)
    assert len(emulator.requests(path)) == 2
    assert Verifier(AUD, certs=f"{emulator.url}/oauth2/v3/certs").verify(token.value)["sub"]
    httpx.post(f"{emulator.url}/emulator/v1/faults", json={"path": "/token", "lose_response": True})
    env = {"GCPTOKEN_EMULATOR_HOST": emulator.host_port, "GOOGLE_APPLICATION_CREDENTIALS": str(key_path)}
    result = gcptoken("id", "https://svc-lost-cli.a.run.app", "--no-cache", env=env)
    assert result.code == 0 and result.err == "" and result.out.count(".") == 2
