"""The sign-in pages in a real headless Chromium (Debian's chromium and chromium-driver, driven by
Selenium): ``gcptoken login`` completes when a person picks an account and clicks Allow, stops on
Deny, and the device page approves a code; google-auth-oauthlib's InstalledAppFlow completes the
same way. gcloud and google-auth read the file ``gcptoken login`` writes."""

from __future__ import annotations

import importlib
import json
import os
import queue
import shutil
import subprocess
import threading
import webbrowser
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gcptoken import Verifier
from gcptoken.emulator import EmulatorServer
from gcptoken.emulator.scenarios import gcloud_environment
from tests.browser import click, no_console_errors, type_into, wait_for_text
from tests.cli.test_cli import gcptoken
from tests.cli.test_login import BrowserStandIn, Login, client_file, iap_client

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def emu(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorServer]:
    with EmulatorServer(state_dir=tmp_path_factory.mktemp("browser-state"), mtls_port=None) as server:
        server.state.create_user("existing@example.com")
        yield server


@pytest.fixture
def env(emu: EmulatorServer, tmp_path: Path) -> dict[str, str]:
    return {"GCPTOKEN_EMULATOR_HOST": emu.host_port, "CLOUDSDK_CONFIG": str(tmp_path / "gcloud")}


def test_sign_in_with_allow_in_a_real_browser(browser: Any, emu: EmulatorServer, env: dict[str, str]) -> None:
    login = Login(env, "--no-browser", "--client-id-file", client_file(emu))
    browser.get(login.url())
    assert "Sign in" in browser.title
    page = browser.page_source
    assert "existing@example.com" in page and "See, edit, configure, and delete your Google Cloud data" in page
    for label in ("Use another account", "Choose an account"):
        assert label in page  # every field is labelled
    type_into(browser, "#other_account", "browser-user@example.com")
    click(browser, "button[value=allow]")
    wait_for_text(browser, "You may close this window")  # the loopback redirect answered
    no_console_errors(browser)
    code, out, err = login.finish()
    assert code == 0, err
    adc = Path(out.strip())
    assert json.loads(adc.read_text())["account"] == "browser-user@example.com"
    token = gcptoken("id", iap_client(emu), env=env)  # the ADC file, found by discovery
    assert token.code == 0, token.err
    claims = Verifier.google(audience=iap_client(emu), certs=f"{emu.url}/oauth2/v3/certs").verify(token.out.strip())
    assert claims["email"] == "browser-user@example.com"


def test_the_launcher_in_a_real_browser_across_sites(
    browser: Any, emu: EmulatorServer, env: dict[str, str], tmp_path: Path
) -> None:
    """Without --no-browser: Chromium is opened on the one-time launcher, follows it to the consent
    page on another site (``localhost``, as accounts.google.com is to 127.0.0.1), and the session
    cookie (SameSite=Lax) comes back with the redirect, so the answer is taken."""
    installed = json.loads(Path(client_file(emu)).read_text())
    installed["installed"]["auth_uri"] = installed["installed"]["auth_uri"].replace("127.0.0.1", "localhost")
    cross_site = tmp_path / "client.json"
    cross_site.write_text(json.dumps(installed))
    stand_in = BrowserStandIn(tmp_path)
    output = tmp_path / "adc.json"
    try:
        login = Login({**env, **stand_in.env}, "--client-id-file", str(cross_site), "--output", str(output))
        login.read_until("your browser has been opened")
        launcher = stand_in.url()
        assert "/launch/" in launcher and "state" not in launcher
        browser.get(launcher)
        wait_for_text(browser, "Choose an account")
        assert browser.current_url.startswith(f"http://localhost:{emu.host_port.rsplit(':', 1)[1]}/o/oauth2/auth?")
        type_into(browser, "#other_account", "launched@example.com")
        click(browser, "button[value=allow]")
        wait_for_text(browser, "You may close this window")
        assert browser.current_url.startswith("http://127.0.0.1:")
        no_console_errors(browser)
        code, _, err = login.finish()
        assert code == 0, err
        assert json.loads(output.read_text())["account"] == "launched@example.com"
    finally:
        stand_in.close()


def test_deny_in_a_real_browser(browser: Any, emu: EmulatorServer, env: dict[str, str], tmp_path: Path) -> None:
    output = tmp_path / "denied.json"
    login = Login(env, "--no-browser", "--client-id-file", client_file(emu), "--output", str(output))
    browser.get(login.url())
    click(browser, "button[value=deny]")
    code, _, err = login.finish()
    assert code == 1 and "access was denied in the browser" in err
    assert not output.exists()


