"""The cached path of ``gcptoken id`` / ``access``: it answers exactly what the full command line
would, declines everything it does not fully understand, and loads almost nothing."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from gcptoken.cli import main as full
from gcptoken.cli.fast import answer_from_cache
from gcptoken.testing import EmulatorClient, write_key_file

AUD = "https://svc-fast.a.run.app"


@pytest.fixture
def env(emulator: EmulatorClient, key_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    values = {"GCPTOKEN_EMULATOR_HOST": emulator.host_port, "GOOGLE_APPLICATION_CREDENTIALS": str(key_path)}
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    return values


def run_full(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    assert full.main(argv) == 0
    return capsys.readouterr().out


def run_fast(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str | None:
    code = answer_from_cache(argv)
    out = capsys.readouterr().out
    if code is None:
        assert out == ""  # declining prints nothing
        return None
    assert code == 0
    return out


FORMS = [
    ["id", AUD],
    ["id", "--audience", AUD],
    ["id", f"--audience={AUD}"],
    ["id", AUD, "--audience", AUD],
    ["id", AUD, "--format", "json"],
    ["id", AUD, "--format=header"],
    ["id", AUD, "--timeout", "3"],
    ["access"],
    ["access", "--format", "json"],
    ["access", "--scopes", "https://www.googleapis.com/auth/pubsub,openid"],
]


@pytest.mark.parametrize("argv", FORMS, ids=[" ".join(form) for form in FORMS])
def test_the_cached_path_answers_what_the_full_path_would(
    env: dict[str, str], capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    assert run_fast(argv, capsys) is None  # cold: the full path must run
    expected = run_full(argv, capsys)  # fetches and fills the cache
    assert run_fast(argv, capsys) == expected
    assert run_full(argv, capsys) == expected


def test_credentials_option_and_gcloud_adc_file_and_users(
    emulator: EmulatorClient,
    env: dict[str, str],
    key_path: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS")
    named = ["id", AUD, "--credentials", str(key_path)]
    expected = run_full(named, capsys)
    assert run_fast(named, capsys) == expected
    # No variable, no option: gcloud's ADC file, here a user's credential (the default audience).
    config = tmp_path / "gcloud"
    config.mkdir()
    write_key_file(
        config, emulator.state.issue_refresh_token("fast-user@example.com"), "application_default_credentials.json"
    )
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(config))
    expected = run_full(["id"], capsys)
    assert expected.count(".") == 2  # a JWT
    assert run_fast(["id"], capsys) == expected
    assert run_fast(["id", emulator.state.oauth_client[0]], capsys) == expected


DECLINED = [
    ["id", AUD, "--no-cache"],
    ["id", AUD, "--format", "claims"],
    ["id", AUD, "--format", "xml"],
    ["id", AUD, "--impersonate-service-account", "sa@p.iam.gserviceaccount.com"],
    ["id", AUD, "--source", "metadata"],
    ["id", AUD, "--timeout", "soon"],
    ["id", AUD, "--audience", "https://another.example"],
    ["id", AUD, "extra"],
    ["id", AUD, "-v"],
    ["id", AUD, "--"],
    ["id", AUD, "--format"],
    ["id", ""],
    ["id"],
    ["access", "--scopes", ""],
    ["verify", AUD],
    [],
]


@pytest.mark.parametrize("argv", DECLINED, ids=[" ".join(form) or "(none)" for form in DECLINED])
def test_anything_else_is_left_to_the_full_path(
    env: dict[str, str], capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    run_full(["id", AUD], capsys)  # warm: a decline is not a cold cache
    assert run_fast(argv, capsys) is None


def test_credentials_it_cannot_identify_are_left_to_the_full_path(
    emulator: EmulatorClient,
    env: dict[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for name, content in {
        "missing.json": None,
        "broken.json": "{",
        "list.json": "[]",
        "impersonated.json": json.dumps({"type": "impersonated_service_account"}),
        "keyless.json": json.dumps({"type": "service_account", "client_email": "a@b"}),
    }.items():
        path = tmp_path / name
        if content is not None:
            path.write_text(content)
        monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(path))
        assert run_fast(["id", AUD], capsys) is None, name


def heavy_modules_loaded(argv: list[str], heavy: tuple[str, ...], env: dict[str, str]) -> list[str]:
    """Which of ``heavy`` a fresh process has imported once ``gcptoken ARGV`` printed its token."""
    code = (
        "import sys\n"
        f"sys.argv = ['gcptoken', *{argv!r}]\n"
        "from gcptoken.cli.fast import main\n"
        "assert main() == 0\n"
        f"print(sorted(name for name in {heavy!r} if name in sys.modules), file=sys.stderr)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ, **env}, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.count(".") == 2  # the token
    loaded: list[str] = ast.literal_eval(result.stderr.strip().splitlines()[-1])
    return loaded


def test_the_cached_path_loads_almost_nothing(env: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    """Checked by what gets imported, never by timing."""
    run_full(["id", AUD], capsys)
    heavy = (
        *("argparse", "logging", "typing", "pathlib", "dataclasses", "gcptoken.credentials.base"),
        *("gcptoken.credentials.adc", "gcptoken.cli.main", "cryptography", "httpx", "asyncio", "hashlib"),
        *("urllib.parse", "ipaddress", "gcptoken.checks", "gcptoken.credentials.subject_token"),
        *("concurrent.futures", "importlib.util"),
    )
    assert heavy_modules_loaded(["id", AUD], heavy, env) == []


def test_a_cold_key_file_call_loads_only_what_it_uses(env: dict[str, str]) -> None:
    """``gcptoken id --no-cache`` on a key file signs once and posts once: no logging (imported only
    for -v or a warning), no concurrent.futures, none of cryptography's serialization package or
    ciphers, no gcloud subprocess, no other credential kind. Checked by what gets imported."""
    heavy = (
        *("logging", "concurrent.futures", "asyncio", "httpx", "subprocess", "hashlib"),
        *("cryptography.hazmat.primitives.serialization", "cryptography.hazmat.primitives.ciphers"),
        *("cryptography.hazmat.backends", "cryptography.x509", "gcptoken.credentials.external_account"),
        *("gcptoken.credentials.aws", "gcptoken.credentials.workforce_user", "gcptoken.credentials.sigv4"),
    )
    assert heavy_modules_loaded(["id", AUD, "--no-cache"], heavy, env) == []
    # The check sees imports: the same process with the full CLI does load some of them.
    assert "logging" in heavy_modules_loaded(["id", AUD, "--no-cache", "-v"], ("logging",), env)


# -- every credential kind answers from the cache ---------------------------------------------------


def _impersonated_file(emulator: EmulatorClient, tmp_path: Path, key_info: dict[str, str]) -> Path:
    target = emulator.new_key("fast-imp")["client_email"]
    delegate = emulator.new_key("fast-del")["client_email"]
    emulator.state.grant_token_creator(delegate, f"serviceAccount:{key_info['client_email']}")
    emulator.state.grant_token_creator(target, f"serviceAccount:{delegate}")
    info = {
        "type": "impersonated_service_account",
        "service_account_impersonation_url": (
            f"https://iamcredentials.googleapis.com/v1/projects/-/serviceAccounts/{target}:generateAccessToken"
        ),
        "delegates": [f"projects/-/serviceAccounts/{delegate}"],
        "source_credentials": key_info,
    }
    return write_key_file(tmp_path, info, "impersonated.json")


def _external_file(emulator: EmulatorClient, tmp_path: Path, impersonate: bool) -> Path:
    from tests.emulator.sts.test_federation import JWT_TYPE, Federation

    federation = Federation(emulator)
    (tmp_path / "subject.json").write_text(json.dumps({"token": federation.subject_token()}))
    info: dict[str, object] = {
        "type": "external_account",
        "audience": federation.audience,
        "subject_token_type": JWT_TYPE,
        "credential_source": {
            "file": str(tmp_path / "subject.json"),
            "format": {"type": "json", "subject_token_field_name": "token"},
        },
    }
    if impersonate:
        target = emulator.new_key("fast-ext")["client_email"]
        emulator.state.grant_token_creator(target, f"principal:{federation.pool_resource}/subject/workload-1")
        info["service_account_impersonation_url"] = (
            f"https://iamcredentials.googleapis.com/v1/projects/-/serviceAccounts/{target}:generateAccessToken"
        )
        info["service_account_impersonation"] = {"token_lifetime_seconds": 1200}
    return write_key_file(tmp_path, info, "external.json")


@pytest.mark.parametrize("kind", ["impersonated-file", "external-impersonating", "external-federated", "metadata"])
def test_every_kind_answers_from_the_cache(
    emulator: EmulatorClient,
    env: dict[str, str],
    key_info: dict[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    kind: str,
) -> None:
    if kind == "impersonated-file":
        monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(_impersonated_file(emulator, tmp_path, key_info)))
    elif kind.startswith("external"):
        path = _external_file(emulator, tmp_path, impersonate=kind == "external-impersonating")
        monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(path))
    else:
        monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS")
        monkeypatch.delenv("NO_GCE_CHECK")
        for name in ("GCE_METADATA_HOST", "GCE_METADATA_IP"):
            monkeypatch.setenv(name, emulator.host_port)
    forms = [["access"]] if kind == "external-federated" else [["id", AUD], ["access"]]
    for argv in forms:
        assert run_fast(argv, capsys) is None
        expected = run_full(argv, capsys)
        before = len(emulator.requests())
        assert run_fast(argv, capsys) == expected  # from the disk cache
        assert len(emulator.requests()) == before  # no ping, no exchange: nothing at all was asked
    if kind.startswith("external"):  # another subject token in the file is another identity
        (tmp_path / "subject.json").write_text(json.dumps({"token": "another-token"}))
        assert run_fast(["access"], capsys) is None
    if kind == "metadata":
        monkeypatch.setenv("NO_GCE_CHECK", "true")  # then ADC would not use the metadata server
        assert run_fast(["id", AUD], capsys) is None
