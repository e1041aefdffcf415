"""The emulator over real HTTP: the token endpoint's answers and refusals, certs, tokeninfo, admin."""

from __future__ import annotations

import json
import logging
import os
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gcptoken import Verifier
from gcptoken.credentials.service_account import JWT_BEARER, ServiceAccountKey, assertion_claims
from gcptoken.emulator import EmulatorServer
from gcptoken.jose import compact, jws
from gcptoken.testing import EmulatorClient
from tests.scopes import S1, S2

AUD = "https://svc.a.run.app"


@pytest.fixture(scope="module")
def http() -> Iterator[httpx.Client]:
    """One pooled client for the fuzz tests: a new client per request costs more than the request."""
    with httpx.Client(timeout=10) as client:
        yield client


def post_assertion(
    emulator: EmulatorClient, claims: dict[str, Any], key: jws.SigningKey, kid: str | None
) -> httpx.Response:
    signed = jws.encode(claims, key, kid=kid)
    return httpx.post(f"{emulator.url}/token", data={"grant_type": JWT_BEARER, "assertion": signed})


@pytest.fixture
def sa(key_info: dict[str, str]) -> ServiceAccountKey:
    return ServiceAccountKey.from_info(key_info, "test")


def test_id_token_is_exactly_googles_shape(emulator: EmulatorClient, sa: ServiceAccountKey) -> None:
    response = post_assertion(
        emulator, assertion_claims(sa, {"target_audience": AUD}), sa.signing_key, sa.private_key_id
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    assert set(response.json()) == {"id_token"}
    parsed = compact.parse(response.json()["id_token"])
    assert parsed.header["alg"] == "RS256" and parsed.header["typ"] == "JWT"
    assert len(parsed.header["kid"]) == 40 and int(parsed.header["kid"], 16) >= 0
    claims = parsed.claims
    assert set(claims) == {"aud", "azp", "email", "email_verified", "exp", "iat", "iss", "sub"}
    account = emulator.state.service_accounts[sa.client_email]
    assert claims["aud"] == AUD
    assert claims["azp"] == claims["email"] == sa.client_email
    assert claims["email_verified"] is True
    assert claims["iss"] == "https://accounts.google.com"
    assert claims["sub"] == account.unique_id and len(claims["sub"]) == 21 and claims["sub"].isdigit()
    assert claims["exp"] == claims["iat"] + 3600
    assert abs(claims["iat"] - time.time()) < 5


def test_access_token_response(emulator: EmulatorClient, sa: ServiceAccountKey) -> None:
    claims = assertion_claims(sa, {"scope": "https://www.googleapis.com/auth/cloud-platform openid"})
    response = post_assertion(emulator, claims, sa.signing_key, sa.private_key_id)
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"access_token", "expires_in", "token_type"}
    assert body["access_token"].startswith("ya29.")
    assert body["token_type"] == "Bearer"
    assert 3590 <= body["expires_in"] <= 3600


@pytest.mark.parametrize(
    "aud",
    ["https://oauth2.googleapis.com/token", "https://www.googleapis.com/oauth2/v4/token", "{emulator}/token"],
)
def test_accepted_assertion_audiences(emulator: EmulatorClient, sa: ServiceAccountKey, aud: str) -> None:
    claims = {**assertion_claims(sa, {"target_audience": AUD}), "aud": aud.format(emulator=emulator.url)}
    assert post_assertion(emulator, claims, sa.signing_key, sa.private_key_id).status_code == 200


def test_the_google_v4_token_path_answers_too(emulator: EmulatorClient, sa: ServiceAccountKey) -> None:
    signed = jws.encode(assertion_claims(sa, {"target_audience": AUD}), sa.signing_key, kid=sa.private_key_id)
    response = httpx.post(f"{emulator.url}/oauth2/v4/token", data={"grant_type": JWT_BEARER, "assertion": signed})
    assert "id_token" in response.json()


