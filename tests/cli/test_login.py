"""``gcptoken login`` / ``logout`` against the emulator, the browser step answered through the admin
API or by pasting the final address (the real-browser runs are in test_login_browser), the device
flow and its polling errors, user ID tokens for IAP, reauthentication."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gcptoken import RefusedError, TokenRequestError, Verifier, load_credentials
from gcptoken.credentials.base import run_flow_sync
from gcptoken.emulator import EmulatorServer
from gcptoken.login import device_flow
from gcptoken.login.client_file import DesktopClient
from gcptoken.login.scopes import DEVICE_SCOPES
from tests.cli.test_cli import gcptoken
from tests.clock import Clock

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def clock() -> Clock:
    return Clock()


@pytest.fixture(scope="module")
def emu(tmp_path_factory: pytest.TempPathFactory, clock: Clock) -> Iterator[EmulatorServer]:
    from gcptoken.emulator.state.state import EmulatorState

    state_dir = tmp_path_factory.mktemp("login-state")
    with EmulatorServer(EmulatorState(clock=clock), state_dir=state_dir, mtls_port=None) as server:
        server.state.signin.device_interval = 1
        yield server


@pytest.fixture
def env(emu: EmulatorServer, tmp_path: Path) -> dict[str, str]:
    clock_reset(emu)
    return {"GCPTOKEN_EMULATOR_HOST": emu.host_port, "CLOUDSDK_CONFIG": str(tmp_path / "gcloud")}


def clock_reset(emu: EmulatorServer) -> None:
    emu.state.clock.offset = 0.0  # type: ignore[attr-defined]


def client_file(emu: EmulatorServer) -> str:
    assert emu.state_dir is not None
    return str(emu.state_dir / "desktop-client.json")


def iap_client(emu: EmulatorServer) -> str:
    assert emu.state_dir is not None
    exports = dict(
        line.removeprefix("export ").split("=", 1) for line in (emu.state_dir / "env").read_text().splitlines()
    )
    return exports["IAP_CLIENT_ID"]


# The real command with one constant changed: the seconds a browser's answer is held after the
# browser is opened (cli.login.SETTLE, 10 s) are 3 here, so a sign-in test waits 3 s, not 10; the
# races those seconds guard against are played out well within 3 (test_login_hostile).
SHORT_SETTLE = [
    sys.executable,
    "-c",
    "import sys; import gcptoken.cli.login as login; login.SETTLE = 3.0; "
    "from gcptoken.cli.fast import main; sys.exit(main())",
]


class Login:
    """``gcptoken login`` running in a subprocess, its URL read from stderr."""

    def __init__(self, env: dict[str, str], *args: str) -> None:
        self.process = subprocess.Popen(
            [*SHORT_SETTLE, "login", *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, **env},
        )
        self.lines: list[str] = []

    def read_until(self, marker: str) -> str:
        assert self.process.stderr is not None
        while True:
            line = self.process.stderr.readline()
            assert line, f"gcptoken login ended before {marker!r}: {''.join(self.lines)}"
            self.lines.append(line)
            if marker in line:
                return line

    def url(self) -> str:
        return self.read_until("/o/oauth2/auth?").strip()

    def paste(self, text: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(text + "\n")
        self.process.stdin.flush()

    def finish(self, timeout: float = 30) -> tuple[int, str, str]:
        out, err = self.process.communicate(timeout=timeout)
        return self.process.returncode, out, "".join(self.lines) + err


def consent(emu: EmulatorServer, url: str, email: str = "alice@example.com", decision: str = "allow") -> str:
    answer = httpx.post(f"{emu.url}/emulator/v1/consents", json={"url": url, "email": email, "decision": decision})
    assert answer.status_code == 200, answer.text
    return str(answer.json()["location"])


def test_login_with_the_redirect_answered(emu: EmulatorServer, env: dict[str, str], tmp_path: Path) -> None:
    output = tmp_path / "user.json"
    login = Login(env, "--no-browser", "--client-id-file", client_file(emu), "--output", str(output))
    location = consent(emu, login.url())
    assert httpx.get(location).status_code == 200  # the browser reaching the loopback redirect
    code, out, err = login.finish()
    assert code == 0, err
    assert out.strip() == str(output)
    assert "signed in as alice@example.com" in err
    assert "gcptoken: scopes granted: openid, userinfo.email, cloud-platform\n" in err
    assert stat.S_IMODE(output.stat().st_mode) == 0o600
    info = json.loads(output.read_text())
    assert info["type"] == "authorized_user" and info["account"] == "alice@example.com"
    assert info["refresh_token"] not in err + out
    token = load_credentials(output).access_token()
    assert emu.state.access_tokens[token.value].email == "alice@example.com"


def test_login_with_the_address_pasted_back(emu: EmulatorServer, env: dict[str, str], tmp_path: Path) -> None:
    output = tmp_path / "pasted.json"
    login = Login(env, "--no-browser", "--client-id-file", client_file(emu), "--output", str(output))
    location = consent(emu, login.url(), "bob@example.com")
    login.paste("not an address")
    login.paste(location)  # as gcloud's remote flow: the browser ran elsewhere
    code, _, err = login.finish()
    assert code == 0, err
    assert "that is not the address" in err
    assert json.loads(output.read_text())["account"] == "bob@example.com"


def test_the_default_output_is_gclouds_adc_file(emu: EmulatorServer, env: dict[str, str]) -> None:
    login = Login(env, "--no-browser", "--client-id-file", client_file(emu))
    httpx.get(consent(emu, login.url()))
    code, out, err = login.finish()
    assert code == 0, err
    adc = Path(env["CLOUDSDK_CONFIG"]) / "application_default_credentials.json"
    assert out.strip() == str(adc) and adc.exists()


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        ("deny", "access was denied in the browser"),
        ("wrong-state", "state does not match"),
        ("reused-code", "already used or has expired"),
    ],
)
def test_browser_refusals_are_one_line(
    emu: EmulatorServer, env: dict[str, str], tmp_path: Path, answer: str, message: str
) -> None:
    output = tmp_path / "refused.json"
    login = Login(env, "--no-browser", "--client-id-file", client_file(emu), "--output", str(output))
    url = login.url()
    if answer == "deny":
        login.paste(consent(emu, url, decision="deny"))
    else:
        location = consent(emu, url)
        if answer == "wrong-state":
            login.paste(str(httpx.URL(location).copy_set_param("state", "forged")))
        else:  # a code another sign-in already exchanged, under this sign-in's state
            first = Login(env, "--no-browser", "--client-id-file", client_file(emu), "--output", str(tmp_path / "a"))
            first_location = consent(emu, first.url())
            httpx.get(first_location)
            assert first.finish()[0] == 0
            stale_code = dict(httpx.URL(first_location).params)["code"]
            login.paste(str(httpx.URL(location).copy_set_param("code", stale_code)))
    code, out, err = login.finish()
    assert code == 1, err
    errors = [line for line in err.splitlines() if line.startswith("gcptoken: error")]
    assert len(errors) == 1 and message in errors[0], err
    assert out == "" and not output.exists()


def test_an_occupied_port_is_one_clear_line(emu: EmulatorServer, env: dict[str, str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = gcptoken("login", "--no-browser", "--port", str(port), "--client-id-file", client_file(emu), env=env)
    assert result.code == 3  # as every server's port in use (README: exit codes)
    assert result.err.count("\n") == 1 and f"cannot listen on 127.0.0.1:{port} (--port {port})" in result.err


@pytest.mark.parametrize("port", ["70000", "-1"])
def test_a_port_out_of_range_is_a_usage_error(emu: EmulatorServer, env: dict[str, str], port: str) -> None:
    result = gcptoken("login", "--no-browser", "--port", port, "--client-id-file", client_file(emu), env=env)
    assert result.code == 2 and result.err.count("\n") == 1 and "--port must be 0-65535" in result.err


def test_without_a_client_file_it_says_how_to_make_one(env: dict[str, str]) -> None:
    result = gcptoken("login", env=env)
    assert result.code == 2
    assert "Desktop app" in result.err and result.err.count("\n") == 1


@pytest.mark.parametrize(
    "content",
    [b"[" * 100_000 + b"]" * 100_000, b'{"installed": 1e400}', b"\xff\xfe", b'"\\ud800"', b"[]", b""],
    ids=["deep", "huge-number", "not-utf8", "lone-surrogate", "array", "empty"],
)
def test_a_hostile_client_file_is_one_line(env: dict[str, str], tmp_path: Path, content: bytes) -> None:
    hostile = tmp_path / "client.json"
    hostile.write_bytes(content)
    result = gcptoken("login", "--no-browser", "--client-id-file", str(hostile), env=env)
    assert result.code in (1, 2, 3) and result.err.count("\n") == 1, result.err
    assert "client file" in result.err and "Traceback" not in result.err


def test_a_hostile_existing_file_counts_as_another_account(
    emu: EmulatorServer, env: dict[str, str], tmp_path: Path
) -> None:
    output = tmp_path / "nested.json"
    output.write_bytes(b"[" * 100_000 + b"]" * 100_000)
    result = gcptoken("login", "--no-browser", "--client-id-file", client_file(emu), "--output", str(output), env=env)
    assert result.code == 3 and "another kind" in result.err and "--force" in result.err  # before the sign-in
    assert "Traceback" not in result.err and "/o/oauth2/auth" not in result.err


def test_another_accounts_file_is_kept_without_force(emu: EmulatorServer, env: dict[str, str], tmp_path: Path) -> None:
    output = tmp_path / "shared.json"
    output.write_text(json.dumps({"type": "authorized_user", "account": "carol@example.com", "refresh_token": "x"}))
    login = Login(env, "--no-browser", "--client-id-file", client_file(emu), "--output", str(output))
    httpx.get(consent(emu, login.url()))
    code, _, err = login.finish()
    assert code == 3 and "carol@example.com" in err and "--force" in err
    assert json.loads(output.read_text())["account"] == "carol@example.com"
    login = Login(env, "--no-browser", "--force", "--client-id-file", client_file(emu), "--output", str(output))
    httpx.get(consent(emu, login.url()))
    assert login.finish()[0] == 0
    assert json.loads(output.read_text())["account"] == "alice@example.com"


@pytest.mark.parametrize("account", ["", None])
def test_a_file_that_names_no_account_is_kept_without_force(
    emu: EmulatorServer, env: dict[str, str], tmp_path: Path, account: str | None
) -> None:
    """gcloud writes ``"account": ""``: such a file may be anyone's, so replacing it takes --force."""
    output = tmp_path / "gcloud-wrote.json"
    previous = {"type": "authorized_user", "refresh_token": "1//0gcloud", "client_id": "c", "client_secret": "s"}
    if account is not None:
        previous["account"] = account
    output.write_text(json.dumps(previous))
    result = gcptoken("login", "--no-browser", "--client-id-file", client_file(emu), "--output", str(output), env=env)
    assert result.code == 3 and result.out == "", result.err  # refused before anyone signs in
    errors = result.err.splitlines()
    assert len(errors) == 1 and "an account it does not name" in errors[0] and "--force" in errors[0], result.err
    assert json.loads(output.read_text()) == previous
    login = Login(env, "--no-browser", "--force", "--client-id-file", client_file(emu), "--output", str(output))
    httpx.get(consent(emu, login.url()))
    assert login.finish()[0] == 0
    assert json.loads(output.read_text())["account"] == "alice@example.com"


