"""swtpm, the real TPM 2.0 simulator (Debian ``swtpm``), on a private Unix socket for a test.

``start_swtpm(directory)`` runs ``swtpm socket --tpm2`` with its state in ``directory`` and yields a
:class:`Swtpm` whose ``tcti`` is the TSS configuration string that reaches it
(``swtpm:path=SOCKET``, tpm2-tss's swtpm TCTI); the process is stopped at the end of the block.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Swtpm", "start_swtpm"]

# A Unix socket path must fit sockaddr_un.sun_path (108 bytes on Linux).
_MAX_SOCKET_PATH = 100


@dataclass(frozen=True)
class Swtpm:
    """A running swtpm: its socket, and the TCTI string naming it."""

    socket: Path
    process: subprocess.Popen[bytes]

    @property
    def tcti(self) -> str:
        return f"swtpm:path={self.socket}"


def swtpm_missing() -> str | None:
    """Why swtpm cannot run here, or None."""
    return None if shutil.which("swtpm") else "swtpm is not installed (Debian: apt install swtpm swtpm-tools)"


@contextmanager
def start_swtpm(directory: Path) -> Iterator[Swtpm]:
    """A fresh TPM (state in ``directory``), started up (``startup-clear``), for the block."""
    state = Path(directory)
    state.mkdir(parents=True, exist_ok=True)
    sockets = state if len(str(state)) < _MAX_SOCKET_PATH - 10 else Path(tempfile.mkdtemp(prefix="swtpm-"))
    socket = sockets / "tpm.sock"
    command = [
        "swtpm", "socket", "--tpm2",
        "--tpmstate", f"dir={state}",
        "--server", f"type=unixio,path={socket}",
        "--ctrl", f"type=unixio,path={socket}.ctrl",
        "--flags", "startup-clear,not-need-init",
    ]  # fmt: skip
    process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 10
        while not socket.exists():
            if process.poll() is not None:
                raise RuntimeError(f"swtpm exited: {process.stderr.read().decode() if process.stderr else ''}")
            if time.monotonic() > deadline:
                raise RuntimeError("swtpm did not open its socket in 10 s")
            time.sleep(0.02)
        yield Swtpm(socket, process)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stderr is not None:
            process.stderr.close()
        if sockets != state:
            shutil.rmtree(sockets, ignore_errors=True)