def _refusal(emulator: EmulatorClient, sa: ServiceAccountKey, case: str) -> httpx.Response:
    now = int(time.time())
    base = assertion_claims(sa, {"target_audience": AUD})
    key, kid = sa.signing_key, sa.private_key_id
    url = f"{emulator.url}/token"
    if case == "unknown account":
        return post_assertion(emulator, {**base, "iss": "ghost@nowhere.iam.gserviceaccount.com"}, key, kid)
    if case == "other key, right kid":
        return post_assertion(emulator, base, jws.generate_rsa_key(), kid)
    if case == "unknown kid":
        return post_assertion(emulator, base, key, "0" * 40)
    if case == "wrong aud":
        return post_assertion(emulator, {**base, "aud": "https://evil.example/token"}, key, kid)
    if case == "expired":
        return post_assertion(emulator, {**base, "iat": now - 7200, "exp": now - 3600}, key, kid)
    if case == "longer than an hour":
        return post_assertion(emulator, {**base, "exp": base["iat"] + 3601}, key, kid)
    if case == "iat in the future":
        return post_assertion(emulator, {**base, "iat": now + 3600, "exp": now + 7200}, key, kid)
    if case == "exp a string":
        return post_assertion(emulator, {**base, "exp": str(base["exp"])}, key, kid)
    if case == "no target":
        return post_assertion(emulator, {k: v for k, v in base.items() if k != "target_audience"}, key, kid)
    if case == "empty scope":
        return post_assertion(
            emulator, {**{k: v for k, v in base.items() if k != "target_audience"}, "scope": " "}, key, kid
        )
    if case == "alg none":
        head = compact.b64url_encode(json.dumps({"alg": "none", "kid": kid}).encode())
        body = compact.b64url_encode(json.dumps(base).encode())
        return httpx.post(url, data={"grant_type": JWT_BEARER, "assertion": f"{head}.{body}."})
    if case == "garbage assertion":
        return httpx.post(url, data={"grant_type": JWT_BEARER, "assertion": "not-a-jwt"})
    if case == "missing assertion":
        return httpx.post(url, data={"grant_type": JWT_BEARER})
    if case == "missing grant_type":
        return httpx.post(url, data={"assertion": "x"})
    if case == "unsupported grant":
        return httpx.post(url, data={"grant_type": "password"})
    if case == "JSON body":
        return httpx.post(url, json={"grant_type": JWT_BEARER})
    if case == "binary body":
        return httpx.post(
            url, content=b"\xff\xfe\x00garbage", headers={"content-type": "application/x-www-form-urlencoded"}
        )
    if case == "huge body":
        return httpx.post(url, content=b"a=" + b"b" * 200_000)
    raise AssertionError(case)


REFUSALS = [
    ("unknown account", "invalid_grant", "account not found"),
    ("other key, right kid", "invalid_grant", "Invalid JWT Signature."),
    ("unknown kid", "invalid_grant", "Invalid JWT Signature."),
    ("alg none", "invalid_grant", "Invalid JWT Signature."),
    ("wrong aud", "invalid_grant", "audience"),
    ("expired", "invalid_grant", "short-lived"),
    ("longer than an hour", "invalid_grant", "short-lived"),
    ("iat in the future", "invalid_grant", "short-lived"),
    ("exp a string", "invalid_grant", "short-lived"),
    ("no target", "invalid_scope", "Invalid OAuth scope or ID token audience provided."),
    ("empty scope", "invalid_scope", "Invalid OAuth scope"),
    ("garbage assertion", "invalid_grant", "Invalid JWT"),
    ("missing assertion", "invalid_request", "assertion"),
    ("missing grant_type", "invalid_request", "grant_type"),
    ("unsupported grant", "unsupported_grant_type", "password"),
    ("JSON body", "invalid_request", "grant_type"),
    ("binary body", "invalid_request", "form"),
    ("huge body", "invalid_request", "form"),
]


@pytest.mark.parametrize(("case", "error", "fragment"), REFUSALS, ids=[row[0] for row in REFUSALS])
def test_refusals_are_googles_400s(
    emulator: EmulatorClient, sa: ServiceAccountKey, case: str, error: str, fragment: str
) -> None:
    response = _refusal(emulator, sa, case)
    assert response.status_code == 400
    body = response.json()
    assert set(body) == {"error", "error_description"}
    assert body["error"] == error
    assert fragment in body["error_description"]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    form=st.dictionaries(
        st.sampled_from(["grant_type", "assertion", "scope", "x", ""]),
        st.one_of(
            st.text(max_size=60),
            st.sampled_from([JWT_BEARER, "e30.e30.", "a.b.c", "eyJhbGciOiJSUzI1NiJ9.e30.AA"]),
        ),
    )
)
def test_no_form_makes_the_token_endpoint_fail(
    emulator: EmulatorClient, http: httpx.Client, form: dict[str, str]
) -> None:
    response = http.post(f"{emulator.url}/token", data=form)
    assert response.status_code == 400
    assert isinstance(response.json()["error"], str)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.binary(max_size=300))
