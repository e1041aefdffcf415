"""``gcptoken inspect`` in a real headless Chromium: a valid emulator token, a tampered and an
expired one, an IAP assertion, an opaque access token with the tokeninfo button, and no request to
any other origin. Screenshots go to $GCPTOKEN_SCREENSHOTS when set (the README's come from here)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gcptoken.emulator import EmulatorServer
from gcptoken.emulator.keys import iap
from tests.browser import click, no_console_errors, wait_for_text
from tests.cli.test_cli import COMMAND, gcptoken

pytestmark = pytest.mark.slow

AUD = "https://svc-inspected.a.run.app"


@pytest.fixture(scope="module")
def emu() -> Iterator[EmulatorServer]:
    with EmulatorServer() as server:
        yield server


class Inspector:
    def __init__(self, emu: EmulatorServer, *args: str, stdin: str | None = None) -> None:
        self.process = subprocess.Popen(
            [*COMMAND, "inspect", "--no-browser", *args],
            stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "GCPTOKEN_EMULATOR_HOST": emu.host_port},
        )
        if stdin is not None:
            assert self.process.stdin is not None
            self.process.stdin.write(stdin)
            self.process.stdin.close()
            self.process.stdin = None  # communicate() must not touch it again
        assert self.process.stdout is not None
        self.url = self.process.stdout.readline().strip()
        assert self.url.startswith("http://127.0.0.1:"), self.process.stderr.read() if self.process.stderr else ""

    def stop(self) -> str:
        self.process.send_signal(signal.SIGINT)
        _, err = self.process.communicate(timeout=20)
        return err


@pytest.fixture(scope="module")
def inspector(emu: EmulatorServer) -> Iterator[Inspector]:
    running = Inspector(emu)
    yield running
    err = running.stop()
    assert "eyJ" not in err  # no token is ever logged


def id_token(emu: EmulatorServer) -> str:
    return emu.state.service_account_id_token(emu.state.default_account, AUD)


def paste(browser: Any, token: str, audience: str = "") -> None:
    """Fill the form as a paste would (a long token typed key by key is slow), then Inspect."""
    browser.execute_script(
        "document.getElementById('token').value = arguments[0];"
        "document.getElementById('audience').value = arguments[1];",
        token,
        audience,
    )
    click(browser, "#inspect")


def text(browser: Any, element_id: str) -> str:
    from selenium.webdriver.common.by import By

    return str(browser.find_element(By.ID, element_id).text)


def screenshot(browser: Any, name: str) -> None:
    where = os.environ.get("GCPTOKEN_SCREENSHOTS")
    if where:
        Path(where).mkdir(parents=True, exist_ok=True)
        browser.save_screenshot(str(Path(where) / name))


def test_a_valid_emulator_token(browser: Any, inspector: Inspector, emu: EmulatorServer) -> None:
    browser.get(inspector.url)
    paste(browser, id_token(emu), AUD)
    wait_for_text(browser, "valid — checked with")
    assert "service account" in text(browser, "kind")
    assert "audience checked" in text(browser, "verdict")
    claims = text(browser, "claims")
    assert "audience: who the token is for" in claims and emu.state.default_account.email in claims
    times = text(browser, "times")
    assert "exp" in times and ("in 59 min" in times or "in 1 h" in times)
    no_console_errors(browser)
    screenshot(browser, "inspector.png")


def test_a_tampered_token_fails_on_its_signature(browser: Any, inspector: Inspector, emu: EmulatorServer) -> None:
    import base64

    header, claims, signature = id_token(emu).split(".")
    decoded = json.loads(base64.urlsafe_b64decode(claims + "=" * (-len(claims) % 4)))
    decoded["email"] = "attacker@example.com"
    tampered = base64.urlsafe_b64encode(json.dumps(decoded).encode()).rstrip(b"=").decode()
    browser.get(inspector.url)
    paste(browser, f"{header}.{tampered}.{signature}", AUD)
    wait_for_text(browser, "invalid (signature)")


def test_an_expired_token(browser: Any, inspector: Inspector, emu: EmulatorServer) -> None:
    state = emu.state
    then = int(state.clock()) - 7200
    expired = state.sign_id_token(
        {**state.identity_claims(state.default_account, AUD), "iat": then, "exp": then + 3600}
    )
    browser.get(inspector.url)
    paste(browser, expired, AUD)
    wait_for_text(browser, "invalid (expired)")
    assert "ago" in text(browser, "times")


def test_an_iap_assertion_is_recognized_and_verified_with_iaps_keys(
    browser: Any, inspector: Inspector, emu: EmulatorServer
) -> None:
    audience = iap.default_audience(emu.state)
    assertion = iap.assertion(emu.state, "person@example.com", audience)
    browser.get(inspector.url)
    paste(browser, assertion, audience)
    wait_for_text(browser, "valid — checked with IAP's public keys")
    assert "IAP signed header" in text(browser, "kind")


def test_an_access_token_offers_tokeninfo(browser: Any, inspector: Inspector, emu: EmulatorServer) -> None:
    grant = emu.state.issue_access_token(emu.state.default_account, ("https://www.googleapis.com/auth/cloud-platform",))
    browser.get(inspector.url)
    paste(browser, grant.token)
    wait_for_text(browser, "OAuth access token (opaque)")
    assert "sends this token to Google" in browser.page_source
    click(browser, "#tokeninfo")
    wait_for_text(browser, emu.state.default_account.email)  # the emulator's tokeninfo answered


def test_a_refresh_token_warns_to_revoke_it(browser: Any, inspector: Inspector) -> None:
    browser.get(inspector.url)
    paste(browser, "1//0" + "x" * 60)
    wait_for_text(browser, "revoke it now")


def test_copy_buttons(browser: Any, inspector: Inspector, emu: EmulatorServer) -> None:
    token = id_token(emu)
    browser.get(inspector.url)
    paste(browser, token, AUD)
    wait_for_text(browser, "valid — checked with")
    click(browser, "#copy-curl")
    copied = browser.execute_script("return document.getElementById('copied').value")
    assert copied == f'curl -H "Authorization: Bearer {token}" {AUD}'
    click(browser, "#copy-claims")
    claims = json.loads(browser.execute_script("return document.getElementById('copied').value"))
    assert claims["aud"] == AUD


def test_the_page_asks_no_other_origin(browser: Any, inspector: Inspector, emu: EmulatorServer) -> None:
    browser.get_log("performance")  # forget earlier tests' requests
    browser.get(inspector.url)
    paste(browser, id_token(emu), AUD)
    wait_for_text(browser, "valid — checked with")
    origin = inspector.url.split("/", 3)
    own = f"{origin[0]}//{origin[2]}"
    urls = []
    for entry in browser.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message.get("method") == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    assert urls and all(url.startswith(own) or url.startswith("data:") for url in urls), urls


def test_a_token_given_on_the_command_line_is_shown_at_once(browser: Any, emu: EmulatorServer) -> None:
    running = Inspector(emu, "-", stdin=id_token(emu))
    try:
        browser.get(running.url)
        wait_for_text(browser, "Google ID token")
        browser.get(running.url)  # handed over once: a reload shows an empty form
        assert text(browser, "kind") == ""
    finally:
        running.stop()


def test_other_paths_and_hosts_are_refused(inspector: Inspector) -> None:
    base = inspector.url.rsplit("/", 2)[0]
    assert httpx.get(f"{base}/wrong-secret/").status_code == 404
    assert httpx.get(inspector.url, headers={"Host": "evil.example"}).status_code == 403  # DNS rebinding
    api = inspector.url + "api/inspect"
    assert httpx.post(api, data={"token": "x"}).status_code == 415  # a cross-site form cannot post JSON
    assert httpx.post(api, json={"token": "x"}, headers={"Origin": "https://evil.example"}).status_code == 403
    assert httpx.post(api, json={"token": "x"}).status_code == 404  # not the browser that opened the page


def test_the_command_line_refuses_a_bad_port() -> None:
    result = gcptoken("inspect", "--no-browser", "--port", "70000")
    assert result.code == 2 and result.err.count("\n") == 1