def test_a_bad_request_shows_googles_error_page(browser: Any, emu: EmulatorServer) -> None:
    browser.get(f"{emu.url}/o/oauth2/v2/auth?client_id=nobody&redirect_uri=http://127.0.0.1:1/&response_type=code")
    assert "Error 401: invalid_client" in browser.page_source
    client_id = json.loads(Path(client_file(emu)).read_text())["installed"]["client_id"]
    query = httpx.QueryParams(
        {
            "client_id": client_id,
            "redirect_uri": "https://attacker.example/",
            "response_type": "code",
            "scope": "openid",
        }
    )
    browser.get(f"{emu.url}/o/oauth2/v2/auth?{query}")
    assert "redirect_uri_mismatch" in browser.page_source
    statuses = [entry["message"] for entry in browser.get_log("browser")]
    assert all("status of 40" in message for message in statuses), statuses  # the error pages' own status only


def test_the_device_page_in_a_real_browser(
    browser: Any, emu: EmulatorServer, env: dict[str, str], tmp_path: Path
) -> None:
    emu.state.signin.device_interval = 1
    output = tmp_path / "device.json"
    login = Login(env, "--device", "--client-id-file", client_file(emu), "--output", str(output))
    line = login.read_until("enter the code")
    verification_url, user_code = line.split(" open ")[1].split(" and enter the code ")
    browser.get(verification_url)
    type_into(browser, "#user_code", user_code.strip())
    click(browser, "button[type=submit]")
    wait_for_text(browser, "Choose an account")
    click(browser, "input[value='existing@example.com']")
    click(browser, "button[value=allow]")
    wait_for_text(browser, "return to your device")
    no_console_errors(browser)
    code, _, err = login.finish()
    assert code == 0, err
    assert json.loads(output.read_text())["account"] == "existing@example.com"


class _HandOver(webbrowser.BaseBrowser):
    """A webbrowser controller that hands the URL to the Selenium-driven Chromium."""

    urls: queue.Queue[str] = queue.Queue()

    def open(self, url: str, new: int = 0, autoraise: bool = True) -> bool:
        self.urls.put(url)
        return True


def test_google_auth_oauthlib_installed_app_flow(
    browser: Any, emu: EmulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """google-auth-oauthlib's InstalledAppFlow.run_local_server, unchanged, against the emulator's
    consent page and token endpoint, with the desktop client file from the state dir."""
    flow_module: Any = importlib.import_module("google_auth_oauthlib.flow")
    from google.auth.transport.requests import Request

    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")  # the emulator speaks plain HTTP on loopback
    webbrowser.register("gcptoken-selenium", None, _HandOver("gcptoken-selenium"))
    installed = json.loads(Path(client_file(emu)).read_text())
    flow = flow_module.InstalledAppFlow.from_client_config(installed, scopes=["openid", "email"])
    done: dict[str, Any] = {}

    def run() -> None:
        try:
            done["credentials"] = flow.run_local_server(
                host="127.0.0.1", port=0, browser="gcptoken-selenium", timeout_seconds=60
            )
        except Exception as exc:
            done["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    browser.get(_HandOver.urls.get(timeout=30))
    click(browser, "input[value='existing@example.com']")
    click(browser, "button[value=allow]")
    thread.join(60)
    assert "error" not in done, done.get("error")
    credentials = done["credentials"]
    assert credentials.refresh_token in emu.state.refresh_tokens
    credentials.refresh(Request())
    assert emu.state.access_tokens[credentials.token].email == "existing@example.com"


def test_gcloud_and_google_auth_read_the_file(
    emu: EmulatorServer, env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The file is gcloud's ADC format: gcloud prints an access token from it, and google-auth
    refreshes it, both against the emulator."""
    from google.auth.transport.requests import Request

    login = Login(env, "--no-browser", "--client-id-file", client_file(emu))
    httpx.get(
        httpx.post(f"{emu.url}/emulator/v1/consents", json={"url": login.url(), "email": "gc@example.com"}).json()[
            "location"
        ]
    )
    code, out, err = login.finish()
    assert code == 0, err
    adc = Path(out.strip())
    user_credentials: Any = importlib.import_module("google.oauth2.credentials")
    # google-auth always uses Google's token endpoint for user files: its documented override.
    monkeypatch.setattr(user_credentials, "_GOOGLE_OAUTH2_TOKEN_ENDPOINT", f"{emu.url}/token")
    credentials = user_credentials.Credentials.from_authorized_user_file(str(adc))
    credentials.refresh(Request())
    assert emu.state.access_tokens[credentials.token].email == "gc@example.com"
    if shutil.which("gcloud") is None:
        pytest.skip("gcloud is not installed here (CI has it)")
    gcloud_env = {
        **os.environ,
        **gcloud_environment(emu.url, Path(env["CLOUDSDK_CONFIG"]), emu.host_port),
        "CLOUDSDK_CONFIG": env["CLOUDSDK_CONFIG"],
    }
    printed = subprocess.run(
        ["gcloud", "auth", "application-default", "print-access-token"],
        capture_output=True,
        text=True,
        env=gcloud_env,
        timeout=120,
        check=False,
    )
    assert printed.returncode == 0, printed.stderr
    assert emu.state.access_tokens[printed.stdout.strip()].email == "gc@example.com"