def test_no_raw_body_makes_any_endpoint_fail(emulator: EmulatorClient, http: httpx.Client, body: bytes) -> None:
    for path in ("/token", "/tokeninfo"):
        response = http.post(f"{emulator.url}{path}", content=body)
        assert response.status_code == 400, (path, response.text)


def test_certs_endpoints_publish_the_signing_keys_with_cache_control(emulator: EmulatorClient) -> None:
    v1 = httpx.get(f"{emulator.url}/oauth2/v1/certs")
    v3 = httpx.get(f"{emulator.url}/oauth2/v3/certs")
    kids = [key.kid for key in emulator.state.issuer_keys]
    assert sorted(v1.json()) == sorted(kids)
    assert all(pem.startswith("-----BEGIN CERTIFICATE-----") for pem in v1.json().values())
    assert sorted(key["kid"] for key in v3.json()["keys"]) == sorted(kids)
    assert all(set(key) == {"kty", "alg", "use", "kid", "n", "e"} for key in v3.json()["keys"])
    for response in (v1, v3):
        assert response.headers["cache-control"].startswith("public, max-age=")
        assert "expires" in response.headers


def test_rotation_keeps_the_previous_key_published_and_retiring_removes_it(emulator: EmulatorClient) -> None:
    before = emulator.state.current_key.kid
    rotated = httpx.post(f"{emulator.url}/emulator/v1/signingKeys:rotate", json={"immediate": True}).json()
    assert rotated["kid"] != before and rotated["currentKid"] == rotated["kid"]
    assert rotated["signingKeyIds"][:2] == [rotated["kid"], before]
    published = [key["kid"] for key in httpx.get(f"{emulator.url}/oauth2/v3/certs").json()["keys"]]
    assert before in published and rotated["kid"] in published
    refused = httpx.delete(f"{emulator.url}/emulator/v1/signingKeys/{rotated['kid']}")
    assert refused.status_code == 400  # the current key cannot be retired
    assert httpx.delete(f"{emulator.url}/emulator/v1/signingKeys/{before}").status_code == 200
    assert before not in httpx.get(f"{emulator.url}/oauth2/v1/certs").json()
    assert httpx.delete(f"{emulator.url}/emulator/v1/signingKeys/{before}").status_code == 404


