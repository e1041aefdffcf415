"""tpm2-abrmd, the TSS's TPM resource manager, in front of a test's swtpm, on a private D-Bus.

A TPM holds three objects at once (swtpm as a chip: TPM2_PT_HR_LOADED_MIN = 3). A TLS handshake
with a TPM key needs more (the key, the server's public key, a hash sequence and its copy), so a
real machine goes through the kernel's resource manager (``/dev/tpmrm0``), which swaps contexts
out; with swtpm the same job is tpm2-abrmd's (Debian ``tpm2-abrmd``, ``libtss2-tcti-tabrmd0``).
``start_resource_manager(swtpm, directory)`` yields the environment a client needs: the TCTI
(``tabrmd:bus_name=…,bus_type=session``) under ``TPM2OPENSSL_TCTI`` and the bus address.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from tests.keys.tpm_sim import Swtpm

__all__ = ["resource_manager_missing", "start_resource_manager"]


def resource_manager_missing() -> str | None:
    """Why tpm2-abrmd cannot run here, or None."""
    if not shutil.which("tpm2-abrmd") and not os.path.exists("/usr/sbin/tpm2-abrmd"):
        return "tpm2-abrmd is not installed (Debian: apt install tpm2-abrmd libtss2-tcti-tabrmd0)"
    if not shutil.which("dbus-daemon"):
        return "dbus-daemon is not installed (Debian: apt install dbus)"
    if not shutil.which("tpm2_getrandom"):
        return "tpm2-tools is not installed (Debian: apt install tpm2-tools)"
    return None


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@contextmanager
def start_resource_manager(swtpm: Swtpm, directory: Path) -> Iterator[dict[str, str]]:
    """A session D-Bus and tpm2-abrmd on it for ``swtpm``; yields the client's environment."""
    directory.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        bus = subprocess.Popen(
            ["dbus-daemon", "--session", "--nofork", "--print-address=1"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        stack.callback(_stop, bus)
        assert bus.stdout is not None
        address = bus.stdout.readline().decode().strip()
        bus.stdout.close()
        name = f"org.gcptoken.test.abrmd{uuid.uuid4().hex[:12]}"
        env = {**os.environ, "DBUS_SESSION_BUS_ADDRESS": address}
        abrmd = shutil.which("tpm2-abrmd") or "/usr/sbin/tpm2-abrmd"
        manager = subprocess.Popen(
            [abrmd, "--session", "--allow-root", f"--dbus-name={name}", f"--tcti={swtpm.tcti}", "--flush-all"],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        stack.callback(_stop, manager)
        client = {"DBUS_SESSION_BUS_ADDRESS": address, "TPM2OPENSSL_TCTI": f"tabrmd:bus_name={name},bus_type=session"}
        deadline = time.monotonic() + 15
        while True:  # ready once it answers on the bus
            probe = subprocess.run(
                ["tpm2_getrandom", "-T", client["TPM2OPENSSL_TCTI"], "4"],
                env={**env, "TSS2_LOG": "all+none"},
                capture_output=True,
                check=False,
            )
            if probe.returncode == 0:
                break
            if manager.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("tpm2-abrmd did not start")
            time.sleep(0.1)
        yield client
