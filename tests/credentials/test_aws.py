"""AWS workload identity federation: SigV4 against AWS's published vectors, the subject token
byte for byte as google-auth builds it, and the whole exchange against the emulator's IMDS and STS
(library sync and async, the CLI, google-auth unchanged), with every refusal a clear line."""

from __future__ import annotations

import asyncio
import importlib
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import httpx
import pytest

from gcptoken import CredentialsError, TokenRequestError, TransportError, Verifier, load_credentials
from gcptoken.credentials import aws, sigv4
from gcptoken.credentials.external_account import FederatedCredentials
from gcptoken.emulator import EmulatorServer
from gcptoken.emulator.state.models import Provider
from gcptoken.emulator.state.state import EmulatorState
from gcptoken.http.flows import run_sync
from gcptoken.http.transport import HttpxTransport
from gcptoken.testing import CLOSED_LOOPBACK
from tests.cli.test_cli import gcptoken
from tests.clock import Clock

AUD = "https://svc-aws.a.run.app"
EXAMPLE_SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
VANILLA = {"host": "example.amazonaws.com", "x-amz-date": "20150830T123600Z"}
AWS_VARIABLES = ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")


# -- SigV4, by AWS's test suite --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "url", "expected"),
    [
        ("GET", "https://example.amazonaws.com/", "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"),
        (  # get-vanilla-query-order-key-case: parameters sorted before signing
            "GET",
            "https://example.amazonaws.com/?Param2=value2&Param1=value1",
            "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500",
        ),
        ("POST", "https://example.amazonaws.com/", "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"),
    ],
)
def test_sigv4_matches_the_aws_test_suite(method: str, url: str, expected: str) -> None:
    names = ["host", "x-amz-date"]
    signature = sigv4.signature(
        EXAMPLE_SECRET, method, url, VANILLA, names, VANILLA["x-amz-date"], "us-east-1", "service"
    )
    assert signature == expected


def test_sigv4_signing_key_matches_aws_documentation() -> None:
    key = sigv4.signing_key(EXAMPLE_SECRET, "20150830", "us-east-1", "iam")
    assert key.hex() == "c4afb1cc5771d871763a393e44b703571b55cc28424d1a5e86da6ed3c154a4b9"


def test_authorization_header_parses_back() -> None:
    keys = sigv4.AwsKeys("AKIDEXAMPLE", EXAMPLE_SECRET, "session")
    headers = sigv4.sign("POST", "https://sts.eu-west-1.amazonaws.com?Action=GetCallerIdentity", keys, "eu-west-1")
    parsed = sigv4.parse_authorization(headers["Authorization"])
    assert parsed is not None
    assert (parsed.access_key_id, parsed.region, parsed.service) == ("AKIDEXAMPLE", "eu-west-1", "sts")
    assert parsed.signed_headers == ["host", "x-amz-date", "x-amz-security-token"]
    assert list(headers) == ["Authorization", "host", "x-amz-date", "x-amz-security-token"]
    assert EXAMPLE_SECRET not in repr(keys) and "session" not in repr(keys)


def test_subject_token_is_byte_for_byte_google_auths(monkeypatch: pytest.MonkeyPatch) -> None:
    """Same keys, region, audience and moment: google-auth's aws.Credentials and ours serialize the
    very same signed request."""
    import datetime

    from google.auth import _helpers

    google_aws: Any = importlib.import_module("google.auth.aws")  # untyped

    moment = 1_700_000_000
    monkeypatch.setattr(
        _helpers, "utcnow", lambda: datetime.datetime.fromtimestamp(moment, datetime.timezone.utc).replace(tzinfo=None)
    )
    for name, value in {
        "AWS_REGION": "us-east-2",
        "AWS_ACCESS_KEY_ID": "AKIDEXAMPLE",
        "AWS_SECRET_ACCESS_KEY": EXAMPLE_SECRET,
        "AWS_SESSION_TOKEN": "tok/en+==",
    }.items():
        monkeypatch.setenv(name, value)
    audience = "//iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/p/providers/aws"
    source = {"environment_id": "aws1", "regional_cred_verification_url": aws.DEFAULT_VERIFICATION_URL}
    theirs = google_aws.Credentials(
        audience=audience,
        subject_token_type=aws.AWS_SUBJECT_TOKEN_TYPE,
        token_url="https://sts.googleapis.com/v1/token",
        credential_source=source,
    ).retrieve_subject_token(None)
    flow = aws.subject_token_flow(source, audience, "test", now=moment)
    with pytest.raises(StopIteration) as done:
        next(flow)
    assert done.value.value == theirs
    decoded = json.loads(unquote(theirs))
    assert decoded["url"] == "https://sts.us-east-2.amazonaws.com?Action=GetCallerIdentity&Version=2011-06-15"