def test_the_same_account_signs_in_again_without_force(
    emu: EmulatorServer, env: dict[str, str], tmp_path: Path
) -> None:
    output = tmp_path / "again.json"
    for _ in range(2):
        login = Login(env, "--no-browser", "--client-id-file", client_file(emu), "--output", str(output))
        httpx.get(consent(emu, login.url(), "same@example.com"))
        code, _, err = login.finish()
        assert code == 0, err


# -- the device flow ---------------------------------------------------------------------------------


def device_login(env: dict[str, str], emu: EmulatorServer, output: Path, *extra: str) -> tuple[Login, str]:
    login = Login(env, "--device", "--client-id-file", client_file(emu), "--output", str(output), *extra)
    line = login.read_until("enter the code")
    return login, line.rsplit(" ", 1)[1].strip()


def test_device_flow_approved_through_the_admin_api(emu: EmulatorServer, env: dict[str, str], tmp_path: Path) -> None:
    output = tmp_path / "device.json"
    login, user_code = device_login(env, emu, output)
    decided = httpx.post(
        f"{emu.url}/emulator/v1/deviceCodes:decide", json={"userCode": user_code, "email": "dana@example.com"}
    )
    assert decided.status_code == 200
    code, _, err = login.finish()
    assert code == 0, err
    info = json.loads(output.read_text())
    assert info["account"] == "dana@example.com"
    token = load_credentials(output).id_token(info["client_id"])
    assert token.claims["email"] == "dana@example.com"


