"""The console's "Upload a certificate" form in a real headless Chromium: a certificate file
chosen in the page becomes one of the account's keys, its id is shown for the key file, and the
key then signs for tokens; a bad certificate shows IAM's reason. The admin route it calls keeps
the console's guard: another origin, or a form post, is refused before it changes anything."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gcptoken.emulator import EmulatorServer
from gcptoken.testing import EmulatorClient
from tests.browser import click, no_console_errors, wait_for_text
from tests.emulator.iam.uploads import ec_certificate, key_pair

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def emu() -> Iterator[EmulatorServer]:
    with EmulatorServer() as server:
        yield server


def test_upload_a_certificate_file_from_the_console(browser: Any, emu: EmulatorServer, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    email = emu.state.create_service_account("console-upload").email
    pair = key_pair()
    cert_path = tmp_path / "public.pem"
    cert_path.write_text(pair.certificate_pem)
    browser.get(f"{emu.url}/emulator/ui")
    wait_for_text(browser, email)
    Select(browser.find_element(By.ID, "upload-account")).select_by_value(email)
    browser.find_element(By.ID, "upload-file").send_keys(str(cert_path))  # the file chooser, as a user picks a file
    click(browser, "#key-upload button[type=submit]")
    wait_for_text(browser, f"to {email}: use it as private_key_id")
    account = emu.state.service_accounts[email]
    (kid,) = account.uploaded
    assert account.certificates[kid] == pair.certificate_pem
    assert browser.execute_script("return document.getElementById('output').value") == kid
    wait_for_text(browser, kid[:12])  # the accounts table lists the new key
    no_console_errors(browser)

    # Pasted, and refused with IAM's reason: an EC key is not what keys:upload takes.
    browser.find_element(By.ID, "upload-pem").send_keys(ec_certificate())
    click(browser, "#key-upload button[type=submit]")
    wait_for_text(browser, "the key must be an RSA public key")
    assert account.uploaded == {kid}
    # The refusal's 400 is the only thing the browser logs: no script error.
    logged = [entry for entry in browser.get_log("browser") if entry.get("level") == "SEVERE"]
    assert [entry["source"] for entry in logged] == ["network"] and "keys:upload" in logged[0]["message"]


def test_the_upload_route_keeps_the_consoles_guard(emu: EmulatorServer) -> None:
    email = emu.state.create_service_account("guarded-upload").email
    url = f"{emu.url}/emulator/v1/serviceAccounts/{email}/keys:upload"
    pem = key_pair().certificate_pem
    cross_origin = httpx.post(url, json={"certificate": pem}, headers={"Origin": "https://evil.example"})
    assert cross_origin.status_code == 403
    # A form a page of another site could send without asking (no CORS preflight) is not JSON.
    simple = httpx.post(url, content=f"certificate={pem}", headers={"Content-Type": "text/plain"})
    assert simple.status_code in (403, 415)
    rebound = httpx.post(url, json={"certificate": pem}, headers={"Host": "attacker.example"})
    assert rebound.status_code in (403, 421)
    assert emu.state.service_accounts[email].keys == {}
    accepted = httpx.post(url, json={"publicKeyData": base64.b64encode(pem.encode()).decode()})
    assert accepted.status_code == 201 and accepted.json()["keyOrigin"] == "USER_PROVIDED"
    # The pytest plugin's helper, for tests of keys kept in a token or a TPM.
    kid = EmulatorClient(emu).upload_certificate(email, key_pair().certificate_pem)
    assert kid in emu.state.service_accounts[email].uploaded and len(kid) == 40
