"""Anonymous clients against what the emulator gained for federation and sign-in: every JSON type
in every field of the new admin calls, odd forms at STS and the token endpoint, odd headers at the
instance metadata service. Each gets Google's 4xx (or a plain refusal), never a 500."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from gcptoken.emulator import EmulatorServer

VALUES: list[Any] = [None, True, 0, -1, 1.5, "", "x", "9" * 5000, [], [1, "a"], {}, {"a": {"b": []}}]
ADMIN_CALLS = {
    "aws": ["role", "zone", "accountId", "imdsv2Required", "expireKey"],
    "aws/users": ["user"],
    "oauthClients": ["kind", "name", "projectNumber"],
    "users/alice@example.com:reauth": ["required"],
    "consents": ["url", "email", "decision"],
    "deviceCodes:decide": ["userCode", "email", "decision"],
    "workforcePools/users": ["poolId", "providerId", "subject", "rotate"],
    "workloadIdentityPools/providers": ["aws", "awsAccountId", "x509", "attributeMapping", "jwksJson", "issuerUri"],
    "workforcePools/providers": ["aws", "x509", "allowedAudiences", "attributeCondition"],
}


@pytest.fixture(scope="module")
def emu() -> Iterator[EmulatorServer]:
    with EmulatorServer() as server:
        server.state.create_user("alice@example.com")
        yield server


@pytest.mark.parametrize("path", sorted(ADMIN_CALLS))
def test_every_json_type_in_every_field_of_the_new_admin_calls(emu: EmulatorServer, path: str) -> None:
    url = f"{emu.url}/emulator/v1/{path}"  # a full URL: "deviceCodes:decide" alone would read as a scheme
    with httpx.Client(timeout=10) as client:
        assert "was not found on this server" not in client.post(url, json={}).text  # the call exists
        for value in VALUES:
            whole = client.post(url, json=value)
            assert whole.status_code < 500, (path, repr(value)[:40], whole.text[:200])
            for name in ADMIN_CALLS[path]:
                body = {"poolId": "pool-hostile", "providerId": "prov-hostile", name: value}
                answer = client.post(url, json=body)
                assert answer.status_code < 500, (path, name, repr(value)[:40], answer.text[:200])
        broken = client.post(url, content=b'{"unterminated": ', headers={"Content-Type": "application/json"})
        assert broken.status_code == 400


FORMS: list[dict[str, str]] = [
    {},
    {
        "grant_type": "authorization_code",
        "code": "x" * 5000,
        "client_id": "y",
        "client_secret": "z",
        "redirect_uri": "w",
    },
    {"grant_type": "urn:ietf:params:oauth:grant-type:device_code", "device_code": "\x00", "client_id": "y"},
    {"grant_type": "refresh_token", "refresh_token": "1//0x", "audience": "z" * 5000},
    {
        "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
        "audience": "//iam.googleapis.com/locations/global/workforcePools/p/providers/x",
        "subject_token": "%7B%22url%22%3A1%7D",
        "subject_token_type": "urn:ietf:params:aws:token-type:aws4_request",
        "requested_token_type": "urn:ietf:params:oauth:token-type:access_token",
        "options": "%5B1%2C2%5D",
    },
    {"token": "x" * 10000, "token_type_hint": "refresh_token"},
    {"user_code": "\x00" * 100},
    {"consent": "forged", "decision": "allow", "other_account": "a@b"},
]


@pytest.mark.parametrize(
    "path",
    [
        "/v1/token",
        "/v1/oauth/token",
        "/v1/introspect",
        "/v1/revoke",
        "/token",
        "/revoke",
        "/device/code",
        "/device",
        "/device/approve",
        "/o/oauth2/v2/auth/consent",
    ],
)
def test_odd_forms_at_sts_and_the_sign_in_endpoints(emu: EmulatorServer, path: str) -> None:
    for form in FORMS:
        for headers in ({}, {"Authorization": "Basic ===="}, {"Authorization": "Basic " + "QQ==" * 100}):
            answer = httpx.post(emu.url + path, data=form, headers=headers)
            assert answer.status_code < 500, (path, sorted(form), headers, answer.text[:200])


def test_an_aws_subject_token_of_any_shape_is_an_sts_error(emu: EmulatorServer) -> None:
    from gcptoken.emulator.state.models import Provider

    emu.state.providers[("hostile-aws", "prov")] = Provider("hostile-aws", "prov", "", aws_account_id="111122223333")
    audience = (
        f"//iam.googleapis.com/projects/{emu.state.project_number}/locations/global/"
        "workloadIdentityPools/hostile-aws/providers/prov"
    )
    shapes = [
        "",
        "%7B%7D",
        "%5B%5D",
        "null",
        '{"url":1,"method":"POST","headers":[]}',
        '{"url":"https://sts.amazonaws.com?Action=GetCallerIdentity","method":"POST","headers":[{"key":1}]}',
        '{"url":"https://sts.amazonaws.com?Action=GetCallerIdentity","method":"POST","headers":['
        '{"key":"authorization","value":"AWS4-HMAC-SHA256 Credential=A/20250101/us-east-1/sts/aws4_request, '
        "SignedHeaders=host;x-amz-date, Signature=" + "0" * 64 + '"},{"key":"host","value":"sts.amazonaws.com"},'
        '{"key":"x-amz-date","value":"99999999T999999Z"},{"key":"x-goog-cloud-target-resource","value":"'
        + audience
        + '"}]}',
        "[" * 5000,
    ]
    for token in shapes:
        answer = httpx.post(
            f"{emu.url}/v1/token",
            data={
                "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
                "audience": audience,
                "subject_token": token or "x",
                "subject_token_type": "urn:ietf:params:aws:token-type:aws4_request",
                "requested_token_type": "urn:ietf:params:oauth:token-type:access_token",
            },
        )
        assert answer.status_code == 400 and answer.json()["error"] == "invalid_grant", (token[:60], answer.text)


@pytest.mark.parametrize("ttl", ["9" * 5000, "-1", "0", "21601", "1e3", ""])
def test_imds_session_ttl_out_of_range_is_a_400(emu: EmulatorServer, ttl: str) -> None:
    answer = httpx.put(f"{emu.url}/latest/api/token", headers={"X-aws-ec2-metadata-token-ttl-seconds": ttl})
    assert answer.status_code == 400


def test_consent_page_parameters_of_any_kind(emu: EmulatorServer) -> None:
    client_id = emu.state.oauth_client[0]
    for query in [
        "client_id=x",
        "client_id=%00",
        f"client_id={client_id}&redirect_uri=http://127.0.0.1:99999/&response_type=code&scope=openid",
        f"client_id={client_id}&redirect_uri=http://[::1&response_type=code&scope=openid",
        f"client_id={client_id}&redirect_uri=http://127.0.0.1:1/&response_type=code&scope=openid&code_challenge_method=S256",
        f"client_id={client_id}&redirect_uri=http://127.0.0.1:1/&response_type=code&scope=" + "openid+" * 2000,
        f"client_id={client_id}&redirect_uri=http://127.0.0.1:1/&response_type=code&scope=openid&login_hint=%3Cscript%3E",
    ]:
        answer = httpx.get(f"{emu.url}/o/oauth2/v2/auth?{query}")
        assert answer.status_code < 500, (query[:80], answer.text[:200])
        assert "<script>" not in answer.text  # every value escaped
