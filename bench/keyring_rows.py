"""pip's and uv's keyring: ``keyring get URL oauth2accesstoken`` (what uv runs, one process per
request) with gcptoken's backend (its disk cache) against Google's ``keyrings.google-artifactregistry-auth``
(a credential refresh each call), both on the emulator's token service; and ``uv pip install`` of N
packages from the emulated Artifact Registry repository over HTTPS through gcptoken's backend,
against the same install with the token given to uv in its environment (no keyring process at all).

Google's backend cannot take part in the install: it answers only hosts whose name ends in
``.pkg.dev`` (``keyrings/gauth.py``), and the emulator listens on loopback, which cannot be named so
here; its row says so instead."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from bench.needs import CLOSED_LOOPBACK
from bench.timing import Row, median_walls
from gcptoken.emulator.artifactregistry.python import REPOSITORY
from gcptoken.emulator.artifactregistry.wheels import wheels
from gcptoken.emulator.http.server import EmulatorServer

__all__ = ["keyring_rows"]

AR = "https://us-python.pkg.dev/bench-project/bench-repo/simple/"
OURS = "gcptoken.helpers.keyring_backend.GcptokenKeyring"
GOOGLES = "keyrings.gauth.GooglePythonAuth"
# A cached answer adds little to what keyring's CLI costs before any backend answers (~0.3 s of
# imports of its own: jaraco.context alone loads urllib.request).
FLOOR_GOAL = 1.25
SKIPPED = "keyrings.gauth answers only hosts ending in .pkg.dev; the emulator is on 127.0.0.1"
# The machine's own pip/uv settings and CA bundles: each command here gets its own.
_MACHINE_SETTINGS = ("PIP_", "UV_", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_")


def _base(registry: EmulatorServer, scratch: Path) -> dict[str, str]:
    key = scratch / "keyring-key.json"
    key.write_text(json.dumps(registry.key_file("bench-keyring")))
    key.chmod(0o600)
    tools = scratch / "keyring-tools"  # `keyring` on PATH, as uv finds it
    tools.mkdir(exist_ok=True)
    if not (tools / "keyring").exists():
        (tools / "keyring").symlink_to(Path(sys.executable).with_name("keyring"))
    ca = scratch / "keyring-ca.pem"
    ca.write_text(registry.state.workload_ca.root_pem)
    return {
        **{name: value for name, value in os.environ.items() if not name.startswith(_MACHINE_SETTINGS)},
        "PATH": f"{tools}{os.pathsep}{os.environ['PATH']}",
        "GOOGLE_APPLICATION_CREDENTIALS": str(key),
        "GCPTOKEN_EMULATOR_HOST": registry.host_port,
        "XDG_CACHE_HOME": str(scratch / "keyring-cache"),
        "CLOUDSDK_CONFIG": str(scratch / "keyring-no-gcloud"),
        "GCE_METADATA_HOST": CLOSED_LOOPBACK,
        "GCE_METADATA_IP": CLOSED_LOOPBACK,
        "SSL_CERT_FILE": str(ca),
        "UV_NO_CONFIG": "1",
        "UV_PYTHON_DOWNLOADS": "never",
        "UV_NO_PROGRESS": "1",
    }


def _get_rows(base: dict[str, str], runs: int) -> list[Row]:
    keyring = str(Path(sys.executable).with_name("keyring"))
    get = [keyring, "get", AR, "oauth2accesstoken"]
    # keyring's own start: its CLI and its backends loaded, ours asked about a host not ours
    # (exit 1, no answer), the floor under any backend's answer.
    floor = ["sh", "-c", f"{keyring} get https://pypi.org/simple/ oauth2accesstoken || true"]
    commands: dict[str, tuple[Sequence[str], dict[str, str]]] = {
        "gcptoken": (get, {**base, "PYTHON_KEYRING_BACKEND": OURS}),
        "google": (get, {**base, "PYTHON_KEYRING_BACKEND": GOOGLES}),
        "floor": (floor, {**base, "PYTHON_KEYRING_BACKEND": OURS}),
    }
    for name in ("gcptoken", "google"):  # each answers (ours fills its cache) before timing
        command, env = commands[name]
        subprocess.run(command, env=env, check=True, capture_output=True, timeout=120)
    times = median_walls(commands, runs)
    ours, theirs, floor_ms = times["gcptoken"], times["google"], times["floor"]
    to_floor = round(ours / floor_ms, 2)
    return [
        Row(
            "keyring",
            "keyring get, gcptoken backend (cached)",
            round(ours, 1),
            "ms",
            ratio=to_floor,
            ratio_of="keyring's own start's",
            goal=f"<= {FLOOR_GOAL:g}x keyring's own start",
            meets=to_floor <= FLOOR_GOAL,
            notes={"vs keyrings.google-artifactregistry-auth": round(ours / theirs, 2)},
        ),
        Row("keyring", "keyring get, keyrings.google-artifactregistry-auth", round(theirs, 1), "ms"),
        Row("keyring", "keyring's own start (no backend answers)", round(floor_ms, 1), "ms"),
    ]


def _install_rows(registry: EmulatorServer, base: dict[str, str], packages: int, runs: int) -> list[Row]:
    from uv import find_uv_bin

    assert registry.tls is not None
    authority = registry.tls.url.split("://", 1)[1]
    path = f"{registry.state.project_id}/{REPOSITORY}/simple/"
    token = registry.state.issue_access_token(
        registry.state.create_service_account("bench-keyring-url"), ("https://www.googleapis.com/auth/cloud-platform",)
    ).token
    names = sorted(wheels())[:packages]
    uv = str(find_uv_bin())
    commands: dict[str, tuple[Sequence[str], dict[str, str]]] = {}
    scratch = Path(tempfile.mkdtemp(prefix="gcptoken-bench-uv-"))
    env = {**base, "PYTHON_KEYRING_BACKEND": OURS, "GCPTOKEN_HELPER_HOSTS": authority}
    # uv's documented way to give a named index its credentials: UV_INDEX_{NAME}_USERNAME/_PASSWORD
    # (never on a command line).
    plain = {**env, "UV_INDEX_REGISTRY_USERNAME": "oauth2accesstoken", "UV_INDEX_REGISTRY_PASSWORD": token}
    for name, index, extra, command_env in (
        (
            "gcptoken keyring backend",
            f"https://oauth2accesstoken@{authority}/{path}",
            "--keyring-provider subprocess",
            env,
        ),
        ("token in uv's environment", f"https://{authority}/{path}", "", plain),
    ):
        target = scratch / name.replace(" ", "-")
        # A fresh target and cache each run: uv resolves and downloads every time.
        script = (
            f'rm -rf "{target}" && {uv} pip install --quiet --python {sys.executable} --target "{target}"'
            f' --cache-dir "{target}-cache" --default-index registry={index} {extra} {" ".join(names)}'
            f' && rm -rf "{target}-cache"'
        )
        commands[name] = (["sh", "-c", script], command_env)
    try:
        times = median_walls(commands, runs)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    ours, bare = times["gcptoken keyring backend"], times["token in uv's environment"]
    return [
        Row(
            "keyring",
            f"uv pip install {packages} packages, gcptoken keyring backend",
            round(ours, 1),
            "ms",
            ratio=round(ours / bare, 2),
            ratio_of="the token in uv's environment's",
            notes={"keyrings.google-artifactregistry-auth": f"skipped: {SKIPPED}"},
        ),
        Row("keyring", f"uv pip install {packages} packages, token in uv's environment", round(bare, 1), "ms"),
    ]


def keyring_rows(scratch: Path, packages: int, runs: int) -> list[Row]:
    """The rows above; the emulator here is its own, with an HTTPS port (pip and uv send
    credentials over TLS only, as Artifact Registry serves)."""
    with EmulatorServer(tls_port=0) as registry:
        base = _base(registry, scratch)
        return _get_rows(base, runs) + _install_rows(registry, base, packages, runs)
