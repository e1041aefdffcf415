"""A cached ``gcptoken id`` for every credential kind, side by side with the cached key-file call
and a bare ``python -I -c pass``: an impersonated_service_account file, a file-sourced external
account, and the metadata server (no ping when its token is cached). Goals: each within 1.3× of
the key file, and every kind within 2.0× of Python's own start, measured in the same rounds."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from bench.cli_rows import gcptoken_command
from bench.needs import CLOSED_LOOPBACK
from bench.timing import Row, median_walls
from gcptoken.emulator import scenarios
from gcptoken.emulator.http.server import EmulatorServer

__all__ = ["cached_kinds_rows"]

AUD = "https://bench-kinds.a.run.app"
GOAL = 1.3
PYTHON_GOAL = 2.0
BARE = "python -I -c pass"
# Measured (README, Performance): before gcptoken's first line, the console script pip writes
# imports re, ~1.7x Python's start by itself; json, the cached path's modules and its reads add the rest.
WHY = "pip's gcptoken script imports re (~1.7x python -I -c pass on its own) before gcptoken runs"


def _write(path: Path, info: object) -> str:
    path.write_text(json.dumps(info))
    path.chmod(0o600)
    return str(path)


def _files(emulator: EmulatorServer, scratch: Path) -> dict[str, dict[str, str]]:
    """The environment of each kind: which credential ADC finds."""
    state = emulator.state
    key = emulator.key_file("bench-kinds")
    target = emulator.key_file("bench-kinds-target")["client_email"]
    state.grant_token_creator(target, f"serviceAccount:{key['client_email']}")
    impersonated = {
        "type": "impersonated_service_account",
        "service_account_impersonation_url": (
            f"https://iamcredentials.googleapis.com/v1/projects/-/serviceAccounts/{target}:generateAccessToken"
        ),
        "delegates": [],
        "source_credentials": key,
    }
    scratch.mkdir(exist_ok=True)
    federation = scenarios.federation(emulator, scratch)
    external = {
        **federation.info,
        "service_account_impersonation_url": f"{federation.iam_base}{federation.email}:generateAccessToken",
    }
    external_file = _write(scratch / "external.json", external)
    return {
        "key file": {"GOOGLE_APPLICATION_CREDENTIALS": _write(scratch / "key.json", key)},
        "impersonated file": {"GOOGLE_APPLICATION_CREDENTIALS": _write(scratch / "imp.json", impersonated)},
        "external account (file source)": {"GOOGLE_APPLICATION_CREDENTIALS": external_file},
        "metadata server": {
            "GOOGLE_APPLICATION_CREDENTIALS": "",
            "NO_GCE_CHECK": "",
            "GCE_METADATA_HOST": emulator.host_port,
            "GCE_METADATA_IP": emulator.host_port,
        },
    }


def cached_kinds_rows(emulator: EmulatorServer, scratch: Path, runs: int) -> list[Row]:
    command = gcptoken_command()
    base = {
        **os.environ,
        "GCPTOKEN_EMULATOR_HOST": emulator.host_port,
        "XDG_CACHE_HOME": str(scratch / "kinds-cache"),
        "CLOUDSDK_CONFIG": str(scratch / "no-gcloud"),
        "GCE_METADATA_HOST": CLOSED_LOOPBACK,
        "GCE_METADATA_IP": CLOSED_LOOPBACK,
    }
    commands: dict[str, tuple[Sequence[str], dict[str, str]]] = {}
    for name, extra in _files(emulator, scratch / "kinds").items():
        env = {**base, **extra}
        filled = subprocess.run([*command, "id", AUD], env=env, capture_output=True, text=True, check=False)
        if filled.returncode != 0:
            raise RuntimeError(f"{name}: {filled.stderr.strip()}")
        commands[name] = ([*command, "id", AUD], env)
    commands[BARE] = ([sys.executable, "-I", "-c", "pass"], base)
    times = median_walls(commands, runs)
    bare = times.pop(BARE)
    reference = times["key file"]
    rows = []
    for name, value in times.items():
        ratio = round(value / reference, 2)
        to_python = round(value / bare, 2)
        judged = name != "key file"
        goal = f"<= {GOAL:g}x the key file and <= {PYTHON_GOAL:g}x {BARE}" if judged else f"<= {PYTHON_GOAL:g}x {BARE}"
        meets = to_python <= PYTHON_GOAL and (ratio <= GOAL or not judged)
        rows.append(
            Row(
                "cli cached",
                f"gcptoken id, cached: {name}",
                round(value, 1),
                "ms",
                ratio=to_python,
                ratio_of=f"{BARE}'s",
                goal=goal,
                meets=meets,
                notes={"vs the key file": ratio, **({} if to_python <= PYTHON_GOAL else {"why": WHY})},
            )
        )
    rows.append(Row("cli cached", BARE, round(bare, 1), "ms"))
    return rows
