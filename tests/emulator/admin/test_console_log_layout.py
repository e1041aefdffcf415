"""The console's request log stays readable with real traffic: after a run of every flow (token
grants with gcptoken and google-auth, impersonation, STS for OIDC, AWS, X.509 and workforce, the
device sign-in, the metadata server, IAP, tokeninfo), the time, method, path and status columns keep
their width, nothing overflows its cell, and a long detail is one line until opened in place,
wrapped within its column, and stays open as the log refreshes. Measured in headless Chromium with
getBoundingClientRect; a screenshot goes to the test's tmp_path."""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import gcptoken
from gcptoken.credentials import MetadataCredentials
from gcptoken.emulator import EmulatorServer, scenarios
from gcptoken.emulator.state.state_dir import signin_clients
from gcptoken.testing import EmulatorClient, write_key_file
from tests.browser import no_console_errors, wait_for_text
from tests.cli.test_inspect_browser import screenshot

pytestmark = pytest.mark.slow

AUD = "https://console-layout.a.run.app"
FIXED = ("time", "method", "path", "status")


@pytest.fixture(scope="module")
def emu() -> Iterator[EmulatorServer]:
    with EmulatorServer(mtls_port=0) as server:  # the mTLS port: X.509 federation too
        yield server


def _every_flow(emu: EmulatorServer, scratch: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Real requests at the emulator, as clients make them."""
    from google.auth.transport.requests import Request as GoogleRequest

    google_service_account: Any = importlib.import_module("google.oauth2.service_account")  # untyped

    monkeypatch.setenv("GCPTOKEN_EMULATOR_HOST", emu.host_port)
    for name in ("GCE_METADATA_HOST", "GCE_METADATA_IP"):
        monkeypatch.setenv(name, emu.host_port)
    key = emu.key_file("console-flows")
    key_path = write_key_file(scratch, key)
    service_account = gcptoken.load_credentials(str(key_path))
    service_account.id_token(AUD)
    service_account.access_token()
    # google-auth's grant: a long detail (the assertion's claims)
    google_auth = google_service_account.IDTokenCredentials.from_service_account_info(key, target_audience=AUD)
    google_auth.refresh(GoogleRequest())
    scenarios.user(emu).access_token()
    member = f"serviceAccount:{key['client_email']}"
    scenarios.impersonating(emu, service_account, "console-target", member).id_token(AUD)
    scenarios.federation(emu, scratch).credentials().id_token(AUD)  # STS, then impersonation
    scenarios.aws_workload(emu).access_token()
    x509 = scenarios.x509_workload(emu, scratch)
    monkeypatch.setenv("GCPTOKEN_EMULATOR_CA", str(scratch / "ca.pem"))  # the mTLS port's certificate
    x509.access_token()
    scenarios.workforce_person(emu).access_token()
    metadata = MetadataCredentials()
    metadata.access_token()
    metadata.id_token(AUD)
    desktop, _ = signin_clients(emu.state)  # the device sign-in: a code, a person says yes, tokens
    code = httpx.post(f"{emu.url}/device/code", data={"client_id": desktop.client_id, "scope": "openid email"}).json()
    decided = httpx.post(
        f"{emu.url}/emulator/v1/deviceCodes:decide", json={"userCode": code["user_code"], "email": "alice@example.com"}
    )
    assert decided.status_code == 200, decided.text
    signed_in = httpx.post(
        f"{emu.url}/token",
        data={
            "grant_type": "urn:ietf:params:oauth:grant-type:device_code",
            "device_code": code["device_code"],
            "client_id": desktop.client_id,
            "client_secret": desktop.client_secret,
        },
    )
    assert signed_in.status_code == 200, signed_in.text
    assertion = EmulatorClient(emu).iap_assertion("alice@example.com")
    gcptoken.Verifier.iap(f"/projects/{emu.state.project_number}/apps/{emu.state.project_id}").verify(assertion)
    tokeninfo = httpx.get(f"{emu.url}/oauth2/v3/tokeninfo", params={"id_token": signed_in.json()["id_token"]})
    assert tokeninfo.status_code == 200
    assert httpx.post(f"{emu.url}/v1/projects/-/serviceAccounts/x@y:notAMethod", json={}).status_code == 404


_LAYOUT = """
const widths = cells => [...cells].slice(0, 4).map(c => c.getBoundingClientRect().width);
const rows = [...document.querySelectorAll('#log tbody tr')];
return {
  header: widths(document.querySelectorAll('#log thead th')),
  rows: rows.map(tr => widths(tr.children)),
  overflowing: rows.flatMap(tr => [...tr.children].filter(td => td.scrollWidth > td.clientWidth + 1)
    .map(td => td.textContent.slice(0, 80))),
  summaries: [...document.querySelectorAll('#log details:not([open]) > summary')].map(s => {
    const lineHeight = parseFloat(getComputedStyle(s).lineHeight) || 16;
    return s.getBoundingClientRect().height / lineHeight;
  }),
  table: document.getElementById('log').getBoundingClientRect().width,
  section: document.getElementById('log').parentElement.clientWidth,
  pageScrolls: document.documentElement.scrollWidth > window.innerWidth,
};
"""


def _layout(browser: Any) -> dict[str, Any]:
    layout: dict[str, Any] = browser.execute_script(_LAYOUT)
    return layout


def test_the_log_keeps_its_columns_with_real_traffic(
    browser: Any, emu: EmulatorServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(f"{emu.url}/emulator/ui")
    wait_for_text(browser, emu.state.default_account.email)
    before = _layout(browser)["header"]
    _every_flow(emu, tmp_path, monkeypatch)

    def shown(driver: Any) -> bool:
        text = driver.find_element(By.ID, "log").text
        return all(part in text for part in (":generateIdToken", "/v1/token", "/device/code", "computeMetadata"))

    WebDriverWait(browser, 15).until(shown, "the log never showed the flows")
    browser.execute_script("document.getElementById('log-pause').checked = true")  # measure one rendering
    layout = _layout(browser)
    assert len(layout["rows"]) > 20
    assert layout["header"] == pytest.approx(before, abs=0.5)  # the columns did not move with the traffic
    for row in layout["rows"]:
        assert row == pytest.approx(layout["header"], abs=0.5)
    assert layout["overflowing"] == []
    assert layout["summaries"] and all(lines < 1.5 for lines in layout["summaries"])  # one line each
    assert layout["table"] <= layout["section"] + 0.5 and not layout["pageScrolls"]

    # A JWT assertion's claims (google-auth's grant) open in place, wrapped within their column.
    summaries = browser.find_elements(By.CSS_SELECTOR, "#log details > summary")  # paused: they stay in the page
    longest = next(s for s in summaries if s.get_attribute("textContent").startswith("assertion {"))
    full_text = longest.get_attribute("textContent")
    assert '"aud"' in full_text and len(full_text) > 200
    longest.click()
    opened = browser.execute_script(
        "const d = document.querySelector('#log details[open]'); const full = d.querySelector('.full');"
        "const r = full.getBoundingClientRect(); const cell = d.closest('td').getBoundingClientRect();"
        "return {height: r.height, line: parseFloat(getComputedStyle(full).lineHeight),"
        " inside: r.left >= cell.left - 0.5 && r.right <= cell.right + 0.5,"
        " scrolls: full.scrollWidth > full.clientWidth + 1,"
        " text: full.textContent}"
    )
    assert opened["text"] == full_text and opened["inside"] and not opened["scrolls"]
    assert opened["height"] > 2 * opened["line"]  # wrapped over lines, not cut
    assert _layout(browser)["header"] == pytest.approx(before, abs=0.5)
    browser.execute_script("document.getElementById('log-pause').checked = false")
    # The log refreshes (a new request shows) and the opened detail stays open.
    assert httpx.get(f"{emu.url}/v1/console-refresh-marker").status_code == 404
    WebDriverWait(browser, 15).until(lambda d: "console-refresh-marker" in d.find_element(By.ID, "log").text)
    still_open = browser.execute_script(
        "return [...document.querySelectorAll('#log details[open] .full')].map(f => f.textContent)"
    )
    assert still_open == [full_text]
    no_console_errors(browser)

    shot = tmp_path / "console-log.png"
    browser.execute_script("document.getElementById('log').scrollIntoView()")
    assert browser.save_screenshot(str(shot))
    assert shot.stat().st_size > 0 and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    screenshot(browser, "console-log.png")  # $GCPTOKEN_SCREENSHOTS, when set
