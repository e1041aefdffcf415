"""What ``--source gcloud`` says when gcloud fails: its own last error line, whole, with whatever
could be a secret replaced (a stand-in gcloud on PATH writes the words; the real one, pointed at
the emulator, is in tests/peers/test_gcloud_source.py)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from gcptoken import CredentialsError, GcloudCredentials, TokenRequestError

SECRETS = ("ya29.a0AfH6SMB-secret", "1//0gSecretRefresh", "GOCSPX-SecretClient", "eyJhbGciOi.eyJzdWIiOiIx.c2ln")


@pytest.fixture
def fake_gcloud(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A ``gcloud`` on PATH that writes ``stderr.txt`` (next to it) to stderr and exits 1."""
    script = tmp_path / "gcloud"
    cat = shutil.which("cat")  # found before PATH holds only the stand-in
    script.write_text(f"#!/bin/sh\n{cat} '{tmp_path / 'stderr.txt'}' >&2\nexit 1\n")
    script.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    return tmp_path / "stderr.txt"


def test_gcloud_s_last_error_line_comes_whole_without_secrets(fake_gcloud: Path) -> None:
    detail = " ".join(f"word{n}" for n in range(120))  # far past the 300 characters others are cut to
    fake_gcloud.write_text(
        "WARNING: something earlier\n"
        f"ERROR: (gcloud.auth.print-access-token) There was a problem refreshing your current auth tokens: "
        f"{detail} token {SECRETS[0]} refresh {SECRETS[1]} body client_secret={SECRETS[2]}&id_token={SECRETS[3]} END\n"
        "Please run:\n\n  $ gcloud auth login\n\nto obtain new credentials.\n"
    )
    with pytest.raises(TokenRequestError) as raised:
        GcloudCredentials().access_token()
    message = str(raised.value)
    assert message.startswith("gcloud failed (exit 1): (gcloud.auth.print-access-token) There was a problem")
    assert message.endswith("client_secret=<redacted>&id_token=<redacted> END") and detail in message
    assert not [secret for secret in SECRETS if secret in message]
    assert "account" not in message.replace("your current auth tokens", "")


@pytest.mark.parametrize(
    "words",
    [
        "You do not currently have an active account selected.",
        "Your current active account [someone@example.com] does not have any valid credentials",
    ],
)
def test_no_account_is_diagnosed_from_gcloud_s_own_words(fake_gcloud: Path, words: str) -> None:
    fake_gcloud.write_text(f"ERROR: (gcloud.auth.print-identity-token) {words}\nPlease run:\n  $ gcloud auth login\n")
    with pytest.raises(CredentialsError, match=r"^gcloud has no account to use") as raised:
        GcloudCredentials().id_token("https://svc.a.run.app")
    assert str(raised.value).endswith(f"(gcloud.auth.print-identity-token) {words}")
