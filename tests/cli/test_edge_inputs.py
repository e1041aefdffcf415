"""Inputs at the edges of the command line (issue 28's review), for every command they apply to:
a blank --credentials (an unset ``$KEY``) is a usage error, never Application Default Credentials
in disguise; a non-UTF-8 byte in an argument, a ``KUBERNETES_EXEC_INFO`` nested too deeply and a
stdout that cannot be written each get one line and an exit code, never a traceback, on the cached
path and the full one; ``-v`` says "cache hit" on every cached answer."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import pytest

from gcptoken.cli.main import build_parser, main
from gcptoken.testing import EmulatorClient

GCPTOKEN = str(Path(sys.executable).parent / "gcptoken")
NOT_UTF8 = os.fsdecode(b"\xff")  # what Python makes of a byte in argv that is not UTF-8


def commands_taking_credentials() -> list[str]:
    (subparsers,) = (a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return [
        name
        for name, sub in subparsers.choices.items()
        if any("--credentials" in action.option_strings for action in sub._actions)
    ]


def run(
    argv: list[str], env: dict[str, str], stdout: int | None = subprocess.PIPE, **extra: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [GCPTOKEN, *argv],
        env={**env, **extra},
        stdout=stdout,
        stderr=subprocess.PIPE,
        text=True,
        timeout=60,
        check=False,
        stdin=subprocess.DEVNULL,
    )


@pytest.fixture
def env(emulator: EmulatorClient, key_path: Path) -> dict[str, str]:
    """The emulator's key as ADC, and a token for each form below already in the disk cache."""
    values = {
        **os.environ,
        "GCPTOKEN_EMULATOR_HOST": emulator.host_port,
        "GOOGLE_APPLICATION_CREDENTIALS": str(key_path),
    }
    for argv in (["access"], ["id", "https://svc.example"], ["kube-credential"]):
        assert run(argv, values).returncode == 0
    return values


def one_line(result: subprocess.CompletedProcess[str], code: int) -> str:
    assert (result.returncode, result.stdout or "") == (code, ""), result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr, result.stderr
    return result.stderr


def test_every_command_refuses_a_blank_credentials(capsys: pytest.CaptureFixture[str]) -> None:
    names = commands_taking_credentials()
    assert {"id", "access", "kube-credential", "logout", "whoami"} <= set(names)
    for name in names:
        for blank in ("", "   "):
            with pytest.raises(SystemExit) as exited:
                main([name, "--credentials", blank])
            captured = capsys.readouterr()
            assert exited.value.code == 2 and captured.out == "", name
            assert "argument --credentials: is empty" in captured.err and captured.err.count("\n") == 1


@pytest.mark.parametrize(
    "argv",
    [
        ["access", "--credentials", ""],
        ["access", "--credentials=   "],
        ["id", "https://svc.example", "--credentials", " "],
        ["kube-credential", "--credentials", " "],
        ["kube-credential", "--credentials", "", "--print-kubeconfig-user"],
    ],
)
def test_a_blank_credentials_is_not_answered_from_the_cache_either(env: dict[str, str], argv: list[str]) -> None:
    assert "is empty" in one_line(run(argv, env), 2)


@pytest.mark.parametrize(
    "argv",
    [
        ["kube-credential", "--audience", f"https://kube{NOT_UTF8}"],
        ["kube-credential", "--scopes", f"https://www.googleapis.com/auth/{NOT_UTF8}"],
        ["kube-credential", "--impersonate-service-account", f"sa{NOT_UTF8}@p.iam.gserviceaccount.com"],
        ["id", f"https://svc{NOT_UTF8}.example"],
        ["access", "--scopes", f"https://www.googleapis.com/auth/{NOT_UTF8}"],
    ],
)
def test_a_byte_that_is_not_utf8_in_an_argument_is_one_usage_line(env: dict[str, str], argv: list[str]) -> None:
    one_line(run(argv, env), 2)


@pytest.mark.parametrize("extra", [[], ["--no-cache"]], ids=["cached", "full"])
@pytest.mark.parametrize("nested", ["[" * 100000, '{"a":' * 20000])
def test_a_deeply_nested_exec_info_is_one_line(env: dict[str, str], extra: list[str], nested: str) -> None:
    said = one_line(run(["kube-credential", *extra], env, KUBERNETES_EXEC_INFO=nested), 2)
    assert "KUBERNETES_EXEC_INFO is not JSON" in said


@pytest.mark.parametrize(
    "argv",
    [
        ["kube-credential"],
        ["kube-credential", "--no-cache"],
        ["kube-credential", "--print-kubeconfig-user"],
        ["access"],
        ["access", "--no-cache"],
        ["id", "https://svc.example", "--format", "json"],
        ["id", "https://svc.example", "--no-cache"],
    ],
)
def test_a_full_or_closed_stdout_is_one_line(env: dict[str, str], argv: list[str]) -> None:
    with open("/dev/full", "w") as full:
        said = one_line(run(argv, env, stdout=full.fileno()), 3)
    assert said == "gcptoken: error: cannot write to stdout: No space left on device\n"
    closed = subprocess.run(
        [GCPTOKEN, *argv],
        env=env,
        capture_output=False,
        stderr=subprocess.PIPE,
        text=True,
        timeout=60,
        check=False,
        stdin=subprocess.DEVNULL,
        preexec_fn=lambda: os.close(1),
    )
    assert closed.returncode == 3
    assert closed.stderr == "gcptoken: error: cannot write to stdout: stdout is closed\n"


def test_a_closed_stdout_does_not_fail_a_command_that_prints_nothing(env: dict[str, str]) -> None:
    closed = subprocess.run(
        [GCPTOKEN, "cache", "clear"],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
        timeout=60,
        check=False,
        stdin=subprocess.DEVNULL,
        preexec_fn=lambda: os.close(1),
    )
    assert (closed.returncode, "Traceback" in closed.stderr) == (0, False), closed.stderr


@pytest.mark.parametrize("argv", [["kube-credential"], ["id", "https://svc.example"]])
def test_verbose_says_cache_hit_on_a_cached_answer(env: dict[str, str], argv: list[str]) -> None:
    result = run([*argv, "-v"], env)
    assert result.returncode == 0, result.stderr
    assert "gcptoken: cache hit, " in result.stderr
