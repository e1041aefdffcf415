"""Cloud Run's front door, emulated: Cloud Run's checks, answers and forwarding, over real HTTP
with real clients (httpx, google-auth's fetch_id_token)."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from gcptoken.emulator.run import FrontDoorServer
from gcptoken.testing import EmulatorClient, write_key_file
from tests.emulator.run.conftest import headers_of

REMOVED = "SIGNATURE_REMOVED_BY_GOOGLE"


def _account(emulator: EmulatorClient) -> tuple[str, str]:
    """A fresh service account: (email, its key's client_email member)."""
    key = emulator.new_key("caller")
    return key["client_email"], f"serviceAccount:{key['client_email']}"


def _token(emulator: EmulatorClient, email: str, audience: str) -> str:
    account = emulator.state.service_accounts[email]
    return emulator.state.service_account_id_token(account, audience)


def test_a_bound_caller_gets_through_with_cloud_runs_headers_and_the_signature_removed(
    emulator: EmulatorClient, front: FrontDoorServer
) -> None:
    email, member = _account(emulator)
    front.grant(member)
    token = _token(emulator, email, front.url)
    body = b"x" * (3 << 20)  # streamed through, not kept whole
    response = httpx.post(
        front.url + "/items?a=1",
        content=body,
        headers={"Authorization": f"Bearer {token}", "X-Google-Secret": "planted", "X-Forwarded-For": "10.0.0.9"},
    )
    assert response.status_code == 200, response.text
    answer = response.json()
    seen = headers_of(answer)
    assert (answer["method"], answer["path"], answer["length"]) == ("POST", "/items", len(body))
    header, payload, signature = seen["authorization"].removeprefix("Bearer ").split(".")
    assert signature == REMOVED and f"{header}.{payload}" == token.rsplit(".", 1)[0]
    assert seen["x-forwarded-for"] == "10.0.0.9, 127.0.0.1"
    assert seen["x-forwarded-proto"] == "http"
    assert seen["forwarded"] == 'for="127.0.0.1";proto=http'
    trace, _, options = seen["x-cloud-trace-context"].partition(";")
    assert len(trace.split("/")[0]) == 32 and options == "o=1"
    assert seen["traceparent"].startswith(f"00-{trace.split('/')[0]}-")
    assert "x-google-secret" not in seen
    assert seen["host"] == front.url.removeprefix("http://")


@pytest.mark.parametrize("audience", ["localhost", "custom"])
def test_the_other_url_and_custom_audiences_are_accepted(
    emulator: EmulatorClient, front: FrontDoorServer, audience: str
) -> None:
    email, member = _account(emulator)
    front.grant(member)
    aud = front.service.urls[1] if audience == "localhost" else "https://api.example.com"
    response = httpx.get(front.url, headers={"Authorization": f"Bearer {_token(emulator, email, aud)}"})
    assert response.status_code == 200


def _is_unauthorized(response: httpx.Response) -> bool:
    return (
        response.status_code == 401
        and "<h1>Error: Unauthorized</h1>" in response.text
        and 'error="invalid_token"' in response.headers["www-authenticate"]
    )


def _is_forbidden(response: httpx.Response, path: str = "/") -> bool:
    return response.status_code == 403 and (
        f"Your client does not have permission to get URL <code>{path}</code> from this server." in response.text
    )


def test_refusals_are_cloud_runs(emulator: EmulatorClient, front: FrontDoorServer) -> None:
    email, member = _account(emulator)
    front.grant(member)
    state = emulator.state
    account = state.service_accounts[email]
    then = int(state.clock()) - 7200
    expired = state.sign_id_token({**state.identity_claims(account, front.url), "iat": then, "exp": then + 3600})
    access = state.issue_access_token(account, ("https://www.googleapis.com/auth/cloud-platform",))
    refused = {
        "wrong audience": _token(emulator, email, "https://other.a.run.app"),
        "expired": expired,
        "access token": access.token,
        "forged": _token(emulator, email, front.url)[:-8] + "AAAAAAAA",
    }
    for why, token in refused.items():
        assert _is_unauthorized(httpx.get(front.url, headers={"Authorization": f"Bearer {token}"})), why
    assert _is_unauthorized(httpx.get(front.url, headers={"Authorization": "Basic dXNlcjpwdw=="}))
    assert _is_forbidden(httpx.get(front.url + "/a/<b>"), "/a/&lt;b&gt;")  # no token; the path escaped
    other, _ = _account(emulator)  # a valid token, but no binding
    assert _is_forbidden(
        httpx.get(front.url, headers={"Authorization": f"Bearer {_token(emulator, other, front.url)}"})
    )


def test_x_serverless_authorization_is_checked_first_and_authorization_passes_untouched(
    emulator: EmulatorClient, front: FrontDoorServer
) -> None:
    email, member = _account(emulator)
    front.grant(member)
    token = _token(emulator, email, front.url)
    both = {"X-Serverless-Authorization": f"Bearer {token}", "Authorization": "Basic YXBwOm93bg=="}
    response = httpx.get(front.url, headers=both)
    assert response.status_code == 200
    seen = headers_of(response.json())
    assert seen["authorization"] == "Basic YXBwOm93bg=="
    assert seen["x-serverless-authorization"].endswith("." + REMOVED)
    # Only X-Serverless-Authorization is checked when present: a good Authorization does not help.
    swapped = {"X-Serverless-Authorization": "Bearer not-a-token", "Authorization": f"Bearer {token}"}
    assert _is_unauthorized(httpx.get(front.url, headers=swapped))


def test_all_users_checks_nothing_and_all_authenticated_users_any_valid_token(
    emulator: EmulatorClient, front: FrontDoorServer
) -> None:
    email, _ = _account(emulator)
    token = _token(emulator, email, front.url)
    front.set_invokers("allAuthenticatedUsers")
    assert httpx.get(front.url, headers={"Authorization": f"Bearer {token}"}).status_code == 200
    assert _is_forbidden(httpx.get(front.url))
    front.set_invokers("allUsers")
    response = httpx.get(front.url, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200
    assert headers_of(response.json())["authorization"] == f"Bearer {token}"  # a public service forwards it as sent
    assert httpx.get(front.url).status_code == 200


def test_the_invoker_policy_over_the_admin_api(emulator: EmulatorClient, front: FrontDoorServer) -> None:
    email, member = _account(emulator)
    base = f"{emulator.url}/emulator/v1/run/services/{front.service.name}"
    policy = {"policy": {"bindings": [{"role": "roles/run.invoker", "members": [member]}]}}
    assert httpx.post(f"{base}:setIamPolicy", json=policy).status_code == 200
    got = httpx.get(f"{base}:getIamPolicy").json()
    assert got["bindings"] == [{"role": "roles/run.invoker", "members": [member]}] and got["etag"]
    assert (
        httpx.get(front.url, headers={"Authorization": f"Bearer {_token(emulator, email, front.url)}"}).status_code
        == 200
    )
    wrong = {"policy": {"bindings": [{"role": "roles/owner", "members": [member]}]}}
    assert httpx.post(f"{base}:setIamPolicy", json=wrong).status_code == 400
    ghost = {"policy": {"bindings": [{"role": "roles/run.invoker", "members": ["serviceAccount:ghost@x.com"]}]}}
    refused = httpx.post(f"{base}:setIamPolicy", json=ghost)
    assert refused.status_code == 400
    assert refused.json()["error"]["message"] == "Service account ghost@x.com does not exist."
    assert httpx.get(f"{base}:getIamPolicy").json()["bindings"][0]["members"] == [member]  # unchanged
    listed = httpx.get(f"{emulator.url}/emulator/v1/run/services").json()["services"]
    assert any(s["name"] == front.service.name and s["urls"] == list(front.service.urls) for s in listed)


def test_google_auths_fetch_id_token_gets_through(
    emulator: EmulatorClient, front: FrontDoorServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from google.auth.transport.requests import Request
    from google.oauth2 import id_token

    key = emulator.new_key("google-auth")
    front.grant(f"serviceAccount:{key['client_email']}")
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(write_key_file(tmp_path, key)))
    token = id_token.fetch_id_token(Request(), front.url)  # type: ignore[no-untyped-call]
    response = httpx.get(front.url + "/hello", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.text
    forwarded = headers_of(response.json())["authorization"].split(".")[1]
    claims = json.loads(__import__("base64").urlsafe_b64decode(forwarded + "=="))
    assert claims["email"] == key["client_email"] and claims["aud"] == front.url


def test_websockets_are_checked_then_relayed(emulator: EmulatorClient, front: FrontDoorServer) -> None:
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect

    email, member = _account(emulator)
    front.grant(member)
    ws = front.url.replace("http://", "ws://") + "/ws"
    token = _token(emulator, email, front.url)
    with connect(ws, additional_headers={"Authorization": f"Bearer {token}"}, open_timeout=10) as websocket:
        websocket.send("ping")
        assert websocket.recv(timeout=10) == f"ping ({REMOVED})"
    with pytest.raises(InvalidStatus) as refused:
        connect(ws, open_timeout=10)
    assert refused.value.response.status_code == 403


def test_a_stopped_front_door_frees_its_name(emulator: EmulatorClient, echo_url: str) -> None:
    for _ in range(2):
        with emulator.cloud_run("front-reused", echo_url) as server:
            assert _is_forbidden(httpx.get(server.url))
    with pytest.raises(ValueError, match="is not a Cloud Run service name"):
        emulator.cloud_run("Front_Reused", echo_url)


@pytest.mark.parametrize("public", [False, True])
def test_a_connection_header_cannot_remove_what_the_front_door_checked_or_adds(
    emulator: EmulatorClient, front: FrontDoorServer, public: bool
) -> None:
    email, member = _account(emulator)
    front.grant("allUsers" if public else member)
    token = _token(emulator, email, front.url)
    named = "authorization, x-forwarded-for, x-forwarded-proto, forwarded, x-cloud-trace-context, traceparent, x-a"
    response = httpx.get(
        front.url, headers={"Authorization": f"Bearer {token}", "Connection": f"keep-alive, {named}", "X-A": "1"}
    )
    if not public:  # the checked token was removed on receipt: nothing left to check
        assert _is_forbidden(response)
        response = httpx.get(front.url, headers={"Authorization": f"Bearer {token}", "Connection": named, "X-A": "1"})
        assert _is_forbidden(response)
        response = httpx.get(
            front.url,
            headers={"X-Serverless-Authorization": f"Bearer {token}", "Connection": named, "X-A": "1"},
        )
    assert response.status_code == 200, response.text
    seen = headers_of(response.json())
    assert "x-a" not in seen  # a hop-by-hop header named in Connection goes, as it should
    for added in ("x-forwarded-for", "x-forwarded-proto", "forwarded", "x-cloud-trace-context", "traceparent"):
        assert added in seen, added
    if not public:
        assert seen["x-serverless-authorization"].endswith("." + REMOVED)


def test_a_metadata_servers_standard_token_without_email_is_mapped_by_its_sub(
    emulator: EmulatorClient, front: FrontDoorServer
) -> None:
    from gcptoken.credentials.metadata import MetadataCredentials

    state = emulator.state
    token = MetadataCredentials(host=emulator.host_port).id_token(front.url).value  # the standard format
    assert "email" not in json.loads(_payload(token))
    sent = {"Authorization": f"Bearer {token}"}
    assert _is_forbidden(httpx.get(front.url, headers=sent))  # no binding yet
    front.grant(f"serviceAccount:{state.default_account.email}")
    assert httpx.get(front.url, headers=sent).status_code == 200  # as Cloud Run admits it
    # A person is known by their sub too; an unknown sub is no one.
    person = state.create_user("front-door-person@example.com")
    front.set_invokers(f"user:{person.email}")
    claims = {**state.identity_claims(state.default_account, front.url), "sub": person.sub, "azp": "x"}
    assert httpx.get(front.url, headers={"Authorization": f"Bearer {state.sign_id_token(claims)}"}).is_success
    claims["sub"] = "1" * 21
    assert _is_forbidden(httpx.get(front.url, headers={"Authorization": f"Bearer {state.sign_id_token(claims)}"}))


def _payload(token: str) -> str:
    import base64

    part = token.split(".")[1]
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)).decode()


def test_the_front_door_keeps_as_many_requests_open_as_the_proxy(front: FrontDoorServer) -> None:
    """Long streams (MCP, Server-Sent Events) each hold a connection to the app: the front door
    inherits the proxy's limit, the most a Cloud Run instance takes at once (1000)."""
    from gcptoken.local.proxy import MAX_OPEN

    assert front.front_door.max_open == front.front_door.pool._max_connections == MAX_OPEN == 1000
