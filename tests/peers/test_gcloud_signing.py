"""Signing as the account the real gcloud acts as (logged in against the emulator): its active
service account, an explicit impersonation chain, gcloud's own impersonation setting; a user
account is told to name a service account."""

from __future__ import annotations

from pathlib import Path

import pytest

from gcptoken import GcloudCredentials
from gcptoken.credentials.signing import SigningUnavailableError
from gcptoken.testing import EmulatorClient
from tests.cli.test_cli import gcptoken
from tests.credentials.test_signing import BLOB, assert_signed_by, both_ways

from .test_gcloud import GCLOUD, run_gcloud
from .test_gcloud_source import gcloud_logged_in

pytestmark = pytest.mark.skipif(GCLOUD is None, reason="gcloud is not installed on this machine")
__all__ = ["gcloud_logged_in"]  # the fixture, used here


@pytest.fixture(autouse=True)
def _iam_at_the_emulator(emulator: EmulatorClient, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GCPTOKEN_EMULATOR_HOST", emulator.host_port)  # our IAM calls, as gcloud's


def test_the_active_service_account_signs_as_itself(
    gcloud_logged_in: dict[str, str], emulator: EmulatorClient, key_info: dict[str, str]
) -> None:
    email = key_info["client_email"]
    emulator.state.grant_token_creator(email, f"serviceAccount:{email}")  # IAM's rule for signing as oneself
    both_ways(GcloudCredentials(), emulator.url, email)


def test_an_impersonation_chain_signs_as_its_target(
    gcloud_logged_in: dict[str, str], emulator: EmulatorClient, key_info: dict[str, str]
) -> None:
    target = emulator.new_key("gcloud-signs-as")["client_email"]
    emulator.state.grant_token_creator(target, f"serviceAccount:{key_info['client_email']}")
    both_ways(GcloudCredentials(impersonate=target), emulator.url, target)
    both_ways(GcloudCredentials(), emulator.url, target, sign_as=target)


def test_gclouds_own_impersonation_setting(
    gcloud_logged_in: dict[str, str],
    emulator: EmulatorClient,
    key_info: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    target = emulator.new_key("gcloud-config-target")["client_email"]
    emulator.state.grant_token_creator(target, f"serviceAccount:{key_info['client_email']}")
    emulator.state.grant_token_creator(target, f"serviceAccount:{target}")  # gcloud's token is the target's
    monkeypatch.setenv("CLOUDSDK_AUTH_IMPERSONATE_SERVICE_ACCOUNT", target)
    both_ways(GcloudCredentials(), emulator.url, target)


def test_a_user_account_must_name_a_service_account(
    emulator: EmulatorClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from .test_gcloud import gcloud_env

    env = gcloud_env(emulator, tmp_path / "user-config")
    assert run_gcloud(["config", "set", "account", "someone@example.com"], env).returncode == 0
    monkeypatch.setenv("CLOUDSDK_CONFIG", env["CLOUDSDK_CONFIG"])
    with pytest.raises(SigningUnavailableError) as refused:
        GcloudCredentials().sign_blob(BLOB)
    assert "someone@example.com" in str(refused.value) and "sign_as=" in str(refused.value)


def test_domain_wide_delegation_signed_by_gclouds_account(
    gcloud_logged_in: dict[str, str], emulator: EmulatorClient, key_info: dict[str, str]
) -> None:
    from gcptoken.emulator.admin.delegation import grant_delegation
    from gcptoken.verify.tokeninfo import tokeninfo

    email, user, gmail = key_info["client_email"], "dave@example.com", "https://www.googleapis.com/auth/gmail.readonly"
    emulator.state.grant_token_creator(email, f"serviceAccount:{email}")
    emulator.state.create_user(user)
    grant_delegation(emulator.state, email, [gmail])
    printed = gcptoken("access", "--source", "gcloud", "--subject", user, "--scopes", gmail, env=gcloud_logged_in)
    assert printed.code == 0, printed.err
    assert tokeninfo(printed.out.strip())["email"] == user


def test_async_delegation_over_gcloud_honours_refresh(
    gcloud_logged_in: dict[str, str], emulator: EmulatorClient, key_info: dict[str, str]
) -> None:
    import asyncio

    from gcptoken.emulator.admin.delegation import grant_delegation

    email, gmail = key_info["client_email"], "https://www.googleapis.com/auth/gmail.readonly"
    emulator.state.grant_token_creator(email, f"serviceAccount:{email}")
    emulator.state.create_user("erin@example.com")
    grant_delegation(emulator.state, email, [gmail])
    delegated = GcloudCredentials().with_subject("erin@example.com")
    assert delegated.runs_programs()
    first = asyncio.run(delegated.access_token_async([gmail]))
    assert asyncio.run(delegated.access_token_async([gmail])) == first  # cached
    assert asyncio.run(delegated.access_token_async([gmail], refresh=True)).value != first.value
    assert_signed_by(emulator.url, email, asyncio.run(delegated.sign_blob_async(BLOB)))  # as the account