def test_rotation_publishes_first_and_signs_after_the_published_max_age(
    emulator: EmulatorClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = emulator.state
    now = [state.clock()]
    monkeypatch.setattr(state, "clock", lambda: now[0])
    signing = state.current_key.kid
    max_age = int(
        httpx.get(f"{emulator.url}/oauth2/v3/certs").headers["cache-control"].split("max-age=")[1].split(",")[0]
    )
    rotated = httpx.post(f"{emulator.url}/emulator/v1/signingKeys:rotate", json={}).json()
    published = [key["kid"] for key in httpx.get(f"{emulator.url}/oauth2/v3/certs").json()["keys"]]
    assert rotated["kid"] in published and rotated["currentKid"] == signing  # published, not yet signing
    assert rotated["switchAt"] == pytest.approx(now[0] + state.certs_max_age)
    now[0] += max_age - 10
    left = httpx.get(f"{emulator.url}/oauth2/v1/certs").headers["cache-control"]
    assert "max-age=10," in left  # caches are told to come back before the switch
    assert state.current_key.kid == signing
    with pytest.raises(ValueError, match="about to sign"):
        state.retire_signing_key(rotated["kid"])
    now[0] += 10
    assert state.current_key.kid == rotated["kid"]  # the switch came
    assert f"max-age={state.certs_max_age}," in httpx.get(f"{emulator.url}/oauth2/v3/certs").headers["cache-control"]
    again = httpx.post(f"{emulator.url}/emulator/v1/signingKeys:rotate", json={}).json()
    promoted = httpx.post(f"{emulator.url}/emulator/v1/signingKeys:promote", json={}).json()
    assert promoted["currentKid"] == again["kid"] != rotated["kid"] and promoted["switchAt"] is None
    bad = httpx.post(f"{emulator.url}/emulator/v1/signingKeys:rotate", json={"immediate": "yes"})
    assert bad.status_code == 400


def _token(emulator: EmulatorClient, sa: ServiceAccountKey, **extra: str) -> str:
    response = post_assertion(emulator, assertion_claims(sa, extra), sa.signing_key, sa.private_key_id)
    body = response.json()
    return str(body.get("id_token") or body["access_token"])


@pytest.mark.parametrize("method", ["GET", "POST"])
@pytest.mark.parametrize("path", ["/tokeninfo", "/oauth2/v3/tokeninfo"])
def test_tokeninfo_for_an_id_token(emulator: EmulatorClient, sa: ServiceAccountKey, method: str, path: str) -> None:
    token = _token(emulator, sa, target_audience=AUD)
    params = {"id_token": token}
    if method == "GET":
        response = httpx.get(emulator.url + path, params=params)
    else:
        response = httpx.post(emulator.url + path, data=params)
    assert response.status_code == 200
    info = response.json()
    claims = compact.parse(token).claims
    assert info["aud"] == AUD and info["email"] == sa.client_email
    assert info["email_verified"] == "true"
    assert info["exp"] == str(claims["exp"]) and info["iat"] == str(claims["iat"])
    assert info["alg"] == "RS256" and info["typ"] == "JWT" and len(info["kid"]) == 40


def test_tokeninfo_for_an_access_token(emulator: EmulatorClient, sa: ServiceAccountKey) -> None:
    token = _token(emulator, sa, scope=f"{S1} {S2}")
    info = httpx.post(f"{emulator.url}/tokeninfo", data={"access_token": token}).json()
    account = emulator.state.service_accounts[sa.client_email]
    assert info["scope"] == f"{S1} {S2}"
    assert info["email"] == sa.client_email
    assert info["azp"] == info["aud"] == info["sub"] == account.unique_id
    assert 3590 <= int(info["expires_in"]) <= 3600


@pytest.mark.parametrize(
    "params",
    [
        {"id_token": "garbage"},
        {"id_token": "e30.e30.AA"},
        {"access_token": "ya29.unknown"},
        {"id_token": "forged"},
    ],
)
def test_tokeninfo_refuses_invalid_tokens(
    emulator: EmulatorClient, sa: ServiceAccountKey, params: dict[str, str]
) -> None:
    if params.get("id_token") == "forged":
        params = {
            "id_token": jws.encode(
                {"aud": AUD, "exp": time.time() + 100},
                jws.generate_rsa_key(),
                kid=emulator.state.current_key.kid,
            )
        }
    response = httpx.post(f"{emulator.url}/tokeninfo", data=params)
    assert response.status_code == 400
    assert response.json() == {"error": "invalid_token", "error_description": "Invalid Value"}


def test_unknown_paths_and_methods_get_google_style_errors(
    emulator: EmulatorClient, caplog: pytest.LogCaptureFixture
) -> None:
    emulator.state.clear_requests()
    with caplog.at_level(logging.WARNING, logger="gcptoken.emulator"):
        missing = httpx.get(f"{emulator.url}/v1/projects/p/locations/l/nope", params={"access_token": "ya29.secret"})
    assert missing.status_code == 404 and missing.json()["error"]["status"] == "NOT_FOUND"
    assert missing.headers["content-type"] == "application/json; charset=utf-8"
    wrong = httpx.get(f"{emulator.url}/token")
    assert wrong.status_code == 405 and wrong.json()["error"]["code"] == 405
    # The gap is marked in the request log and said once on the log, without the query.
    entries = emulator.state.request_log()
    assert [e.get("notEmulated", False) for e in entries] == [True, False]
    said = [r.getMessage() for r in caplog.records if "not emulated" in r.getMessage()]
    assert said == ["not emulated: GET /v1/projects/p/locations/l/nope"]
    # A 404 from a served endpoint (an unknown account, say) is the endpoint's answer, not a gap.
    assert httpx.post(f"{emulator.url}/emulator/v1/serviceAccounts/nobody@x/keys", json={}).status_code == 404
    assert "notEmulated" not in emulator.state.request_log()[-1]


def test_admin_creates_accounts_and_keys_that_work(emulator: EmulatorClient, tmp_path: Path) -> None:
    admin = f"{emulator.url}/emulator/v1"
    created = httpx.post(f"{admin}/serviceAccounts", json={"accountId": "admin-made-1", "displayName": "x"})
    assert created.status_code == 201
    email = created.json()["email"]
    assert email == f"admin-made-1@{emulator.state.project_id}.iam.gserviceaccount.com"
    assert httpx.post(f"{admin}/serviceAccounts", json={"accountId": "admin-made-1"}).status_code == 409
    assert httpx.post(f"{admin}/serviceAccounts", json={"accountId": "X"}).status_code == 400
    json_type = {"Content-Type": "application/json"}
    assert httpx.post(f"{admin}/serviceAccounts", content=b"[", headers=json_type).status_code == 400
    assert httpx.post(f"{admin}/serviceAccounts", content=b"{}").status_code == 415  # JSON only, as a form cannot
    key = httpx.post(f"{admin}/serviceAccounts/{email}/keys", json={}).json()
    assert set(key) == {
        "type",
        "project_id",
        "private_key_id",
        "private_key",
        "client_email",
        "client_id",
        "auth_uri",
        "token_uri",
        "auth_provider_x509_cert_url",
        "client_x509_cert_url",
        "universe_domain",
    }
    assert key["token_uri"] == f"{emulator.url}/token"
    sa = ServiceAccountKey.from_info(key, "admin")
    assert Verifier(AUD, certs=f"{emulator.url}/oauth2/v3/certs").verify(_token(emulator, sa, target_audience=AUD))
    listed = httpx.get(f"{admin}/serviceAccounts").json()["accounts"]
    assert any(a["email"] == email and a["keyIds"] == [key["private_key_id"]] for a in listed)
    assert httpx.delete(f"{admin}/serviceAccounts/{email}/keys/{key['private_key_id']}").status_code == 200
    refused = post_assertion(
        emulator, assertion_claims(sa, {"target_audience": AUD}), sa.signing_key, sa.private_key_id
    )
    assert refused.json()["error_description"] == "Invalid JWT Signature."
    assert httpx.post(f"{admin}/serviceAccounts/nobody@x/keys", json={}).status_code == 404


def test_request_log_records_every_request_in_order(emulator: EmulatorClient, sa: ServiceAccountKey) -> None:
    httpx.delete(f"{emulator.url}/emulator/v1/requests")
    _token(emulator, sa, target_audience=AUD)
    httpx.get(f"{emulator.url}/oauth2/v1/certs")
    httpx.get(f"{emulator.url}/missing")
    log = httpx.get(f"{emulator.url}/emulator/v1/requests").json()["requests"]
    assert [(e["method"], e["path"], e["status"]) for e in log] == [
        ("DELETE", "/emulator/v1/requests", 200),
        ("POST", "/token", 200),
        ("GET", "/oauth2/v1/certs", 200),
        ("GET", "/missing", 404),
    ]
    assertion = log[1]["detail"]["assertion"]
    assert assertion["claims"]["iss"] == sa.client_email
    assert "signature" not in json.dumps(log[1])


def test_state_dir_files_env_and_restart(tmp_path: Path) -> None:
    directory = tmp_path / "state"
    with EmulatorServer(state_dir=directory) as first:
        key = json.loads((directory / "service-account.json").read_text())
        env = (directory / "env").read_text()
        assert f"export GCPTOKEN_EMULATOR_HOST={first.host_port}\n" in env
        assert f"export GOOGLE_APPLICATION_CREDENTIALS={directory / 'service-account.json'}" in env
        assert f"export GCE_METADATA_HOST={first.host_port}\n" in env
        assert f"export GCE_METADATA_IP={first.host_port}\n" in env
        assert key["token_uri"] == f"{first.url}/token"
        for name in ("service-account.json", "env", "state.json"):
            assert stat.S_IMODE(os.stat(directory / name).st_mode) == 0o600
        signing_kid = first.state.current_key.kid
        account_email = key["client_email"]
    with EmulatorServer(state_dir=directory) as second:
        reused = json.loads((directory / "service-account.json").read_text())
        assert reused["private_key_id"] == key["private_key_id"]
        assert reused["token_uri"] == f"{second.url}/token"
        assert second.state.current_key.kid == signing_kid
        sa = ServiceAccountKey.from_info(reused, "restart")
        claims = assertion_claims(sa, {"target_audience": AUD})
        signed = jws.encode(claims, sa.signing_key, kid=sa.private_key_id)
        response = httpx.post(f"{second.url}/token", data={"grant_type": JWT_BEARER, "assertion": signed})
        assert compact.parse(response.json()["id_token"]).claims["email"] == account_email


def test_a_foreign_state_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "state.json").write_text(json.dumps({"version": 99}))
    with pytest.raises(ValueError, match="version 1"):
        EmulatorServer(state_dir=tmp_path)


@pytest.mark.parametrize(
    "content",
    [
        "not json",
        '{"version": 1}',
        '{"version": 1, "project_id": "p", "project_number": "1", "issuer_keys": ["x"], "service_accounts": []}',
    ],
)
def test_a_damaged_state_file_is_refused_clearly(tmp_path: Path, content: str) -> None:
    (tmp_path / "state.json").write_text(content)
    with pytest.raises(ValueError, match=r"state\.json"):
        EmulatorServer(state_dir=tmp_path)
