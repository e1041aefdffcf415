"""kube-credential's cached answer (before argparse) prints exactly what the full command line
would, and leaves everything it does not fully understand to it."""

from __future__ import annotations

from pathlib import Path

import pytest

from gcptoken.cli import main as full
from gcptoken.helpers.kube import EXEC_INFO_ENV, answer_from_cache
from gcptoken.testing import EmulatorClient

AUD = "https://kube-fast.example"
PUBSUB = "https://www.googleapis.com/auth/pubsub"


@pytest.fixture
def env(emulator: EmulatorClient, key_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GCPTOKEN_EMULATOR_HOST", emulator.host_port)
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(key_path))


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
    ["kube-credential"],
    ["kube-credential", "--audience", AUD],
    ["kube-credential", f"--audience={AUD}", "--timeout", "3"],
    ["kube-credential", "--scopes", f"openid,{PUBSUB}"],
]


@pytest.mark.parametrize("argv", FORMS, ids=[" ".join(form[1:]) or "(plain)" for form in FORMS])
@pytest.mark.parametrize("version", ["", "client.authentication.k8s.io/v1beta1"])
def test_the_cached_answer_is_the_full_command_lines(
    env: None, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, argv: list[str], version: str
) -> None:
    if version:
        monkeypatch.setenv(EXEC_INFO_ENV, f'{{"apiVersion": "{version}", "kind": "ExecCredential"}}')
    assert run_fast(argv, capsys) is None  # cold: the full path must run
    expected = run_full(argv, capsys)
    assert (version or "client.authentication.k8s.io/v1") in expected
    assert run_fast(argv, capsys) == expected
    assert run_full(argv, capsys) == expected
    if argv[1:2] == ["--scopes"]:  # the same scopes in another order or form: the same entry
        assert run_fast(["kube-credential", "--scopes", f"{PUBSUB} openid"], capsys) == expected


DECLINED = [
    ["kube-credential", "--no-cache"],
    ["kube-credential", "-v"],
    ["kube-credential", "--print-kubeconfig-user"],
    ["kube-credential", "--audience", AUD, "--scopes", PUBSUB],
    ["kube-credential", "--audience", ""],
    ["kube-credential", "--audience", AUD, "--audience", AUD],
    ["kube-credential", "--timeout", "soon"],
    ["kube-credential", "--timeout", "inf"],
    ["kube-credential", "extra"],
    ["kube-credential", "--"],
    ["kube-credential", "--audience"],
    ["id", AUD],
]


@pytest.mark.parametrize("argv", DECLINED, ids=[" ".join(form) for form in DECLINED])
def test_anything_else_is_left_to_the_full_command_line(
    env: None, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    run_full(["kube-credential"], capsys)  # warm: a decline is not a cold cache
    run_full(["kube-credential", "--audience", AUD], capsys)
    assert run_fast(argv, capsys) is None


def test_an_unknown_exec_info_is_left_to_the_full_command_line(
    env: None, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    run_full(["kube-credential"], capsys)
    monkeypatch.setenv(EXEC_INFO_ENV, '{"apiVersion": "client.authentication.k8s.io/v2"}')
    assert run_fast(["kube-credential"], capsys) is None
    assert full.main(["kube-credential"]) == 2  # and it refuses, in one line, printing nothing
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1 and "v2" in captured.err