# -- against the emulator ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def clock() -> Clock:
    return Clock()


@pytest.fixture(scope="module")
def server(clock: Clock) -> Iterator[EmulatorServer]:
    with EmulatorServer(EmulatorState(clock=clock)) as emulator:
        emulator.state.providers[("aws-pool", "aws-prov")] = Provider(
            "aws-pool", "aws-prov", "", aws_account_id=emulator.state.aws.account_id
        )
        yield emulator


@pytest.fixture(autouse=True)
def _fresh_aws(monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> None:
    for name in AWS_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    if "server" in request.fixturenames:
        emulator: EmulatorServer = request.getfixturevalue("server")
        world = emulator.state.aws
        world.imdsv2_required, world.role, world.zone = False, "emulated-role", "us-east-1a"
        request.getfixturevalue("clock").offset = 0.0
        emulator.state.clear_requests()


def audience(server: EmulatorServer, provider: str = "aws-prov") -> str:
    project = server.state.project_number
    return (
        f"//iam.googleapis.com/projects/{project}/locations/global/workloadIdentityPools/aws-pool/providers/{provider}"
    )


def aws_file(
    server: EmulatorServer, target: str | None = None, imdsv2: bool = True, provider: str = "aws-prov"
) -> dict[str, Any]:
    source: dict[str, Any] = {
        "environment_id": "aws1",
        "region_url": f"{server.url}/latest/meta-data/placement/availability-zone",
        "url": f"{server.url}/latest/meta-data/iam/security-credentials",
        "regional_cred_verification_url": aws.DEFAULT_VERIFICATION_URL,
    }
    if imdsv2:
        source["imdsv2_session_token_url"] = f"{server.url}/latest/api/token"
    info: dict[str, Any] = {
        "type": "external_account",
        "audience": audience(server, provider),
        "subject_token_type": aws.AWS_SUBJECT_TOKEN_TYPE,
        "token_url": f"{server.url}/v1/token",
        "credential_source": source,
    }
    if target:
        info["service_account_impersonation_url"] = (
            f"{server.url}/v1/projects/-/serviceAccounts/{target}:generateAccessToken"
        )
    return info


@pytest.fixture
def target(server: EmulatorServer) -> str:
    email = f"aws-target-{time.monotonic_ns()}@{server.state.project_id}.iam.gserviceaccount.com"
    server.state.create_service_account(email.split("@")[0])
    pool = audience(server).split("/providers/")[0]
    server.state.grant_token_creator(
        email,
        f"principalSet:{pool}/attribute.aws_role/arn:aws:sts::{server.state.aws.account_id}:assumed-role/emulated-role",
    )
    return email


def write(tmp_path: Path, info: dict[str, Any], name: str = "aws.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(info))
    return path


def sts_details(server: EmulatorServer) -> list[dict[str, Any]]:
    return [e.get("detail", {}) for e in server.state.request_log() if e["path"] == "/v1/token"]


def test_imdsv2_role_keys_to_an_id_token_through_impersonation(
    server: EmulatorServer, target: str, tmp_path: Path
) -> None:
    server.state.aws.imdsv2_required = True
    credentials = load_credentials(write(tmp_path, aws_file(server, target)))
    token = credentials.id_token(AUD)
    claims = Verifier(AUD, certs=f"{server.url}/oauth2/v3/certs").verify(token.value)
    assert claims["sub"] == server.state.service_accounts[target].unique_id
    paths = [(e["method"], e["path"]) for e in server.state.request_log()]
    assert ("PUT", "/latest/api/token") in paths
    assert ("GET", "/latest/meta-data/iam/security-credentials/emulated-role") in paths
    (detail,) = sts_details(server)
    assert detail["principal"].endswith(
        f"/subject/arn:aws:sts::{server.state.aws.account_id}:assumed-role/emulated-role/{server.state.aws.instance_id}"
    )
    assert detail["source"] == aws.AWS_SUBJECT_TOKEN_TYPE


def test_imdsv1_and_region_from_the_zone(server: EmulatorServer, tmp_path: Path) -> None:
    server.state.aws.zone = "eu-west-3c"
    credentials = load_credentials(write(tmp_path, aws_file(server, imdsv2=False)))
    assert isinstance(credentials, FederatedCredentials)
    token = credentials.access_token()
    assert server.state.access_tokens[token.value].kind == "principal"
    assert not [e for e in server.state.request_log() if e["method"] == "PUT"]


def test_imdsv2_required_refuses_a_v1_client(server: EmulatorServer, tmp_path: Path) -> None:
    server.state.aws.imdsv2_required = True
    credentials = load_credentials(write(tmp_path, aws_file(server, imdsv2=False)))
    with pytest.raises(
        TokenRequestError, match=r"AWS instance metadata .* answered HTTP 401 for the availability zone"
    ):
        credentials.access_token()


def test_keys_and_region_from_the_environment_skip_imds(
    server: EmulatorServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    user = httpx.post(f"{server.url}/emulator/v1/aws/users", json={"user": "ci"}).json()
    monkeypatch.setenv("AWS_DEFAULT_REGION", "ap-south-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", user["AccessKeyId"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", user["SecretAccessKey"])
    info = aws_file(server)
    info["credential_source"] = {
        k: v for k, v in info["credential_source"].items() if k in ("environment_id", "regional_cred_verification_url")
    }
    credentials = load_credentials(write(tmp_path, info))
    token = credentials.access_token()
    assert token.value
    assert [e["path"] for e in server.state.request_log() if not e["path"].startswith("/emulator/")] == ["/v1/token"]
    assert sts_details(server)[0]["principal"].endswith(f"/subject/{user['Arn']}")
    # Keys from the environment are a local secret: the disk cache may share their tokens.
    before = credentials.shared_identity()
    assert before is not None
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "another")  # other keys: not the same cache entry
    assert credentials.identity() != before


def test_async_matches_sync(server: EmulatorServer, target: str, tmp_path: Path) -> None:
    credentials = load_credentials(write(tmp_path, aws_file(server, target)))
    token = asyncio.run(credentials.id_token_async(AUD, use_cache=False))
    claims = Verifier(AUD, certs=f"{server.url}/oauth2/v3/certs").verify(token.value)
    assert claims["sub"] == server.state.service_accounts[target].unique_id


def keys_env(monkeypatch: pytest.MonkeyPatch, key_id: str, secret: str, session: str | None = None) -> None:
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key_id)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
    if session:
        monkeypatch.setenv("AWS_SESSION_TOKEN", session)


def refusal(server: EmulatorServer, tmp_path: Path, provider: str = "aws-prov") -> str:
    with pytest.raises(TokenRequestError) as caught:
        load_credentials(write(tmp_path, aws_file(server, provider=provider))).access_token(use_cache=False)
    assert caught.value.error == "invalid_grant"
    return str(caught.value)


def test_a_wrong_secret_is_refused(server: EmulatorServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    user = httpx.post(f"{server.url}/emulator/v1/aws/users", json={}).json()
    keys_env(monkeypatch, user["AccessKeyId"], "not-the-secret")
    message = refusal(server, tmp_path)
    assert "signature we calculated does not match" in message
    assert "not-the-secret" not in message


def test_an_unknown_key_is_refused(server: EmulatorServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    keys_env(monkeypatch, "AKIAUNKNOWNKEY000000", "secret")
    assert "InvalidClientTokenId" in refusal(server, tmp_path)


def test_a_stale_date_is_refused(server: EmulatorServer, tmp_path: Path, clock: Clock) -> None:
    clock.offset = 16 * 60  # the emulated Google's clock runs 16 minutes ahead of the signer's
    assert "Signature expired" in refusal(server, tmp_path)


def test_an_expired_session_is_refused(server: EmulatorServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    role = httpx.get(f"{server.url}/latest/meta-data/iam/security-credentials/emulated-role").json()
    httpx.post(f"{server.url}/emulator/v1/aws", json={"expireKey": role["AccessKeyId"]}).raise_for_status()
    keys_env(monkeypatch, role["AccessKeyId"], role["SecretAccessKey"], role["Token"])
    message = refusal(server, tmp_path)
    assert "expired (ExpiredToken)" in message
    assert role["Token"] not in message and role["SecretAccessKey"] not in message


def test_a_session_key_without_its_token_is_refused(
    server: EmulatorServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    role = httpx.get(f"{server.url}/latest/meta-data/iam/security-credentials/emulated-role").json()
    keys_env(monkeypatch, role["AccessKeyId"], role["SecretAccessKey"])
    assert "InvalidClientTokenId" in refusal(server, tmp_path)


def test_another_account_is_refused(server: EmulatorServer, tmp_path: Path) -> None:
    server.state.providers[("aws-pool", "other-acct")] = Provider(
        "aws-pool", "other-acct", "", aws_account_id="999999999999"
    )
    assert "is not the one this provider trusts" in refusal(server, tmp_path, "other-acct")


def test_a_token_for_another_audience_is_refused(server: EmulatorServer) -> None:
    """A subject token signed for one provider cannot be replayed at another (target resource)."""
    info = aws_file(server)
    flow = aws.subject_token_flow(info["credential_source"], "//iam.googleapis.com/elsewhere", "test")
    with HttpxTransport() as transport:
        token = run_sync(flow, transport)
    form = {
        "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
        "audience": audience(server),
        "requested_token_type": "urn:ietf:params:oauth:token-type:access_token",
        "subject_token": token,
        "subject_token_type": aws.AWS_SUBJECT_TOKEN_TYPE,
    }
    answer = httpx.post(f"{server.url}/v1/token", data=form)
    assert answer.status_code == 400
    assert "x-goog-cloud-target-resource" in answer.json()["error_description"]
    tampered = json.loads(unquote(token))
    tampered["headers"] = [h for h in tampered["headers"] if h["key"] != "x-goog-cloud-target-resource"]
    tampered["headers"].append({"key": "x-goog-cloud-target-resource", "value": audience(server)})
    tampered["url"] += "&Extra=1"
    from urllib.parse import quote

    answer = httpx.post(f"{server.url}/v1/token", data={**form, "subject_token": quote(json.dumps(tampered))})
    assert "signature we calculated does not match" in answer.json()["error_description"]


def test_missing_region_is_one_clear_error(server: EmulatorServer, tmp_path: Path) -> None:
    info = aws_file(server)
    del info["credential_source"]["region_url"]
    with pytest.raises(CredentialsError, match="AWS region is unknown: set AWS_REGION"):
        load_credentials(write(tmp_path, info)).access_token()


def test_imds_down_is_a_transport_error(server: EmulatorServer, tmp_path: Path) -> None:
    info = aws_file(server)
    for name in ("region_url", "url", "imdsv2_session_token_url"):
        info["credential_source"][name] = info["credential_source"][name].replace(server.host_port, CLOSED_LOOPBACK)
    with pytest.raises(TransportError, match=r"cannot reach .*: connection refused"):
        load_credentials(write(tmp_path, info)).access_token()


def test_cli_id_and_access_never_print_aws_secrets(server: EmulatorServer, target: str, tmp_path: Path) -> None:
    path = write(tmp_path, aws_file(server, target))
    env = {"GCPTOKEN_EMULATOR_HOST": server.host_port}
    result = gcptoken("id", AUD, "--credentials", str(path), "-v", env=env)
    assert result.code == 0, result.err
    role = server.state.aws.role_key()
    for secret in (role.secret_access_key, role.session_token or "-"):
        assert secret not in result.err and secret not in result.out
    assert "/latest/api/token" in result.err  # -v shows the requests, not what they carry
    whoami = gcptoken("whoami", "--credentials", str(path), env=env)
    assert whoami.code == 0, whoami.err
    assert "AWS" in whoami.out and "aws-prov" in whoami.out
    access = gcptoken("access", "--credentials", str(path), env=env)
    assert access.code == 0 and access.out.startswith("ya29.")


def test_cli_missing_region_is_one_line_exit_2_or_3(server: EmulatorServer, tmp_path: Path) -> None:
    info = aws_file(server)
    del info["credential_source"]["region_url"]
    result = gcptoken(
        "access", "--credentials", str(write(tmp_path, info)), env={"GCPTOKEN_EMULATOR_HOST": server.host_port}
    )
    assert result.code != 0
    assert result.err.count("\n") == 1 and "AWS region is unknown" in result.err
    assert "Traceback" not in result.err


def test_google_auth_aws_credentials_get_a_token_from_the_emulator(server: EmulatorServer) -> None:
    """google-auth's own AWS credentials, unchanged, against the emulated IMDS and STS."""
    import google.auth.transport.requests

    google_aws: Any = importlib.import_module("google.auth.aws")  # untyped

    server.state.aws.imdsv2_required = True
    credentials = google_aws.Credentials.from_info({**aws_file(server), "scopes": None})
    credentials = credentials.with_scopes(["https://www.googleapis.com/auth/cloud-platform"])
    credentials.refresh(google.auth.transport.requests.Request())
    grant = server.state.access_tokens[credentials.token]
    assert grant.email.endswith(
        f"/subject/arn:aws:sts::{server.state.aws.account_id}:assumed-role/emulated-role/{server.state.aws.instance_id}"
    )


@pytest.mark.parametrize("shape", [{"aws": {"accountId": "123456789012"}}, {"awsAccountId": "123456789012"}])
def test_admin_creates_aws_providers(server: EmulatorServer, shape: dict[str, Any]) -> None:
    body = {"poolId": "aws-admin", "providerId": f"p-{len(shape)}{len(str(shape))}", **shape}
    created = httpx.post(f"{server.url}/emulator/v1/workloadIdentityPools/providers", json=body)
    assert created.status_code == 201, created.text
    assert created.json()["aws"] == {"accountId": "123456789012"}
    assert created.json()["attributeMapping"] == {"google.subject": "assertion.arn"}
    bad = httpx.post(
        f"{server.url}/emulator/v1/workloadIdentityPools/providers", json={**body, "aws": {"accountId": "12"}}
    )
    assert bad.status_code == 400
