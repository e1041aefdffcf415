"""The swtpm harness itself: it serves a real TPM on its TCTI and leaves no process behind."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.keys.tpm_sim import Swtpm, start_swtpm, swtpm_missing

pytestmark = pytest.mark.skipif(swtpm_missing() is not None, reason=swtpm_missing() or "")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
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
