"""Servers and signals as the README's exit-code table says: every server command stops gracefully
on SIGTERM as on Ctrl-C (says "stopped", frees its port, its log written) and exits 0; a one-shot
command says one line and exits 130 on Ctrl-C, 143 on SIGTERM. Real processes, real signals."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from gcptoken.cli.main import main
from gcptoken.servers.serving import bind
from gcptoken.testing import EmulatorClient
from tests.cli.test_cli import COMMAND

pytestmark = pytest.mark.slow


def _start(args: list[str], env: dict[str, str]) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [*COMMAND, *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **env},
    )
    assert process.stdout is not None
    return process, process.stdout.readline().strip()


def _port_of(first_line: str) -> int:
    """The port in what a server prints first: a URL, or HOST:PORT (the metadata server)."""
    port = urlsplit(first_line if "//" in first_line else f"//{first_line}").port
    assert port is not None, first_line
    return port


def test_every_server_stops_gracefully_on_sigterm(emulator: EmulatorClient, key_path: Path) -> None:
    env = {"GCPTOKEN_EMULATOR_HOST": emulator.host_port}
    commands = {
        "emulator": ["emulator", "--port", "0", "-v"],
        "metadata-server": ["metadata-server", "--credentials", str(key_path), "--project-number", "1", "-v"],
        "proxy": ["proxy", "https://svc-signals.a.run.app", "--credentials", str(key_path), "-v"],
        "inspect": ["inspect", "--no-browser"],
    }
    started = {name: _start(args, env) for name, args in commands.items()}  # all at once: one wait
    ports = {}
    for name, (process, first_line) in started.items():
        assert first_line, (name, process.communicate(timeout=20)[1])
        ports[name] = _port_of(first_line)
    # A request the metadata server logs (-v): its line must be on stderr once it stopped.
    logged = httpx.get(
        f"http://127.0.0.1:{ports['metadata-server']}/computeMetadata/v1/project/project-id",
        headers={"Metadata-Flavor": "Google"},
    )
    assert logged.status_code == 200
    for process, _ in started.values():
        process.send_signal(signal.SIGTERM)
    errors = {}
    for name, (process, _) in started.items():
        _, err = errors[name] = process.communicate(timeout=20)
        assert process.returncode == 0, (name, err)
        assert err.rstrip("\n").splitlines()[-1].endswith("stopped"), (name, err)
        assert "Traceback" not in err, err
        bind("127.0.0.1", ports[name]).close()  # free again: a restarted server can listen on it
    assert "project/project-id" in errors["metadata-server"][1]  # the log is written out


def _handles_sigterm(pid: int) -> bool:
    """Whether the process has installed a SIGTERM handler (Linux: the SigCgt mask)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigCgt:"):
            return bool(int(line.split()[1], 16) & (1 << (signal.SIGTERM - 1)))
    return False


@pytest.mark.parametrize(
    ("signum", "code", "line"),
    [(signal.SIGTERM, 143, "gcptoken: terminated"), (signal.SIGINT, 130, "gcptoken: interrupted")],
)
def test_a_one_shot_command_stopped_says_one_line(signum: int, code: int, line: str) -> None:
    process = subprocess.Popen(
        [*COMMAND, "decode", "-"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 20
    while not _handles_sigterm(process.pid):  # started: gcptoken's handler is in place
        assert time.monotonic() < deadline
        time.sleep(0.01)
    time.sleep(0.1)  # into reading stdin
    process.send_signal(signum)
    out, err = process.communicate(timeout=20)
    assert (process.returncode, out, err) == (code, "", line + "\n")


def _taken_port() -> socket.socket:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    return sock


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["emulator", "--port", "{port}"], "--port"),
        (["emulator", "--port", "0", "--mtls-port", "{port}"], "--mtls-port"),
        (["emulator", "--port", "0", "--tls-port", "{port}"], "--tls-port"),
        (["inspect", "--no-browser", "--port", "{port}"], "--port"),
        (["metadata-server", "--credentials", "{key}", "--project-number", "1", "--port", "{port}"], "--port"),
        (["proxy", "https://svc-port.a.run.app", "--credentials", "{key}", "--port", "{port}"], "--port"),
    ],
)
def test_a_port_in_use_is_named_with_its_option(
    args: list[str],
    option: str,
    emulator: EmulatorClient,
    key_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("GCPTOKEN_EMULATOR_HOST", emulator.host_port)
    with _taken_port() as taken:
        port = taken.getsockname()[1]
        code = main([arg.format(port=port, key=key_path) for arg in args])
    out, err = capsys.readouterr()
    assert code == 3, err
    assert err == (
        f"gcptoken: error: cannot listen on 127.0.0.1:{port} ({option} {port}): address already in use; "
        f"choose another {option}, or 0 for a free port\n"
    )
    assert out == ""


def test_an_address_this_machine_lacks_is_named_with_host(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["emulator", "--host", "192.0.2.1", "--port", "0"]) == 3  # TEST-NET-1: nobody's address
    out, err = capsys.readouterr()
    assert out == "" and err.splitlines()[-1] == (
        "gcptoken: error: cannot listen on 192.0.2.1 (--host 192.0.2.1): cannot assign requested address; "
        "give an address of this machine, or leave --host out"
    )