def test_device_flow_approved_on_the_device_page(emu: EmulatorServer, env: dict[str, str], tmp_path: Path) -> None:
    output = tmp_path / "device-page.json"
    login, user_code = device_login(env, emu, output)
    with httpx.Client(base_url=emu.url) as browser:
        page = browser.post("/device", data={"user_code": user_code.lower()})
        assert page.status_code == 200 and "Allow" in page.text
        consent_id = page.text.split('name="consent" value="')[1].split('"')[0]
        done = browser.post(
            "/device/approve", data={"consent": consent_id, "other_account": "erin@example.com", "decision": "allow"}
        )
        assert "return to your device" in done.text
    code, _, err = login.finish()
    assert code == 0, err
    assert json.loads(output.read_text())["account"] == "erin@example.com"


@pytest.mark.parametrize(("how", "message"), [("deny", "access was denied"), ("expire", "device code expired")])
def test_device_flow_refusals(emu: EmulatorServer, env: dict[str, str], tmp_path: Path, how: str, message: str) -> None:
    output = tmp_path / "refused.json"
    login, user_code = device_login(env, emu, output)
    if how == "deny":
        httpx.post(f"{emu.url}/emulator/v1/deviceCodes:decide", json={"userCode": user_code, "decision": "deny"})
    else:
        emu.state.clock.offset = 3600  # type: ignore[attr-defined]  # the code's 30 minutes are over
    code, _, err = login.finish()
    assert code == 1, err
    errors = [line for line in err.splitlines() if line.startswith("gcptoken: error")]
    assert len(errors) == 1 and message in errors[0]
    assert not output.exists()


