"""The swtpm harness itself: it serves a real TPM on its TCTI and leaves no process behind."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.keys.tpm_sim import Swtpm, start_swtpm, swtpm_missing

pytestmark = pytest.mark.skipif(swtpm_missing() is not None, reason=swtpm_missing() or "")


def _alive(pid: int) -> bool:
    """Running (a zombie, exited but not yet reaped by whoever inherited it, is not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    with contextlib.suppress(OSError):
        return stat.read_text().rpartition(")")[2].split()[0] != "Z"
    return True


@pytest.mark.skipif(shutil.which("tpm2_getrandom") is None, reason="tpm2-tools is not installed")
def test_the_tcti_reaches_a_real_tpm(swtpm: Swtpm) -> None:
    env = {**os.environ, "TPM2TOOLS_TCTI": swtpm.tcti}
    result = subprocess.run(["tpm2_getrandom", "--hex", "8"], env=env, capture_output=True, text=True, check=True)
    assert len(result.stdout.strip()) == 16
    assert oct(swtpm.socket_path.parent.stat().st_mode & 0o777) == "0o700"


def test_swtpm_is_reaped_on_exit_and_on_failure(tmp_path: Path) -> None:
    with start_swtpm(tmp_path / "a") as tpm:
        pid = tpm.pid
        assert _alive(pid)
    assert not _alive(pid)
    assert not tpm.socket_path.parent.exists()
    started: list[int] = []

    def fail_inside() -> None:
        with start_swtpm(tmp_path / "b") as tpm:
            started.append(tpm.pid)
            raise ZeroDivisionError

    with pytest.raises(ZeroDivisionError):
        fail_inside()
    assert started and not _alive(started[0])


def test_swtpm_dies_with_a_killed_test_process(tmp_path: Path) -> None:
    code = (
        "import sys, time\nfrom pathlib import Path\nfrom tests.keys.tpm_sim import start_swtpm\n"
        f"with start_swtpm(Path({str(tmp_path / 'state')!r})) as tpm:\n"
        "    print(tpm.pid, flush=True)\n    time.sleep(60)\n"
    )
    root = Path(__file__).resolve().parents[2]
    runner = subprocess.Popen([sys.executable, "-c", code], cwd=root, stdout=subprocess.PIPE, text=True)
    try:
        assert runner.stdout is not None
        pid = int(runner.stdout.readline())
        assert _alive(pid)
    finally:
        runner.kill()  # SIGKILL: no finally, no context manager exit runs in it
        runner.communicate()
    deadline = time.monotonic() + 10
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(pid)
