"""``gcptoken pubsub-emulator`` as a user runs it: a separate process that prints the
PUBSUB_EMULATOR_HOST to export, and stops the Pub/Sub emulator's JVM with itself on Ctrl-C."""

from __future__ import annotations

import logging
import signal
import socket
import subprocess
import sys

import httpx
import pytest

from gcptoken.cli.main import main
from gcptoken.emulator.pubsub import PubsubEmulatorMissingError, find_launcher, launcher
from gcptoken.testing import EmulatorClient


def test_it_says_so_when_gcptoken_emulator_is_not_running(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["pubsub-emulator", "--emulator", "127.0.0.1:9"]) == 3
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1
    assert "gcptoken's emulator does not answer at http://127.0.0.1:9: start it with `gcptoken emulator`" in err


def test_a_bad_project_is_a_usage_error(emulator: EmulatorClient, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["pubsub-emulator", "--emulator", emulator.host_port, "--project", "Not A Project"]) == 2
    assert capsys.readouterr().err == "gcptoken: error: --project: 'Not A Project' is not a project ID\n"


@pytest.mark.parametrize("host", ["", "a b", "*", "evil.example:80"])
def test_a_bad_allow_host_is_a_usage_error_before_anything_starts(
    host: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["pubsub-emulator", "--emulator", "127.0.0.1:9", "--allow-host", host]) == 2
    assert (
        capsys.readouterr().err
        == f"gcptoken: error: --allow-host {host!r} is not a host name (a name or address, no port)\n"
    )


def test_with_every_port_browsers_refuse_taken_it_does_not_start(
    emulator: EmulatorClient, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    try:
        find_launcher()
    except PubsubEmulatorMissingError as exc:
        pytest.skip(str(exc))
    logger = logging.getLogger("gcptoken.pubsub")  # the session's Pub/Sub emulator logs there: restored after
    for attribute in ("handlers", "propagate", "level"):
        monkeypatch.setattr(logger, attribute, getattr(logger, attribute))
    with socket.create_server(("127.0.0.1", 0)) as taken:
        monkeypatch.setattr(launcher, "BROWSER_REFUSED_PORTS", (taken.getsockname()[1],))
        assert main(["pubsub-emulator", "--emulator", emulator.host_port]) == 3
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is in use on 127.0.0.1: the Pub/Sub emulator is not started on one" in err


def test_it_runs_until_ctrl_c_and_leaves_no_jvm_behind(emulator: EmulatorClient) -> None:
    try:
        find_launcher()
    except PubsubEmulatorMissingError as exc:
        pytest.skip(str(exc))
    command = [sys.executable, "-m", "gcptoken", "pubsub-emulator", "--emulator", emulator.host_port, "--port", "0"]
    restore_ctrl_c = lambda: signal.signal(signal.SIGINT, signal.SIG_DFL)  # noqa: E731 (as a terminal would)
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=restore_ctrl_c
    ) as process:
        try:
            line = process.stdout.readline() if process.stdout else ""
            assert line.startswith("export PUBSUB_EMULATOR_HOST=127.0.0.1:")
            host = line.strip().split("=", 1)[1]
            assert httpx.put(f"http://{host}/v1/projects/cli-test/topics/orders").status_code == 200
        finally:
            process.send_signal(signal.SIGINT)
            _, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    assert err.splitlines()[-1] == "gcptoken: Pub/Sub emulator stopped"
    with pytest.raises(httpx.ConnectError):  # the JVM is gone
        httpx.get(f"http://{host}/v1/projects/cli-test/topics/orders")


def test_help_says_what_the_audience_is_and_when_a_push_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["pubsub-emulator", "--help"])
    said = " ".join(capsys.readouterr().out.split())
    assert "else the push endpoint URL (the local one here: set audience" in said
    assert "it is refused, never guessed" in said
