"""Our --source gcloud driving the real gcloud, logged in against the emulator."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from gcptoken import CredentialsError, GcloudCredentials, Verifier
from gcptoken.testing import CLOSED_LOOPBACK, EmulatorClient
from tests.cli.test_cli import gcptoken

from .test_gcloud import GCLOUD, gcloud_env, run_gcloud

AUD = "https://svc-gcloud-src.a.run.app"

pytestmark = pytest.mark.skipif(GCLOUD is None, reason="gcloud is not installed on this machine")


@pytest.fixture
def gcloud_logged_in(
    emulator: EmulatorClient, key_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> dict[str, str]:
    env = gcloud_env(emulator, tmp_path / "gcloud-config")
    env["CLOUDSDK_API_ENDPOINT_OVERRIDES_IAMCREDENTIALS"] = f"{emulator.url}/"
    activated = run_gcloud(["auth", "activate-service-account", "--key-file", str(key_path)], env)
    assert activated.returncode == 0, activated.stderr
    for name, value in env.items():
        if os.environ.get(name) != value:
            monkeypatch.setenv(name, value)
    return {name: value for name, value in env.items() if name.startswith(("CLOUDSDK_", "GCE_"))}


def test_library_and_cli_get_tokens_through_gcloud(
    gcloud_logged_in: dict[str, str], key_info: dict[str, str], certs_url: str
) -> None:
    token = GcloudCredentials().id_token(AUD)
    assert Verifier(AUD, certs=certs_url).verify(token.value)["email"] == key_info["client_email"]
    assert asyncio.run(GcloudCredentials().access_token_async()).value.startswith("ya29.")
    printed = gcptoken("id", AUD, "--source", "gcloud", env=gcloud_logged_in)
    assert printed.code == 0, printed.err
    assert Verifier(AUD, certs=certs_url).verify(printed.out.strip())["aud"] == AUD
    who = gcptoken("whoami", "--source", "gcloud", env=gcloud_logged_in)
    assert key_info["client_email"] in who.out


def test_gcloud_impersonation_through_our_cli(
    gcloud_logged_in: dict[str, str], emulator: EmulatorClient, key_info: dict[str, str], certs_url: str
) -> None:
    target = emulator.new_key("gcloud-target")["client_email"]
    emulator.state.grant_token_creator(target, f"serviceAccount:{key_info['client_email']}")
    args = ["id", AUD, "--source", "gcloud", "--impersonate-service-account", target, "--include-email"]
    printed = gcptoken(*args, env=gcloud_logged_in)
    assert printed.code == 0, printed.err
    assert Verifier(AUD, certs=certs_url).verify(printed.out.strip())["email"] == target


def test_no_active_account_is_a_clear_error(emulator: EmulatorClient, tmp_path: Path) -> None:
    env = gcloud_env(emulator, tmp_path / "never-logged-in")
    result = gcptoken("id", AUD, "--source", "gcloud", env=env)
    assert (result.code, result.out) == (3, "")
    assert result.err == (
        "gcptoken: error: gcloud has no account to use (run 'gcloud auth login' or 'gcloud auth "
        "activate-service-account'): (gcloud.auth.print-identity-token) You do not currently have an "
        "active account selected.\n"
    )


def test_an_endpoint_gcloud_cannot_reach_is_not_blamed_on_the_account(
    gcloud_logged_in: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """gcloud ends this failure with "Please run: gcloud auth login" too; its own reason is shown
    whole (the port, the path and the errno), not cut, and no account is blamed."""
    from gcptoken.cli.main import main

    monkeypatch.setenv("CLOUDSDK_AUTH_TOKEN_HOST", f"http://{CLOSED_LOOPBACK}/token")
    assert main(["id", AUD, "--source", "gcloud"]) == 3
    err = capsys.readouterr().err
    assert err.startswith("gcptoken: error: gcloud failed (exit 1): (gcloud.auth.print-identity-token) There was a ")
    assert "account" not in err.replace("your current auth tokens", "")
    assert "port=9" in err and "Connection refused'))\n" in err and "…" not in err
    assert len(err.splitlines()) == 1


def test_gcloud_missing_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(CredentialsError, match="gcloud is not installed"):
        GcloudCredentials().id_token(AUD)
