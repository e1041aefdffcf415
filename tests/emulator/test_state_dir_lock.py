"""One emulator per ``--state-dir``: a second is refused before it writes anything, naming the
first one's address (exit 3; StateDirInUseError in the library); a lock left by a killed emulator is
taken over; the lock file is 0600 and never followed through a symlink."""

from __future__ import annotations

import fcntl
import os
import signal
import stat
import subprocess
from pathlib import Path

import pytest

from gcptoken.cli.main import main
from gcptoken.emulator import EmulatorServer, StateDirInUseError
from gcptoken.emulator.state.lock import LOCK_FILE
from tests.cli.test_cli import COMMAND

pytestmark = pytest.mark.slow


def _snapshot(directory: Path) -> dict[str, tuple[bytes, int]]:
    return {path.name: (path.read_bytes(), path.stat().st_mtime_ns) for path in directory.iterdir()}


def test_a_second_emulator_is_refused_and_a_killed_ones_lock_taken_over(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state_dir = tmp_path / "state"
    first = subprocess.Popen(
        [*COMMAND, "emulator", "--port", "0", "--state-dir", str(state_dir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert first.stdout is not None
        url = first.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        before = _snapshot(state_dir)
        assert stat.S_IMODE((state_dir / LOCK_FILE).stat().st_mode) == 0o600

        assert main(["emulator", "--port", "0", "--state-dir", str(state_dir)]) == 3
        out, err = capsys.readouterr()
        assert out == ""
        assert err == (
            f"gcptoken: error: state dir {state_dir} is in use by the emulator on {url}; "
            "stop it first, or use another --state-dir\n"
        )
        with pytest.raises(StateDirInUseError) as refused:
            EmulatorServer(state_dir=state_dir)  # the library: the same rule, a typed error
        assert refused.value.address == url and isinstance(refused.value, ValueError)
        assert _snapshot(state_dir) == before  # nothing rewritten: env and key files still point at the first
    finally:
        first.send_signal(signal.SIGKILL)  # no chance to clean up: its lock is left behind
        first.communicate(timeout=20)

    with EmulatorServer(state_dir=state_dir) as taken_over:
        assert (state_dir / LOCK_FILE).read_text() == f"{taken_over.url}\n"
        assert f"GCPTOKEN_EMULATOR_HOST={taken_over.host_port}\n" in (state_dir / "env").read_text()
        with pytest.raises(StateDirInUseError, match=taken_over.url):
            EmulatorServer(state_dir=state_dir, mtls_port=None)
    with EmulatorServer(state_dir=state_dir, mtls_port=None):
        pass  # released by stop()


@pytest.mark.parametrize("planted", ["symlink", "fifo", "directory"])
def test_a_planted_lock_file_is_refused_without_writing_elsewhere(tmp_path: Path, planted: str) -> None:
    state_dir = tmp_path / "state"
    state_dir.mkdir(mode=0o700)
    victim = tmp_path / "precious"
    victim.write_text("do not touch\n")
    lock = state_dir / LOCK_FILE
    if planted == "symlink":
        lock.symlink_to(victim)
    elif planted == "fifo":
        os.mkfifo(lock, 0o600)
    else:
        lock.mkdir()
    with pytest.raises(ValueError, match=rf"^state dir: {state_dir}/{LOCK_FILE} ") as refused:
        EmulatorServer(state_dir=state_dir)
    assert "\n" not in str(refused.value)
    assert victim.read_text() == "do not touch\n"
    assert sorted(path.name for path in state_dir.iterdir()) == [LOCK_FILE]  # nothing else written


def test_a_holder_address_is_shown_as_one_printable_line(tmp_path: Path) -> None:
    with EmulatorServer(state_dir=tmp_path, mtls_port=None) as server:
        fd = os.open(tmp_path / LOCK_FILE, os.O_WRONLY | os.O_TRUNC)
        os.write(fd, b"http://x\x1b[2J\nsecond line")  # whatever is in it, the message stays one line
        os.close(fd)
        with pytest.raises(StateDirInUseError) as refused:
            EmulatorServer(state_dir=tmp_path)
        assert "\x1b" not in str(refused.value) and "\n" not in str(refused.value)
        assert server.url


def test_a_holder_still_starting_is_named_as_such(tmp_path: Path) -> None:
    fd = os.open(tmp_path / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # held, no address written yet
        with pytest.raises(StateDirInUseError, match=r"in use by another emulator \(still starting\)") as refused:
            EmulatorServer(state_dir=tmp_path)
        assert refused.value.address is None
    finally:
        os.close(fd)
