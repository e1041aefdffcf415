"""The emulator console (``/emulator/ui``) in a real headless Chromium: create a service account,
grant a binding, inject a fault and see the requests it causes in the live log, mint a test token,
download a key; no console errors, nothing from another origin. $GCPTOKEN_SCREENSHOTS receives a
screenshot (the README's)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from gcptoken.emulator import EmulatorServer
from gcptoken.jose import compact
from tests.browser import click, no_console_errors, type_into, wait_for_text
from tests.cli.test_inspect_browser import screenshot

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def emu() -> Iterator[EmulatorServer]:
    with EmulatorServer() as server:
        yield server


def value(browser: Any, element_id: str) -> str:
    return str(browser.execute_script(f"return document.getElementById('{element_id}').value"))


def test_create_grant_fault_and_watch_the_log(browser: Any, emu: EmulatorServer) -> None:
    from selenium.webdriver.support.ui import Select

    browser.get(f"{emu.url}/emulator/ui")
    wait_for_text(browser, emu.state.default_account.email)  # the accounts list loaded
    type_into(browser, "#sa-id", "console-made")
    type_into(browser, "#sa-name", "Made in the console")
    click(browser, "#sa-create button[type=submit]")
    email = f"console-made@{emu.state.project_id}.iam.gserviceaccount.com"
    wait_for_text(browser, f"created {email}")
    assert email in emu.state.service_accounts

    from selenium.webdriver.common.by import By

    Select(browser.find_element(By.ID, "binding-account")).select_by_value(email)
    type_into(browser, "#binding-member", "user:alice@example.com")
    click(browser, "#binding button[type=submit]")
    wait_for_text(browser, f"user:alice@example.com may act as {email}")
    assert emu.state.may_act_as("user:alice@example.com", email)

    type_into(browser, "#fault-path", "/oauth2/v3/certs")
    type_into(browser, "#fault-value", "503")
    click(browser, "#fault-create button[type=submit]")
    wait_for_text(browser, "the next 1 request(s) to /oauth2/v3/certs fail")
    assert httpx.get(f"{emu.url}/oauth2/v3/certs").status_code == 503  # the injected fault
    assert httpx.get(f"{emu.url}/oauth2/v3/certs").status_code == 200
    from selenium.webdriver.support.ui import WebDriverWait

    def log_shows_the_fault(driver: Any) -> bool:  # the live log, refreshed without a reload
        shown = driver.find_element(By.ID, "log").text
        return "/oauth2/v3/certs 503" in shown and "/oauth2/v3/certs 200" in shown  # a poll may fall between

    WebDriverWait(browser, 15).until(log_shows_the_fault, "the log never showed the 503")
    log = browser.find_element(By.ID, "log").text
    assert "/oauth2/v3/certs 200" in log and "/emulator/v1/serviceAccounts" in log
    no_console_errors(browser)
    browser.execute_script("window.scrollTo(0, 0)")
    screenshot(browser, "console.png")


def test_mint_tokens_and_download_a_key(browser: Any, emu: EmulatorServer) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    browser.get(f"{emu.url}/emulator/ui")
    wait_for_text(browser, emu.state.default_account.email)
    for kind, issuer in (("iap", "https://cloud.google.com/iap"), ("user", "https://accounts.google.com")):
        Select(browser.find_element(By.ID, "mint-kind")).select_by_value(kind)
        type_into(browser, "#mint-who", "bob@example.com")
        click(browser, "#mint button[type=submit]")
        wait_for_text(browser, f"minted a {kind} token")
        claims = compact.parse(value(browser, "output")).claims
        assert claims["iss"] == issuer and claims["email"] == "bob@example.com"
    buttons = browser.find_elements(By.XPATH, "//button[text()='New key file']")
    buttons[0].click()
    wait_for_text(browser, "downloaded, and in Output")
    key = json.loads(value(browser, "output"))
    assert (
        key["type"] == "service_account"
        and key["private_key_id"] in emu.state.service_accounts[key["client_email"]].keys
    )
    no_console_errors(browser)


def test_the_console_asks_no_other_origin(browser: Any, emu: EmulatorServer) -> None:
    browser.get_log("performance")
    browser.get(f"{emu.url}/emulator/ui")
    wait_for_text(browser, emu.state.default_account.email)
    urls = [
        json.loads(entry["message"])["message"]["params"]["request"]["url"]
        for entry in browser.get_log("performance")
        if json.loads(entry["message"])["message"].get("method") == "Network.requestWillBeSent"
    ]
    assert urls and all(url.startswith(emu.url) or url.startswith("data:") for url in urls), urls


def test_the_page_is_served_with_a_strict_policy(emu: EmulatorServer) -> None:
    page = httpx.get(f"{emu.url}/emulator/ui")
    assert page.status_code == 200 and "default-src 'none'" in page.headers["content-security-policy"]
    assert page.headers["x-frame-options"] == "DENY"
    assert httpx.get(f"{emu.url}/emulator/ui/other.js").status_code == 404


def test_a_path_the_emulator_does_not_serve_is_marked_in_the_log(browser: Any, emu: EmulatorServer) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    gap = "/v1/projects/-/serviceAccounts/x@y:someFutureMethod"
    assert httpx.post(f"{emu.url}{gap}", json={}).status_code == 404
    browser.get(f"{emu.url}/emulator/ui")
    wait_for_text(browser, emu.state.default_account.email)

    def log_rows(driver: Any) -> list[tuple[bool, str]]:
        """(marked, text) of every row, read in one go: the log re-renders as it polls."""
        rows = driver.execute_script(
            "return [...document.querySelectorAll('#log tbody tr')]"
            ".map(tr => [tr.classList.contains('not-emulated'), tr.textContent])"
        )
        return [(bool(marked), str(text)) for marked, text in rows]

    def gap_shown(driver: Any) -> list[tuple[bool, str]] | None:
        rows = log_rows(driver)
        return rows if any(gap in text for _, text in rows) and len(rows) > 1 else None

    rows = WebDriverWait(browser, 15).until(gap_shown, "the log never showed the missing endpoint")
    assert rows is not None
    assert [(marked, "not emulated" in text, "404" in text) for marked, text in rows if gap in text] == [
        (True, True, True)
    ]
    served = [text for marked, text in rows if gap not in text]
    assert served and not any("not emulated" in text for text in served)
    assert not any(marked for marked, text in rows if gap not in text)
    no_console_errors(browser)


def test_authorize_domain_wide_delegation(browser: Any, emu: EmulatorServer) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    browser.get(f"{emu.url}/emulator/ui")
    email = emu.state.default_account.email
    wait_for_text(browser, email)
    Select(browser.find_element(By.ID, "delegation-account")).select_by_value(email)
    type_into(browser, "#delegation-scopes", "https://www.googleapis.com/auth/gmail.readonly")
    click(browser, "#delegation button[type=submit]")
    wait_for_text(browser, f"authorized {email}")
    client_id = emu.state.default_account.unique_id
    assert emu.state.delegation_grants[client_id] == ("https://www.googleapis.com/auth/gmail.readonly",)
    wait_for_text(browser, client_id)  # the grants table
    no_console_errors(browser)
