"""The command line: a cached ``gcptoken id`` against ``gcloud auth print-identity-token`` on the
same emulator, and a cold ``gcptoken id`` (one round trip)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from bench.needs import CLOSED_LOOPBACK
from bench.timing import Row, median_wall
from gcptoken.emulator import scenarios
from gcptoken.emulator.http.server import EmulatorServer

__all__ = ["cli_rows", "gcptoken_command", "key_file_env"]

AUD = "https://bench-cli.a.run.app"
CACHED_GOAL_MS = 60.0
GCLOUD_GOAL = 12.0


def gcloud_env(emulator: EmulatorServer, config: Path) -> dict[str, str]:
    return {**os.environ, **scenarios.gcloud_environment(emulator.url, config, CLOSED_LOOPBACK)}


def gcptoken_command() -> list[str]:
    script = Path(sys.executable).parent / "gcptoken"
    return [str(script)] if script.exists() else [sys.executable, "-m", "gcptoken"]


def key_file_env(emulator: EmulatorServer, scratch: Path, name: str) -> tuple[Path, dict[str, str]]:
    """A fresh account's key file and the environment that uses it (cache in ``scratch/name``)."""
    key_path = scratch / f"{name}-key.json"
    key_path.write_text(json.dumps(emulator.key_file(f"bench-{name}")))
    key_path.chmod(0o600)
    env = {
        **os.environ,
        "GCPTOKEN_EMULATOR_HOST": emulator.host_port,
        "GOOGLE_APPLICATION_CREDENTIALS": str(key_path),
        "XDG_CACHE_HOME": str(scratch / f"{name}-cache"),
        "GCE_METADATA_HOST": CLOSED_LOOPBACK,
        "GCE_METADATA_IP": CLOSED_LOOPBACK,
    }
    return key_path, env


def cli_rows(emulator: EmulatorServer, scratch: Path, runs: int) -> list[Row]:
    key_path, env = key_file_env(emulator, scratch, "cli")
    command = gcptoken_command()
    subprocess.run([*command, "id", AUD], env=env, check=True, capture_output=True)  # fills the cache
    cached = median_wall([*command, "id", AUD], env, runs)
    cold = median_wall([*command, "id", AUD, "--no-cache"], env, max(3, runs // 3))
    rows = [
        Row(
            "cli",
            "gcptoken id, cached",
            round(cached, 1),
            "ms",
            goal=f"<= {CACHED_GOAL_MS:g} ms",
            meets=cached <= CACHED_GOAL_MS,
        ),
        Row("cli", "gcptoken id, cold (one round trip)", round(cold, 1), "ms"),
    ]
    gcloud = shutil.which("gcloud")
    if gcloud is None:
        rows.append(Row("cli", "gcloud auth print-identity-token (not installed)", 0, "ms"))
        return rows
    env_for_gcloud = gcloud_env(emulator, scratch / "gcloud-config")
    subprocess.run(
        [gcloud, "auth", "activate-service-account", "--key-file", str(key_path)],
        env=env_for_gcloud,
        check=True,
        capture_output=True,
        stdin=subprocess.DEVNULL,
        timeout=120,
    )
    printed = median_wall(
        [gcloud, "auth", "print-identity-token", f"--audiences={AUD}"], env_for_gcloud, max(2, runs // 5)
    )
    ratio = printed / cached
    rows.append(Row("cli", "gcloud auth print-identity-token", round(printed, 1), "ms"))
    rows[0].ratio, rows[0].ratio_of = round(ratio, 1), "faster than gcloud"
    rows[0].notes["faster_than_gcloud_goal"] = f">= {GCLOUD_GOAL:g}x"
    rows[0].meets = cached <= CACHED_GOAL_MS and ratio >= GCLOUD_GOAL
    rows[0].goal = f"<= {CACHED_GOAL_MS:g} ms and >= {GCLOUD_GOAL:g}x faster than gcloud"
    return rows
