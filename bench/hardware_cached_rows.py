"""A cached ``gcptoken id`` whose credential's key is in a SoftHSM2 token or a swtpm TPM, side by
side with the same call for a key file, in the same rounds. The cache asks a key in hardware for
its reference and PIN, never for the device: goal, within 1.15x of the key file. Each device is
set up as a user does it (``gcptoken key generate``, the certificate uploaded, ``gcptoken key
credentials``); a missing one is skipped with the reason."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from bench.cli_rows import gcptoken_command
from bench.needs import CLOSED_LOOPBACK
from bench.pkcs11_rows import softhsm_unavailable
from bench.timing import Row, median_walls
from bench.tpm_rows import unavailable as tpm_unavailable
from gcptoken.emulator.http.server import EmulatorServer
from gcptoken.emulator.keys.uploaded import upload

__all__ = ["hardware_cached_rows"]

AUD = "https://bench-hardware.a.run.app"
GOAL = 1.15
KEY_FILE = "key file"
PIN = "bench-pin-2718"  # a throwaway token's and TPM key's PIN


def _run(command: list[str], env: dict[str, str]) -> str:
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False, timeout=120)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command[1:3])}: {done.stderr.strip()}")
    return done.stdout


def _account(emulator: EmulatorServer, where: str, env: dict[str, str], directory: Path) -> str:
    """The credential file of a new account whose key was made at ``where``."""
    command = gcptoken_command()
    email = emulator.key_file(f"bench-hw-{directory.name}")["client_email"]
    reference, certificate, credentials = directory / "key.ref", directory / "cert.pem", directory / "sa.json"
    _run([*command, "key", "generate", where, "--out", str(reference), "--cert", str(certificate)], env)
    key_id = upload(emulator.state, email, certificate.read_bytes())
    _run([*command, "key", "credentials", f"@{reference}", "--account", email, "--key-id", key_id,
          "--out", str(credentials)], env)  # fmt: skip
    return str(credentials)


@contextmanager
def _softhsm(emulator: EmulatorServer, scratch: Path, base: dict[str, str]) -> Iterator[dict[str, str]]:
    from bench.pkcs11_rows import MODULES

    module = next(path for path in MODULES if os.path.isfile(path))
    directory = scratch / "softhsm"
    (directory / "tokens").mkdir(parents=True)
    conf = directory / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {directory / 'tokens'}\nlog.level = ERROR\n")
    env = {**base, "SOFTHSM2_CONF": str(conf), "GCPTOKEN_KEY_PIN": PIN}
    subprocess.run(
        ["softhsm2-util", "--init-token", "--free", "--label", "bench", "--so-pin", "so-" + PIN, "--pin", PIN],
        env=env, check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    where = f"pkcs11:token=bench;object=bench-cached?module-path={module}"
    yield {**env, "GOOGLE_APPLICATION_CREDENTIALS": _account(emulator, where, env, directory)}


@contextmanager
def _swtpm(emulator: EmulatorServer, scratch: Path, base: dict[str, str]) -> Iterator[dict[str, str]]:
    from tests.keys.tpm_sim import start_swtpm

    directory = scratch / "swtpm"
    directory.mkdir()
    with start_swtpm(directory / "state") as simulator:
        env = {**base, "GCPTOKEN_TPM_TCTI": simulator.tcti, "GCPTOKEN_KEY_PIN": PIN}
        yield {**env, "GOOGLE_APPLICATION_CREDENTIALS": _account(emulator, "tpm", env, directory)}


def hardware_cached_rows(emulator: EmulatorServer, scratch: Path, runs: int) -> list[Row]:
    scratch = scratch / "hardware-cached"
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    (scratch / "runtime").mkdir(mode=0o700)
    base = {
        **os.environ,
        "GCPTOKEN_EMULATOR_HOST": emulator.host_port,
        "XDG_CACHE_HOME": str(scratch / "cache"),
        "XDG_RUNTIME_DIR": str(scratch / "runtime"),  # the cache's pepper (cache.pepper): the run's own
        "CLOUDSDK_CONFIG": str(scratch / "no-gcloud"),
        "GCE_METADATA_HOST": CLOSED_LOOPBACK,
        "GCE_METADATA_IP": CLOSED_LOOPBACK,
    }
    key_file = scratch / "key.json"
    key_file.write_text(json.dumps(emulator.key_file("bench-hw-keyfile")))
    key_file.chmod(0o600)
    devices = {
        "SoftHSM2 key (PKCS#11)": (softhsm_unavailable(), _softhsm),
        "swtpm key (TPM 2.0)": (tpm_unavailable(), _swtpm),
    }
    command = [*gcptoken_command(), "id", AUD]
    with ExitStack() as stack:
        envs = {KEY_FILE: {**base, "GOOGLE_APPLICATION_CREDENTIALS": str(key_file)}}
        for name, (reason, setup) in devices.items():
            if reason is not None:
                print(f"bench: cached gcptoken id with a {name} is skipped: {reason}", file=sys.stderr)
                continue
            envs[name] = stack.enter_context(setup(emulator, scratch, base))
        if len(envs) == 1:
            return []
        for env in envs.values():
            _run(command, env)  # fills the cache: from here on, every call is a hit
        times = median_walls({name: (command, env) for name, env in envs.items()}, runs)
    reference = times[KEY_FILE]
    rows = [Row("cli cached", f"gcptoken id, cached: {KEY_FILE} (hardware rows' reference)", round(reference, 1), "ms")]
    for name, value in times.items():
        if name == KEY_FILE:
            continue
        ratio = round(value / reference, 2)
        rows.append(
            Row(
                "cli cached",
                f"gcptoken id, cached: {name}",
                round(value, 1),
                "ms",
                ratio=ratio,
                ratio_of="the key file's",
                goal=f"<= {GOAL:g}x the key file (the cache never opens the device)",
                meets=ratio <= GOAL,
            )
        )
    return rows
