"""A real TPM 2.0 for tests: swtpm (Debian ``swtpm``) on a private unix socket, started fresh
and always stopped and reaped, also when the test using it fails."""

from __future__ import annotations

import contextlib
import ctypes
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Swtpm", "SwtpmUnavailable", "start_swtpm", "swtpm_missing"]

_READY_SECONDS = 10.0


class SwtpmUnavailable(RuntimeError):
    """swtpm is not installed, or did not come up."""


@dataclass(frozen=True)
class Swtpm:
    """A running swtpm: ``tcti`` is what tpm2-tss (tpm2-pytss, tpm2-tools, tpm2-openssl) takes."""

    socket_path: Path
    state_dir: Path
    pid: int

    @property
    def tcti(self) -> str:
        # tpm2-tss's swtpm TCTI: "path=" selects a unix socket (tss2-tcti-swtpm(7)).
        return f"swtpm:path={self.socket_path}"


def swtpm_missing() -> str | None:
    """Why swtpm cannot run here (a skip reason), or None."""
    if shutil.which("swtpm") is None:
        return "swtpm is not installed (Debian: apt-get install swtpm swtpm-tools)"
    return None


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM when the process that started swtpm dies, even by SIGKILL
    (a killed test run leaves no swtpm behind). Linux's prctl(PR_SET_PDEATHSIG); elsewhere, nothing."""
    if sys.platform.startswith("linux"):
        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


def _wait_until_listening(path: Path, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + _READY_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SwtpmUnavailable(f"swtpm exited with status {process.returncode} before listening")
        if path.exists():
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
                try:
                    probe.connect(str(path))
                except OSError:
                    pass
                else:
                    return
        time.sleep(0.02)
    raise SwtpmUnavailable(f"swtpm did not listen on {path} within {_READY_SECONDS:.0f} s")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
    process.wait()


@contextlib.contextmanager
def start_swtpm(directory: Path) -> Iterator[Swtpm]:
    """Start swtpm with its state in ``directory`` (kept: a second start on the same directory
    is the same TPM, its persistent handles included) and its sockets in a private 0700 temporary
    directory (a unix socket path must be short; nobody else may connect to it).

    Start it from a thread that outlives it (a fixture's, the main thread): on Linux swtpm is
    stopped when the thread that started it ends, so a killed test run leaves none behind."""
    if (reason := swtpm_missing()) is not None:
        raise SwtpmUnavailable(reason)
    directory.mkdir(parents=True, exist_ok=True)
    sockets = Path(tempfile.mkdtemp(prefix="swtpm-"))  # 0700 by mkdtemp
    data, ctrl = sockets / "tpm.sock", sockets / "tpm.sock.ctrl"
    log = (directory / "swtpm.log").open("ab")
    command = [
        "swtpm",
        "socket",
        "--tpm2",
        "--server",
        f"type=unixio,path={data}",
        "--ctrl",
        f"type=unixio,path={ctrl}",
        "--tpmstate",
        f"dir={directory}",
        "--flags",
        "not-need-init,startup-clear",
    ]
    try:
        process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=log, stderr=log, preexec_fn=_die_with_parent
        )
    except BaseException:
        log.close()
        shutil.rmtree(sockets, ignore_errors=True)
        raise
    try:
        _wait_until_listening(data, process)
        yield Swtpm(socket_path=data, state_dir=directory, pid=process.pid)
    finally:
        _stop(process)
        log.close()
        shutil.rmtree(sockets, ignore_errors=True)
