"""Details every Google client reads: the metadata server's directories, formats, ETags and
wait_for_change; tokeninfo by Bearer header; IAM's useEmailAzp, string booleans and unknown
fields; the refresh grant's invalid_client; Resource Manager's project lookup; response framing."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import httpx
import pytest

from gcptoken.jose import compact
from gcptoken.testing import EmulatorClient

MD = {"Metadata-Flavor": "Google"}
AUD = "https://svc-fidelity.a.run.app"


def md(emulator: EmulatorClient, path: str, **params: str) -> httpx.Response:
    return httpx.get(f"{emulator.url}/computeMetadata/v1/{path}", params=params, headers=MD)


@pytest.mark.parametrize(
    "directory",
    [
        "instance",
        "project",
        "instance/service-accounts",
        "instance/service-accounts/default",
        "instance/attributes",
        "project/attributes",
        "universe",
    ],
)
def test_a_directory_without_its_slash_redirects(emulator: EmulatorClient, directory: str) -> None:
    response = md(emulator, directory)
    assert response.status_code == 301
    assert response.headers["location"] == f"/computeMetadata/v1/{directory}/"
    assert response.headers["metadata-flavor"] == "Google"
    followed = httpx.get(f"{emulator.url}/computeMetadata/v1/{directory}", headers=MD, follow_redirects=True)
    assert followed.status_code == 200
    assert followed.text == "" or followed.text.endswith("\n")  # a listing (attributes may be empty)


def test_the_root_redirects_and_lists(emulator: EmulatorClient) -> None:
    bare = httpx.get(f"{emulator.url}/computeMetadata/v1", headers=MD)
    assert bare.status_code == 301 and bare.headers["location"] == "/computeMetadata/v1/"
    assert md(emulator, "").text == "instance/\nproject/\nuniverse/\n"


def test_listings_name_entries_and_subdirectories(emulator: EmulatorClient) -> None:
    instance = md(emulator, "instance/").text.splitlines()
    assert {"attributes/", "service-accounts/", "hostname", "id", "machine-type", "name", "zone"} <= set(instance)
    email = emulator.state.default_account.email
    assert md(emulator, "instance/service-accounts/").text == f"default/\n{email}/\n"
    account = md(emulator, "instance/service-accounts/default/").text
    assert account == "aliases\nemail\nidentity\nscopes\ntoken\n"
    assert md(emulator, "project/").text == "attributes/\nnumeric-project-id\nproject-id\n"
    assert json.loads(md(emulator, "project/", alt="json").text) == ["attributes/", "numeric-project-id", "project-id"]


def test_recursive_json_alt_and_values(emulator: EmulatorClient) -> None:
    state = emulator.state
    project = md(emulator, "project/", recursive="true")
    assert project.headers["content-type"].startswith("application/json")
    assert project.json() == {
        "attributes": dict(state.instance.project_attributes),
        "numericProjectId": int(state.project_number),
        "projectId": state.project_id,
    }
    instance = md(emulator, "instance/", recursive="true").json()
    assert instance["machineType"] == f"projects/{state.project_number}/machineTypes/e2-medium"
    assert instance["serviceAccounts"]["default"]["email"] == state.default_account.email
    assert md(emulator, "instance/hostname").text.endswith(".internal")
    assert md(emulator, "universe/universe-domain").text == "googleapis.com"
    assert md(emulator, "project/numeric-project-id", alt="json").json() == int(state.project_number)
    assert md(emulator, "project/project-id", alt="json").json() == state.project_id
    text = md(emulator, "project/", recursive="true", alt="text").text
    assert f"project-id {state.project_id}\n" in text
    assert md(emulator, "project/project-id", alt="xml").status_code == 400
    assert md(emulator, "instance/nothing-here").status_code == 404
    assert md(emulator, "project/project-id/").status_code == 404  # a value is not a directory


def test_a_metadata_key_the_emulator_lacks_is_marked_not_emulated(emulator: EmulatorClient) -> None:
    emulator.state.clear_requests()
    assert md(emulator, "instance/guest-attributes/hostkeys/ssh-rsa").status_code == 404
    assert md(emulator, "instance/service-accounts/nobody@x.iam.gserviceaccount.com/token").status_code == 404
    assert md(emulator, "project/project-id").status_code == 200
    marks = [
        (entry["path"].rsplit("/", 1)[-1], entry.get("notEmulated", False)) for entry in emulator.state.request_log()
    ]
    assert marks == [("ssh-rsa", True), ("token", False), ("project-id", False)]


def test_attributes_are_settable_and_wait_for_change_sees_them(emulator: EmulatorClient) -> None:
    admin = f"{emulator.url}/emulator/v1/metadata/instance/attributes"
    assert httpx.put(admin, json={"startup-script": "echo hi", "role": "web"}).status_code == 200
    assert md(emulator, "instance/attributes/").text == "role\nstartup-script\n"
    assert md(emulator, "instance/attributes/", recursive="true").json() == {"startup-script": "echo hi", "role": "web"}
    first = md(emulator, "instance/attributes/role")
    assert first.text == "web" and first.headers["etag"]
    assert md(emulator, "instance/attributes/role").headers["etag"] == first.headers["etag"]

    def change_soon() -> None:
        time.sleep(0.5)
        httpx.put(f"{admin}/role", json={"value": "worker"})

    changer = threading.Thread(target=change_soon)
    changer.start()
    waited = md(emulator, "instance/attributes/role", wait_for_change="true", last_etag=first.headers["etag"])
    changer.join()
    assert waited.text == "worker" and waited.headers["etag"] != first.headers["etag"]
    stale = md(emulator, "instance/attributes/role", wait_for_change="true", last_etag=first.headers["etag"])
    assert stale.text == "worker"  # already different: answered at once
    started = time.monotonic()
    unchanged = md(emulator, "instance/attributes/role", wait_for_change="true", timeout_sec="0.3")
    assert unchanged.text == "worker" and time.monotonic() - started >= 0.3
    assert md(emulator, "instance/attributes/role", wait_for_change="true", timeout_sec="nan").status_code == 400
    assert httpx.delete(f"{admin}/role").json() == {"attributes": {"startup-script": "echo hi"}}
    assert httpx.put(admin, json={"bad": 1}).status_code == 400
    for hostile in ({"a\nb": "x"}, {"a/b": "x"}, {"": "x"}, {"k" * 129: "x"}, [1], "text", None):
        answer = httpx.put(admin, content=json.dumps(hostile), headers={"Content-Type": "application/json"})
        assert answer.status_code == 400, hostile
    assert httpx.put(f"{admin}/a%0Ab", json={"value": "x"}).status_code == 400
    assert httpx.put(f"{admin}/role", json={"value": 5}).status_code == 400
    assert "a\nb" not in md(emulator, "instance/attributes/").text
    project = f"{emulator.url}/emulator/v1/metadata/project/attributes"
    httpx.put(project, json={"enable-oslogin": "TRUE"})
    assert md(emulator, "project/attributes/enable-oslogin").text == "TRUE"
    httpx.put(admin, json={})
    httpx.put(project, json={})


def test_framing_as_google_frames_it(emulator: EmulatorClient) -> None:
    token = md(emulator, "instance/service-accounts/default/token")
    assert token.text.startswith('{"access_token":"') and ", " not in token.text
    assert token.headers.get_list("server") == ["Metadata Server for VM"]
    for path in ("/oauth2/v3/certs", "/emulator/v1/info", "/nothing"):
        assert "uvicorn" not in httpx.get(f"{emulator.url}{path}").headers.get("server", "")
    certs = httpx.get(f"{emulator.url}/oauth2/v3/certs")
    assert certs.headers["content-type"] == "application/json; charset=utf-8"


def test_tokeninfo_takes_a_bearer_header_on_an_empty_post(emulator: EmulatorClient) -> None:
    access = md(emulator, "instance/service-accounts/default/token").json()["access_token"]
    for path in ("/tokeninfo", "/oauth2/v1/tokeninfo", "/oauth2/v3/tokeninfo"):
        info = httpx.post(f"{emulator.url}{path}", headers={"Authorization": f"Bearer {access}"})
        assert info.status_code == 200 and info.json()["email"] == emulator.state.default_account.email, path
        query = httpx.post(f"{emulator.url}{path}", params={"access_token": access})
        assert query.status_code == 200
    refused = httpx.post(f"{emulator.url}/tokeninfo", headers={"Authorization": "Bearer ya29.nope"})
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_token"


def _iam(emulator: EmulatorClient, key_info: dict[str, str], target: str, method: str, body: Any) -> httpx.Response:
    from gcptoken.credentials import credentials_from_info

    emulator.state.grant_token_creator(target, f"serviceAccount:{key_info['client_email']}")
    access = credentials_from_info(dict(key_info), "test").access_token(use_cache=False).value
    url = f"{emulator.url}/v1/projects/-/serviceAccounts/{target}:{method}"
    return httpx.post(url, json=body, headers={"Authorization": f"Bearer {access}"})


def test_iam_use_email_azp_string_booleans_and_unknown_fields(
    emulator: EmulatorClient, key_info: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GCPTOKEN_EMULATOR_HOST", emulator.host_port)
    target = emulator.new_key("azp")["client_email"]
    unique_id = emulator.state.service_accounts[target].unique_id
    plain = _iam(emulator, key_info, target, "generateIdToken", {"audience": AUD, "includeEmail": "true"})
    claims = compact.parse(plain.json()["token"]).claims
    assert claims["azp"] == unique_id and claims["email"] == target
    with_azp = _iam(emulator, key_info, target, "generateIdToken", {"audience": AUD, "useEmailAzp": True})
    assert compact.parse(with_azp.json()["token"]).claims["azp"] == target
    snake = _iam(emulator, key_info, target, "generateIdToken", {"audience": AUD, "include_email": False})
    assert "email" not in compact.parse(snake.json()["token"]).claims
    unknown = _iam(emulator, key_info, target, "generateIdToken", {"audience": AUD, "audiences": [AUD]})
    assert unknown.status_code == 400
    assert unknown.json()["error"] == {
        "code": 400,
        "message": 'Invalid JSON payload received. Unknown name "audiences": Cannot find field.',
        "status": "INVALID_ARGUMENT",
    }
    not_bool = _iam(emulator, key_info, target, "generateIdToken", {"audience": AUD, "includeEmail": "yes"})
    assert not_bool.status_code == 400 and "TYPE_BOOL" in not_bool.json()["error"]["message"]


def test_refresh_grant_client_errors(emulator: EmulatorClient) -> None:
    user = emulator.state.issue_refresh_token("client-errors@example.com")
    form = {k: user[k] for k in ("client_id", "client_secret", "refresh_token")} | {"grant_type": "refresh_token"}
    wrong_secret = httpx.post(f"{emulator.url}/token", data={**form, "client_secret": "nope"})
    assert wrong_secret.status_code == 401
    assert wrong_secret.json() == {"error": "invalid_client", "error_description": "Unauthorized"}
    unknown = httpx.post(f"{emulator.url}/token", data={**form, "client_id": "nobody.apps.googleusercontent.com"})
    assert unknown.status_code == 401 and unknown.json()["error_description"] == "The OAuth client was not found."


def test_resource_manager_project_lookup(emulator: EmulatorClient) -> None:
    state = emulator.state
    access = md(emulator, "instance/service-accounts/default/token").json()["access_token"]
    headers = {"Authorization": f"Bearer {access}"}
    for wanted in (state.project_number, state.project_id):
        project = httpx.get(f"{emulator.url}/v1/projects/{wanted}", headers=headers)
        assert project.status_code == 200
        body = project.json()
        assert (body["projectNumber"], body["projectId"], body["lifecycleState"]) == (
            state.project_number,
            state.project_id,
            "ACTIVE",
        )
        assert set(body) == {"projectNumber", "projectId", "lifecycleState", "name", "createTime"}
    assert httpx.get(f"{emulator.url}/v1/projects/{state.project_id}").status_code == 401
    assert httpx.get(f"{emulator.url}/v1/projects/someone-else", headers=headers).status_code == 403
