"""external_account (workload identity federation) from the library and the CLI, against the emulator."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from gcptoken import (
    CredentialsError,
    FederatedCredentials,
    ImpersonatedCredentials,
    TokenRequestError,
    Verifier,
    load_credentials,
)
from gcptoken.servers.serving import AsgiServer, bind
from gcptoken.testing import EmulatorClient
from tests.cli.test_cli import gcptoken
from tests.emulator.sts.test_federation import JWT_TYPE, Federation

AUD = "https://svc-ext.a.run.app"


@pytest.fixture
def federation(emulator: EmulatorClient) -> Federation:
    return Federation(emulator)


@pytest.fixture
def target(emulator: EmulatorClient, federation: Federation) -> str:
    email = emulator.new_key("ext-target")["client_email"]
    emulator.state.grant_token_creator(email, f"principal:{federation.pool_resource}/subject/workload-1")
    return email


def config(
    emulator: EmulatorClient, federation: Federation, source: dict[str, Any], target: str | None
) -> dict[str, Any]:
    info: dict[str, Any] = {
        "type": "external_account",
        "audience": federation.audience,
        "subject_token_type": JWT_TYPE,
        "token_url": f"{emulator.url}/v1/token",
        "credential_source": source,
    }
    if target:
        info["service_account_impersonation_url"] = (
            f"{emulator.url}/v1/projects/-/serviceAccounts/{target}:generateAccessToken"
        )
    return info


def write(tmp_path: Path, info: dict[str, Any], name: str = "external.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(info))
    return path


def sts_calls(emulator: EmulatorClient) -> int:
    return len(emulator.requests("/v1/token"))


@pytest.mark.parametrize("form", ["text", "json"])
def test_file_source_id_and_access_tokens(
    emulator: EmulatorClient, federation: Federation, target: str, tmp_path: Path, certs_url: str, form: str
) -> None:
    token = federation.subject_token()
    token_file = tmp_path / "subject"
    if form == "json":
        token_file.write_text(json.dumps({"id_token": token}))
        source = {"file": str(token_file), "format": {"type": "json", "subject_token_field_name": "id_token"}}
    else:
        token_file.write_text(token + "\n")
        source = {"file": str(token_file)}
    credentials = load_credentials(write(tmp_path, config(emulator, federation, source, target)))
    assert isinstance(credentials, ImpersonatedCredentials)
    before = sts_calls(emulator)
    claims = Verifier(AUD, certs=certs_url).verify(credentials.id_token(AUD).value)
    assert claims["sub"] == emulator.state.service_accounts[target].unique_id
    assert credentials.access_token().value.startswith("ya29.")
    assert sts_calls(emulator) == before + 1  # the federated token is cached for its lifetime


def test_without_impersonation_access_tokens_are_federated_and_id_tokens_refused(
    emulator: EmulatorClient, federation: Federation, tmp_path: Path
) -> None:
    (tmp_path / "subject").write_text(federation.subject_token())
    credentials = load_credentials(
        write(tmp_path, config(emulator, federation, {"file": str(tmp_path / "subject")}, None))
    )
    assert isinstance(credentials, FederatedCredentials)
    assert credentials.access_token().value.startswith("ya29.")
    with pytest.raises(CredentialsError, match="impersonating a service account"):
        credentials.id_token(AUD)


@pytest.fixture
def token_url_server(federation: Federation) -> Iterator[tuple[str, list[dict[str, str]]]]:
    seen: list[dict[str, str]] = []
    token = federation.subject_token()

    async def serve(request: Request) -> Response:
        seen.append(dict(request.headers))
        return PlainTextResponse(json.dumps({"value": token}))

    with AsgiServer(Starlette(routes=[Route("/token", serve)]), bind("127.0.0.1", 0)) as server:
        yield f"{server.url}/token", seen


def test_url_source_with_headers_and_json(
    emulator: EmulatorClient,
    federation: Federation,
    target: str,
    tmp_path: Path,
    certs_url: str,
    token_url_server: tuple[str, list[dict[str, str]]],
) -> None:
    url, seen = token_url_server
    source = {
        "url": url,
        "headers": {"Metadata": "True"},
        "format": {"type": "json", "subject_token_field_name": "value"},
    }
    credentials = load_credentials(write(tmp_path, config(emulator, federation, source, target)))
    assert Verifier(AUD, certs=certs_url).verify(credentials.id_token(AUD).value)["aud"] == AUD
    assert seen and seen[0]["metadata"] == "True"


def executable_script(tmp_path: Path, response: dict[str, Any], counter: Path) -> str:
    script = tmp_path / "token-helper.py"
    script.write_text(
        "import json, os, pathlib, sys\n"
        f"counter = pathlib.Path({str(counter)!r})\n"
        "counter.write_text(str(int(counter.read_text() or 0) + 1) if counter.exists() else '1')\n"
        f"response = {json.dumps(response)!r}\n"
        "assert os.environ['GOOGLE_EXTERNAL_ACCOUNT_INTERACTIVE'] == '0'\n"
        "assert 'GCPTOKEN_KEY_PIN' not in os.environ  # a hardware key's PIN is none of its business\n"
        "output = os.environ.get('GOOGLE_EXTERNAL_ACCOUNT_OUTPUT_FILE')\n"
        "if output:\n    pathlib.Path(output).write_text(response)\n"
        "sys.stdout.write(response)\n"
    )
    return f"{sys.executable} {script}"


def test_executable_source_with_output_file_cache(
    emulator: EmulatorClient,
    federation: Federation,
    target: str,
    tmp_path: Path,
    certs_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    response = {
        "version": 1,
        "success": True,
        "token_type": JWT_TYPE,
        "id_token": federation.subject_token(),
        "expiration_time": int(time.time()) + 3600,
    }
    counter = tmp_path / "runs"
    spec = {
        "command": executable_script(tmp_path, response, counter),
        "timeout_millis": 10000,
        "output_file": str(tmp_path / "cache.json"),
    }
    path = write(tmp_path, config(emulator, federation, {"executable": spec}, target))
    with pytest.raises(CredentialsError, match="GOOGLE_EXTERNAL_ACCOUNT_ALLOW_EXECUTABLES=1"):
        load_credentials(path).id_token(AUD)
    monkeypatch.setenv("GOOGLE_EXTERNAL_ACCOUNT_ALLOW_EXECUTABLES", "1")
    monkeypatch.setenv("GCPTOKEN_KEY_PIN", "pin-never-passed-on")
    assert Verifier(AUD, certs=certs_url).verify(load_credentials(path).id_token(AUD).value)["aud"] == AUD
    assert load_credentials(path).access_token().value.startswith("ya29.")  # a new object: cache file used
    assert counter.read_text() == "1"


@pytest.mark.parametrize(
    ("response", "fragment"),
    [
        ({"version": 1, "success": False, "code": "401", "message": "no login"}, "reported failure 401: no login"),
        ({"version": 2, "success": True}, "version 1"),
        ({"version": 1, "success": True, "token_type": JWT_TYPE}, "has no token"),
        ({"version": 1, "success": True, "token_type": JWT_TYPE, "id_token": "x", "expiration_time": 1}, "expired"),
    ],
)
def test_executable_failures(
    emulator: EmulatorClient,
    federation: Federation,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    response: dict[str, Any],
    fragment: str,
) -> None:
    monkeypatch.setenv("GOOGLE_EXTERNAL_ACCOUNT_ALLOW_EXECUTABLES", "1")
    spec = {"command": executable_script(tmp_path, response, tmp_path / "runs")}
    path = write(tmp_path, config(emulator, federation, {"executable": spec}, None))
    with pytest.raises(CredentialsError, match=fragment):
        load_credentials(path).access_token()


@pytest.mark.parametrize(
    ("change", "error"),
    [("expired", "invalid_grant"), ("wrong-audience", "invalid_grant"), ("badly-signed", "invalid_grant")],
)
def test_sts_refusals_reach_the_caller(
    emulator: EmulatorClient, federation: Federation, tmp_path: Path, change: str, error: str
) -> None:
    if change == "expired":
        token = federation.subject_token(lifetime=-60)
    elif change == "wrong-audience":
        token = federation.subject_token(aud="https://elsewhere")
    else:
        head, payload, signature = federation.subject_token().split(".")
        token = f"{head}.{payload}.{signature[::-1]}"
    (tmp_path / "subject").write_text(token)
    credentials = load_credentials(
        write(tmp_path, config(emulator, federation, {"file": str(tmp_path / "subject")}, None))
    )
    with pytest.raises(TokenRequestError) as caught:
        credentials.access_token()
    assert caught.value.status == 400 and caught.value.error == error


def test_condition_and_missing_binding(emulator: EmulatorClient, tmp_path: Path, certs_url: str) -> None:
    federation = Federation(emulator, attributeCondition="assertion.repo == 'org/app'")
    target = emulator.new_key("ext-unbound")["client_email"]
    (tmp_path / "subject").write_text(federation.subject_token(repo="org/app"))
    credentials = load_credentials(
        write(tmp_path, config(emulator, federation, {"file": str(tmp_path / "subject")}, target))
    )
    with pytest.raises(TokenRequestError, match="PERMISSION_DENIED"):
        credentials.id_token(AUD)  # no workloadIdentityUser / Token Creator binding yet
    emulator.state.grant_token_creator(target, f"principalSet:{federation.pool_resource}/*")
    assert Verifier(AUD, certs=certs_url).verify(credentials.id_token(AUD).value)
    (tmp_path / "subject").write_text(federation.subject_token(repo="org/other"))
    fresh = load_credentials(write(tmp_path, config(emulator, federation, {"file": str(tmp_path / "subject")}, target)))
    with pytest.raises(TokenRequestError, match="attribute condition"):
        fresh.id_token(AUD, use_cache=False)  # the cache would rightly serve the earlier token


@pytest.mark.parametrize(
    ("info", "fragment"),
    [
        (
            {"credential_source": {"environment_id": "aws1", "region_url": "x"}},
            "has no 'regional_cred_verification_url'",
        ),
        (
            {"credential_source": {"environment_id": "aws2", "regional_cred_verification_url": "https://x"}},
            "version 2 is not supported",
        ),
        ({"credential_source": {"environment_id": "azure"}}, "or an AWS environment_id"),
        ({"credential_source": {"nothing": 1}}, "needs 'file', 'url', 'executable', 'certificate'"),
        ({"credential_source": {"certificate": {}}}, "needs certificate_config_location or use_default"),
        (
            {
                "credential_source": {
                    "certificate": {"certificate_config_location": "/x", "use_default_certificate_config": True}
                }
            },
            "not both",
        ),
        ({"workforce_pool_user_project": "123"}, "only for workforce pool audiences"),
        ({"universe_domain": "not a domain/"}, "universe_domain is not a domain name"),
        ({"subject_token_type": "urn:x"}, "unsupported subject_token_type"),
        ({"audience": ""}, "'audience' is empty"),
        ({"service_account_impersonation_url": "https://example.com/x"}, "must end in"),
        ({"service_account_impersonation": {"token_lifetime_seconds": 10}}, "600 to 43200"),
    ],
)
def test_broken_files(tmp_path: Path, info: dict[str, Any], fragment: str) -> None:
    base = {
        "type": "external_account",
        "audience": "//iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/p/providers/x",
        "subject_token_type": JWT_TYPE,
        "credential_source": {"file": "/nonexistent"},
    }
    with pytest.raises(CredentialsError, match=fragment):
        load_credentials(write(tmp_path, {**base, **info}))


def test_missing_subject_token_file(emulator: EmulatorClient, federation: Federation, tmp_path: Path) -> None:
    credentials = load_credentials(
        write(tmp_path, config(emulator, federation, {"file": str(tmp_path / "gone")}, None))
    )
    with pytest.raises(CredentialsError, match="does not exist"):
        credentials.access_token()


def test_cli_and_round_trips(
    emulator: EmulatorClient, federation: Federation, target: str, tmp_path: Path, certs_url: str
) -> None:
    (tmp_path / "subject").write_text(federation.subject_token())
    path = write(tmp_path, config(emulator, federation, {"file": str(tmp_path / "subject")}, target))
    before = len(emulator.state.request_log())
    result = gcptoken("id", AUD, "--credentials", str(path))
    trips = [entry["path"] for entry in emulator.state.request_log()[before:]]
    assert result.code == 0, result.err
    assert trips == ["/v1/token", f"/v1/projects/-/serviceAccounts/{target}:generateIdToken"]
    assert Verifier(AUD, certs=certs_url).verify(result.out.strip())["aud"] == AUD