def test_device_scopes_are_limited(emu: EmulatorServer, env: dict[str, str]) -> None:
    result = gcptoken(
        "login",
        "--device",
        "--scopes",
        "openid,https://www.googleapis.com/auth/cloud-platform",
        "--client-id-file",
        client_file(emu),
        env=env,
    )
    assert result.code == 2 and "openid, email, profile" in result.err
    answer = httpx.post(
        f"{emu.url}/device/code",
        data={
            "client_id": DesktopClient.from_file(client_file(emu)).client_id,
            "scope": "https://www.googleapis.com/auth/drive",
        },
    )
    assert answer.status_code == 400 and answer.json()["error"] == "invalid_scope"


def test_polling_honours_pending_and_slow_down(
    emu: EmulatorServer, env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Polling too fast gets slow_down, and the interval grows by five seconds each time."""
    monkeypatch.setenv("GCPTOKEN_EMULATOR_HOST", emu.host_port)
    client = DesktopClient.from_file(client_file(emu))
    code = run_flow_sync(device_flow.start_flow(client, DEVICE_SCOPES), None)
    sleeps: list[float] = []
    errors: list[str] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)  # no real waiting: the polls arrive faster than the interval
        if len(sleeps) == 4:
            httpx.post(f"{emu.url}/emulator/v1/deviceCodes:decide", json={"userCode": code.user_code})

    def run(flow: Any) -> dict[str, Any]:
        try:
            return run_flow_sync(flow, None)
        except TokenRequestError as exc:
            errors.append(str(exc.error))
            raise

    answer = device_flow.poll(client, code, run, lambda left: None, sleep)
    assert "refresh_token" in answer
    assert errors[0] == "authorization_pending" and "slow_down" in errors
    assert sleeps[1] == code.interval and sleeps[2] == code.interval + 5


# -- user ID tokens for IAP, reauthentication, logout ---------------------------------------------


@pytest.fixture
def signed_in(emu: EmulatorServer, env: dict[str, str], tmp_path: Path) -> Path:
    output = tmp_path / "signed-in.json"
    login = Login(env, "--no-browser", "--client-id-file", client_file(emu), "--output", str(output))
    httpx.get(consent(emu, login.url(), "iap-user@example.com"))
    assert login.finish()[0] == 0
    return output


def test_an_id_token_for_an_iap_apps_client(emu: EmulatorServer, env: dict[str, str], signed_in: Path) -> None:
    audience = iap_client(emu)
    result = gcptoken("id", audience, "--credentials", str(signed_in), env=env)
    assert result.code == 0, result.err
    claims = Verifier.google(audience=audience, certs=f"{emu.url}/oauth2/v3/certs").verify(result.out.strip())
    assert claims["email"] == "iap-user@example.com"
    assert claims["azp"] == json.loads(signed_in.read_text())["client_id"]
    again = gcptoken("id", audience, "--credentials", str(signed_in), "-v", env=env)
    assert again.out == result.out and "cache hit" in again.err  # cached like every other token


def test_another_projects_client_is_refused_as_google_does(
    emu: EmulatorServer, env: dict[str, str], signed_in: Path
) -> None:
    other = httpx.post(f"{emu.url}/emulator/v1/oauthClients", json={"kind": "web", "projectNumber": "999"}).json()
    result = gcptoken("id", other["clientId"], "--credentials", str(signed_in), env=env)
    assert result.code == 1 and "same project" in result.err


def test_a_non_client_audience_is_refused_before_any_request(
    emu: EmulatorServer, env: dict[str, str], signed_in: Path
) -> None:
    emu.state.clear_requests()
    result = gcptoken("id", "https://svc.a.run.app", "--credentials", str(signed_in), env=env)
    assert result.code == 1
    assert "OAuth client id" in result.err and "--impersonate-service-account" in result.err
    assert emu.state.request_log() == []


def test_reauthentication_says_to_sign_in_again(emu: EmulatorServer, env: dict[str, str], signed_in: Path) -> None:
    httpx.post(f"{emu.url}/emulator/v1/users/iap-user@example.com:reauth", json={"required": True})
    try:
        result = gcptoken("access", "--credentials", str(signed_in), "--no-cache", env=env)
        assert result.code == 1
        assert "reauthenticate; sign in again: gcptoken login" in result.err
    finally:
        httpx.post(f"{emu.url}/emulator/v1/users/iap-user@example.com:reauth", json={"required": False})


def test_logout_revokes_removes_and_forgets(emu: EmulatorServer, env: dict[str, str], signed_in: Path) -> None:
    refresh = json.loads(signed_in.read_text())["refresh_token"]
    assert gcptoken("id", iap_client(emu), "--credentials", str(signed_in), env=env).code == 0
    result = gcptoken("logout", "--credentials", str(signed_in), env=env)
    assert result.code == 0, result.err
    assert "1 cached token(s) forgotten" in result.err
    assert not signed_in.exists() and refresh not in emu.state.refresh_tokens
    again = gcptoken("logout", "--credentials", str(signed_in), env=env)
    assert again.code == 0 and "nobody is signed in" in again.err  # nothing to do is not a failure


def test_logout_forgets_tokens_minted_by_impersonation_through_the_user(
    emu: EmulatorServer, env: dict[str, str], signed_in: Path, tmp_path: Path
) -> None:
    """Tokens minted by impersonating a service account with the user's file as the source were
    the user's (tagged with the impersonated identity, they outlived logout): every one of the four
    kinds is forgotten, and another credential's entries stay."""
    from gcptoken.cache.disk import read_tokens
    from gcptoken.private_files import PrivateDir

    env = {**env, "XDG_CACHE_HOME": str(tmp_path / "xdg")}
    target = f"logout-target-{os.urandom(3).hex()}"
    sa = emu.state.create_service_account(target).email
    emu.state.grant_token_creator(sa, "user:iap-user@example.com")
    other = tmp_path / "other.json"
    other.write_text(json.dumps(emu.state.issue_refresh_token("someone-else@example.com")))
    minted = {
        "user id": ["id", iap_client(emu), "--credentials", str(signed_in)],
        "user access": ["access", "--credentials", str(signed_in)],
        "impersonated id": [
            "id",
            "https://svc.a.run.app",
            "--impersonate-service-account",
            sa,
            "--credentials",
            str(signed_in),
        ],
        "impersonated access": ["access", "--impersonate-service-account", sa, "--credentials", str(signed_in)],
        "another user": ["access", "--credentials", str(other)],
    }
    tokens = {}
    for name, args in minted.items():
        result = gcptoken(*args, env=env)
        assert result.code == 0, (name, result.err)
        tokens[name] = result.out.strip()

    def cached() -> set[str]:
        with PrivateDir(str(tmp_path / "xdg" / "gcptoken")) as directory:
            return {entry["value"] for entry in read_tokens(directory).values()}

    assert cached() == set(tokens.values())
    result = gcptoken("logout", "--credentials", str(signed_in), env=env)
    assert result.code == 0, result.err
    assert "4 cached token(s) forgotten" in result.err
    assert cached() == {tokens["another user"]}


def test_the_library_auth_classes_and_call(
    emu: EmulatorServer, env: dict[str, str], signed_in: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An app that accepts ID tokens for its OAuth client (as IAP's programmatic access checks
    them), called as the signed-in person from the library, httpx, requests and ``gcptoken call``."""
    import requests

    from gcptoken.demo.showcase import protected_service
    from gcptoken.integrations import httpx_auth, requests_auth
    from gcptoken.servers.serving import AsgiServer, bind

    monkeypatch.setenv("GCPTOKEN_EMULATOR_HOST", emu.host_port)
    credentials = load_credentials(signed_in)
    audience = iap_client(emu)
    assert credentials.id_token(audience).claims["aud"] == audience
    with pytest.raises(RefusedError, match="OAuth client id"):
        credentials.id_token("https://svc.a.run.app")
    app = protected_service(Verifier.google(audience=audience, certs=f"{emu.url}/oauth2/v3/certs"))
    with AsgiServer(app, bind("127.0.0.1", 0)) as server:
        hello = httpx.get(server.url, auth=httpx_auth.IdTokenAuth(credentials, audience=audience))
        assert hello.status_code == 200 and "iap-user@example.com" in hello.text
        answered = requests.get(server.url, auth=requests_auth.IdTokenAuth(credentials, audience=audience), timeout=10)
        assert answered.status_code == 200
        called = gcptoken("call", server.url, "--audience", audience, "--credentials", str(signed_in), env=env)
        assert called.code == 0 and "iap-user@example.com" in called.out, called.err
        assert httpx.get(server.url).status_code == 401


@pytest.mark.parametrize("mode", ["--no-browser", "--device"])
def test_ctrl_c_cancels_cleanly(emu: EmulatorServer, env: dict[str, str], tmp_path: Path, mode: str) -> None:
    output = tmp_path / "cancelled.json"
    login = Login(env, mode, "--client-id-file", client_file(emu), "--output", str(output))
    login.read_until("/o/oauth2/auth?" if mode == "--no-browser" else "enter the code")
    login.process.send_signal(signal.SIGINT)
    code, out, err = login.finish()
    assert code == 130 and "gcptoken: interrupted" in err
    assert "Traceback" not in err and out == "" and not output.exists()


def test_a_forged_redirect_at_the_loopback_port_is_ignored(
    emu: EmulatorServer, env: dict[str, str], tmp_path: Path
) -> None:
    """Any local process can reach the redirect port: an answer without this sign-in's state is
    refused (and said), and the real one still completes the sign-in."""
    output = tmp_path / "forged.json"
    login = Login(env, "--no-browser", "--client-id-file", client_file(emu), "--output", str(output))
    location = httpx.URL(consent(emu, login.url()))
    forged = location.copy_set_param("state", "attacker").copy_set_param("code", "4/0attacker")
    assert httpx.get(str(forged)).status_code == 400
    login.read_until("not from this sign-in")
    assert httpx.get(str(location)).status_code == 200
    code, _, err = login.finish()
    assert code == 0, err
    assert json.loads(output.read_text())["account"] == "alice@example.com"


class BrowserStandIn:
    """A program for ``$BROWSER`` that stands for the browser: it keeps the URL it was given on a
    command line (a process that sleeps with it in its argv, where every local user can read it, as
    a real browser's), leaves a copy for the test, and exits as a browser launcher does."""

    def __init__(self, directory: Path, fail: bool = False) -> None:
        self.url_file, self.pid_file = directory / "opened-url", directory / "holder.pid"
        self.script = directory / "browser.sh"
        self.script.write_text(
            "#!/bin/sh\n"
            "python3 -c 'import time; time.sleep(120)' \"$1\" </dev/null >/dev/null 2>&1 &\n"
            f"echo $! > {self.pid_file}.tmp && mv {self.pid_file}.tmp {self.pid_file}\n"
            f'printf %s "$1" > {self.url_file}.tmp && mv {self.url_file}.tmp {self.url_file}\n'
            f"exit {1 if fail else 0}\n"
        )
        self.script.chmod(0o700)

    @property
    def env(self) -> dict[str, str]:
        return {"BROWSER": str(self.script)}

    def url(self, timeout: float = 30) -> str:
        deadline = time.monotonic() + timeout
        while not self.url_file.exists():  # the browser command runs beside gcptoken, not before it
            assert time.monotonic() < deadline, "the browser was never opened"
            time.sleep(0.02)
        return self.url_file.read_text()

    def pid(self) -> int:
        self.url()
        return int(self.pid_file.read_text())

    def close(self) -> None:
        if self.pid_file.exists():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(self.pid_file.read_text()), signal.SIGTERM)


@pytest.fixture
def stand_in(tmp_path: Path) -> Iterator[BrowserStandIn]:
    browser = BrowserStandIn(tmp_path)
    yield browser
    browser.close()


def through_the_launcher(
    emu: EmulatorServer, launch_url: str, email: str = "alice@example.com", decision: str = "allow"
) -> httpx.Response:
    """What a browser does with the launcher: follow its 302 keeping its cookie, consent at the
    emulator, and land on the loopback redirect with the cookie."""
    with httpx.Client() as browser:
        launched = browser.get(launch_url)
        assert launched.status_code == 302, launched.text
        authorization_url = launched.headers["location"]
        assert browser.get(authorization_url).status_code == 200  # the consent page
        return browser.get(consent(emu, authorization_url, email, decision))


def test_the_browser_is_opened_by_default(
    emu: EmulatorServer, env: dict[str, str], tmp_path: Path, stand_in: BrowserStandIn
) -> None:
    """Without --no-browser the browser ($BROWSER, as Python's webbrowser reads it) gets a one-time
    loopback launcher, never the authorization URL; the launcher leads the browser there."""
    output = tmp_path / "opened.json"
    login = Login({**env, **stand_in.env}, "--client-id-file", client_file(emu), "--output", str(output))
    login.read_until("your browser has been opened")
    url = stand_in.url()
    assert url.startswith("http://127.0.0.1:") and "/launch/" in url
    for secret in ("state", "code_challenge", "/o/oauth2/"):
        assert secret not in url
    assert through_the_launcher(emu, url).status_code == 200
    code, _, err = login.finish()
    assert code == 0, err
    assert json.loads(output.read_text())["account"] == "alice@example.com"
    assert url not in err and "/launch/" not in err  # the link's secret is shown nowhere


# -- another user on the same host, and what -v shows ----------------------------------------------


def test_a_symlink_planted_at_the_output_is_not_followed(
    emu: EmulatorServer, env: dict[str, str], tmp_path: Path
) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("someone else's file\n")
    planted = tmp_path / "planted.json"
    planted.symlink_to(victim)
    args = ("--no-browser", "--force", "--client-id-file", client_file(emu), "--output", str(planted))
    result = gcptoken("login", *args, env=env)
    code, out, err = result.code, result.out, result.err
    assert code == 3 and "symbolic link" in err and out == "" and "/o/oauth2/auth" not in err
    assert victim.read_text() == "someone else's file\n" and planted.is_symlink()


def test_a_directory_another_user_owns_is_refused(emu: EmulatorServer, env: dict[str, str], tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("making a directory that belongs to another user needs root (CI runs as root)")
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    os.chown(theirs, 65534, 65534)
    args = ("--no-browser", "--client-id-file", client_file(emu), "--output", str(theirs / "adc.json"))
    result = gcptoken("login", *args, env=env)
    assert result.code == 3 and "not to you" in result.err and "/o/oauth2/auth" not in result.err
    assert list(theirs.iterdir()) == []


def test_verbose_sign_in_prints_no_secret(emu: EmulatorServer, env: dict[str, str], tmp_path: Path) -> None:
    output = tmp_path / "verbose.json"
    login = Login(env, "-v", "--no-browser", "--client-id-file", client_file(emu), "--output", str(output))
    location = consent(emu, login.url())
    httpx.get(location)
    code, _, err = login.finish()
    assert code == 0, err
    info = json.loads(output.read_text())
    code_value = dict(httpx.URL(location).params)["code"]
    for secret in (info["refresh_token"], info["client_secret"], code_value):
        assert secret not in err
    assert "grant=authorization_code" in err  # -v did log the exchange
    result = gcptoken("id", iap_client(emu), "--credentials", str(output), "-v", "--no-cache", env=env)
    assert result.code == 0
    for secret in (info["refresh_token"], info["client_secret"], result.out.strip()):
        assert secret not in result.err
