"""``gcptoken whoami`` says each fact once, for every kind of credential: no account named twice,
no "active account (… active account)"."""

from __future__ import annotations

import re
import shutil
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from gcptoken.cli.main import main
from gcptoken.emulator import EmulatorState, scenarios
from gcptoken.emulator.state import state_dir
from gcptoken.testing import EmulatorClient, write_key_file

EMAIL_OR_CLIENT = re.compile(r"[\w.+-]+@[\w.-]+|[\w-]+\.apps\.googleusercontent\.com")


def _impersonated_file(emulator: EmulatorClient, tmp_path: Path, _: pytest.MonkeyPatch) -> list[str]:
    user = emulator.state.issue_refresh_token("whoami-user@example.com")
    target = "target@emulated-project.iam.gserviceaccount.com"
    url = f"{emulator.url}/v1/projects/-/serviceAccounts/{target}:generateAccessToken"
    info = {
        "type": "impersonated_service_account",
        "service_account_impersonation_url": url,
        "delegates": ["hop@emulated-project.iam.gserviceaccount.com"],
        "source_credentials": user,
    }
    return ["--credentials", str(write_key_file(tmp_path, info, "impersonated.json"))]


def _with_target(emulator: EmulatorClient) -> EmulatorState:
    """The emulator's state, with the service account its federation files impersonate."""
    scenarios.service_account(emulator.server, "impersonated")
    return emulator.state


def _metadata(emulator: EmulatorClient, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    monkeypatch.setenv("GCE_METADATA_HOST", emulator.host_port)
    return ["--source", "metadata"]


KINDS: dict[str, Callable[[EmulatorClient, Path, pytest.MonkeyPatch], list[str]]] = {
    "service-account key": lambda emulator, tmp, _: ["--credentials", str(write_key_file(tmp, emulator.new_key()))],
    "authorized_user": lambda emulator, tmp, _: [
        "--credentials",
        str(write_key_file(tmp, emulator.state.issue_refresh_token("whoami@example.com"), "user.json")),
    ],
    "key, impersonating through a delegate": lambda emulator, tmp, _: [
        "--credentials",
        str(write_key_file(tmp, emulator.new_key())),
        "--impersonate-service-account",
        "hop@emulated-project.iam.gserviceaccount.com,target@emulated-project.iam.gserviceaccount.com",
    ],
    "impersonated_service_account file": _impersonated_file,
    "external_account (AWS), impersonating": lambda emulator, tmp, _: [
        "--credentials",
        str(write_key_file(tmp, state_dir.aws_file(_with_target(emulator)), "aws.json")),
    ],
    "external_account_authorized_user": lambda emulator, tmp, _: [
        "--credentials",
        str(write_key_file(tmp, state_dir.workforce_user_file(_with_target(emulator)), "workforce.json")),
    ],
    "metadata server": lambda emulator, _, monkeypatch: _metadata(emulator, monkeypatch),
}
if shutil.which("gcloud"):  # with an empty configuration of its own (conftest): no account
    KINDS["gcloud, no account"] = lambda *_: ["--source", "gcloud"]


@pytest.mark.parametrize("kind", list(KINDS))
def test_whoami_says_each_fact_once(
    kind: str,
    emulator: EmulatorClient,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("GCPTOKEN_EMULATOR_HOST", emulator.host_port)
    argv = KINDS[kind](emulator, tmp_path, monkeypatch)
    assert main(["whoami", *argv]) == 0
    out = capsys.readouterr().out
    named: Counter[Any] = Counter(EMAIL_OR_CLIENT.findall(out))
    assert [name for name, times in named.items() if times > 1] == [], out
    credential = out.splitlines()[0]
    assert credential.count("active account") <= 1 and credential.count("service account") <= 2, out
    if "impersonat" in kind:
        assert ", impersonated by " in credential and " via " not in credential, out
    if "delegate" in kind or "file" in kind:
        assert credential.endswith(" through hop@emulated-project.iam.gserviceaccount.com"), out
