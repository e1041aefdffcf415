"""What the docker helper's tests share: the installed ``docker-credential-gcptoken`` script and a
closed environment for it (its own HOME, cache, docker config; every Google endpoint at the
emulator; the metadata server on a closed loopback port)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from gcptoken.testing import CLOSED_LOOPBACK

__all__ = ["HELPER", "closed_env", "helper", "write_docker_config"]

HELPER = Path(sys.executable).parent / "docker-credential-gcptoken"


def closed_env(tmp_path: Path, emulator_host: str, **extra: str) -> dict[str, str]:
    """A process environment that can reach nothing but the emulator (and loopback)."""
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    env = {
        "PATH": f"{HELPER.parent}{os.pathsep}/usr/local/bin{os.pathsep}/usr/bin{os.pathsep}/bin",
        "HOME": str(home),
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
        "CLOUDSDK_CONFIG": str(tmp_path / "gcloud"),
        "DOCKER_CONFIG": str(tmp_path / "docker"),
        "GCPTOKEN_EMULATOR_HOST": emulator_host,
        "GCE_METADATA_HOST": CLOSED_LOOPBACK,
        "GCE_METADATA_IP": CLOSED_LOOPBACK,
        "NO_GCE_CHECK": "true",
        "LANG": "C.UTF-8",
    }
    env.update(extra)
    return env


def write_docker_config(env: dict[str, str], config: dict[str, Any]) -> Path:
    folder = Path(env["DOCKER_CONFIG"])
    folder.mkdir(mode=0o700, exist_ok=True)
    path = folder / "config.json"
    path.write_text(json.dumps(config))
    return path


def helper(args: list[str], stdin: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run the helper as docker does: one argument, the input on stdin, stdout captured."""
    assert HELPER.exists(), f"{HELPER} is missing: pip install -e . installs the console script"
    return subprocess.run(
        [str(HELPER), *args], input=stdin, capture_output=True, text=True, env=env, timeout=60, check=False
    )
