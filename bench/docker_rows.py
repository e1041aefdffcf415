"""docker's credential helper: a cached ``docker-credential-gcptoken get`` (what docker runs before
every pull and push) against ``docker-credential-gcloud get`` (gcloud's helper, signed in with the
same key, its token endpoint at the emulator), the cached ``gcptoken access`` and a bare
``python -I -c pass``, in the same rounds. Goals: at least 10x faster than gcloud's helper, and
within 1.3x of the cached ``gcptoken access`` (the helper adds nothing heavy to the cached path)."""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench.cli_rows import gcloud_env, gcptoken_command, key_file_env
from bench.timing import Row
from gcptoken.emulator.http.server import EmulatorServer

__all__ = ["docker_rows"]

GCLOUD_GOAL = 10.0
CLI_GOAL = 1.3
REGISTRY = "gcr.io"  # on gcloud's list of supported registries too
GCLOUD_HELPER = "/usr/lib/google-cloud-sdk/bin/docker-credential-gcloud"

Command = tuple[list[str], dict[str, str]]


def _walls(commands: dict[str, Command], runs: int) -> dict[str, float]:
    """Median wall ms of each command, run in turn round after round, the registry on stdin."""
    samples: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(runs):
        for name, (command, env) in commands.items():
            began = time.perf_counter()
            subprocess.run(command, input=REGISTRY, env=env, check=True, capture_output=True, text=True, timeout=120)
            samples[name].append((time.perf_counter() - began) * 1000)
    return {name: statistics.median(values) for name, values in samples.items()}


def _gcloud_helper(emulator: EmulatorServer, key_path: Path, scratch: Path) -> Command | None:
    """gcloud's helper signed in with the key, or None when gcloud is not installed here."""
    gcloud, helper = shutil.which("gcloud"), shutil.which("docker-credential-gcloud") or GCLOUD_HELPER
    if gcloud is None or not Path(helper).exists():
        return None
    env = gcloud_env(emulator, scratch / "docker-gcloud-config")
    activate = [gcloud, "auth", "activate-service-account", "--key-file", str(key_path)]
    subprocess.run(activate, env=env, check=True, capture_output=True, timeout=120)
    return [helper, "get"], env


def docker_rows(emulator: EmulatorServer, scratch: Path, runs: int) -> list[Row]:
    key_path, env = key_file_env(emulator, scratch, "docker")
    ours = [str(Path(sys.executable).parent / "docker-credential-gcptoken"), "get"]
    filled = subprocess.run(ours, input=REGISTRY, env=env, capture_output=True, text=True, check=False)
    if filled.returncode != 0:
        raise RuntimeError(f"docker-credential-gcptoken get: {filled.stderr.strip()}")
    commands: dict[str, Command] = {
        "gcptoken": (ours, env),
        "gcptoken access": ([*gcptoken_command(), "access"], env),
        "python": ([sys.executable, "-I", "-c", "pass"], env),
    }
    gcloud = _gcloud_helper(emulator, key_path, scratch)
    if gcloud is not None:
        commands["gcloud"] = gcloud
    times = _walls(commands, runs)
    cached = times["gcptoken"]
    to_cli = round(cached / times["gcptoken access"], 2)
    row = Row(
        "docker",
        "docker-credential-gcptoken get, cached",
        round(cached, 1),
        "ms",
        ratio=to_cli,
        ratio_of="the cached gcptoken access's",
        goal=f"<= {CLI_GOAL:g}x the cached gcptoken access, >= {GCLOUD_GOAL:g}x faster than docker-credential-gcloud",
        notes={
            "gcptoken access, cached ms": round(times["gcptoken access"], 1),
            "python -I -c pass ms": round(times["python"], 1),
        },
    )
    rows = [row]
    if gcloud is None:
        row.notes["gcloud"] = "not installed: no comparison"
        row.meets = to_cli <= CLI_GOAL
        return rows
    faster = round(times["gcloud"] / cached, 1)
    row.notes["faster than docker-credential-gcloud"] = faster
    row.meets = to_cli <= CLI_GOAL and faster >= GCLOUD_GOAL
    rows.append(Row("docker", "docker-credential-gcloud get", round(times["gcloud"], 1), "ms"))
    return rows
