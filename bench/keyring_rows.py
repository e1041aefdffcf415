"""pip's and uv's keyring: ``keyring get URL oauth2accesstoken`` (what uv runs, one process per
request) with gcptoken's backend (its disk cache) against Google's ``keyrings.google-artifactregistry-auth``
(a credential refresh each call), both on the emulator's token service; and ``uv pip install`` of N
packages from the emulated Artifact Registry repository over HTTPS through gcptoken's backend,
against the same install with the token given to uv in its environment (no keyring process at all).

Google's backend answers only hosts whose name ends in ``.pkg.dev`` (``keyrings/gauth.py``): the
installs run at ``https://us-python.pkg.dev/`` itself, answered by an emulator on loopback inside a
private mount namespace (:mod:`bench.google_names`, root only), so Google's backend installs in the
same run and ours under its default host rule. Where that cannot be set up, the installs use the
emulator's loopback port and Google's row says why it was skipped."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from pathlib import Path

from bench.google_names import serve_as_google, unavailable
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
        "NO_GCE_CHECK": "true",  # google-auth (Google's backend) probes no metadata server either
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


def _install_script(target: Path, index: str, extra: str, names: list[str]) -> str:
    from uv import find_uv_bin

    # A fresh target and cache each run: uv resolves and downloads every time.
    return (
        f'rm -rf "{target}" && {find_uv_bin()} pip install --quiet --python {sys.executable} --target "{target}"'
        f' --cache-dir "{target}-cache" --default-index registry={index} {extra} {" ".join(names)}'
        f' && rm -rf "{target}-cache"'
    )


def _as_is(command: Sequence[str]) -> list[str]:
    return list(command)


def _install_rows(scratch: Path, packages: int, runs: int) -> list[Row]:
    """At ``https://us-python.pkg.dev/`` (Google's name, on loopback in a private mount namespace:
    bench/google_names.py) where this machine allows it, with Google's backend beside ours and
    ours under its default host rule; else at the emulator's loopback port, Google's row skipped."""
    reason = unavailable()
    with ExitStack() as stack:
        if reason is None:
            registry, names = stack.enter_context(serve_as_google(("us-python.pkg.dev",)))
            authority, wrap = "us-python.pkg.dev", names.argv
        else:
            registry = stack.enter_context(EmulatorServer(tls_port=0))
            assert registry.tls is not None
            authority, wrap = registry.tls.url.split("://", 1)[1], _as_is
        where = scratch / "keyring-install"
        where.mkdir(exist_ok=True)
        env = {**_base(registry, where), "PYTHON_KEYRING_BACKEND": OURS}
        if reason is not None:
            env["GCPTOKEN_HELPER_HOSTS"] = authority
        return _timed_installs(registry, authority, env, wrap, packages, runs, reason)


def _timed_installs(
    registry: EmulatorServer,
    authority: str,
    env: dict[str, str],
    wrap: Callable[[Sequence[str]], list[str]],
    packages: int,
    runs: int,
    skipped: str | None,
) -> list[Row]:
    path = f"{registry.state.project_id}/{REPOSITORY}/simple/"
    token = registry.state.issue_access_token(
        registry.state.create_service_account("bench-keyring-url"), ("https://www.googleapis.com/auth/cloud-platform",)
    ).token
    names = sorted(wheels())[:packages]
    user_index, bare_index = f"https://oauth2accesstoken@{authority}/{path}", f"https://{authority}/{path}"
    # uv's documented way to give a named index its credentials: UV_INDEX_{NAME}_USERNAME/_PASSWORD
    # (never on a command line).
    plain = {**env, "UV_INDEX_REGISTRY_USERNAME": "oauth2accesstoken", "UV_INDEX_REGISTRY_PASSWORD": token}
    keyring = "--keyring-provider subprocess"
    runs_of = {
        "gcptoken keyring backend": (user_index, keyring, env),
        "keyrings.google-artifactregistry-auth": (user_index, keyring, {**env, "PYTHON_KEYRING_BACKEND": GOOGLES}),
        "token in uv's environment": (bare_index, "", plain),
    }
    if skipped is not None:
        del runs_of["keyrings.google-artifactregistry-auth"]
    scratch = Path(tempfile.mkdtemp(prefix="gcptoken-bench-uv-"))
    commands: dict[str, tuple[Sequence[str], dict[str, str]]] = {}
    for name, (index, extra, command_env) in runs_of.items():
        script = _install_script(scratch / name.replace(" ", "-").replace("'", ""), index, extra, names)
        commands[name] = (wrap(["sh", "-c", script]), command_env)
    try:
        times = median_walls(commands, runs)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    ours, bare = times["gcptoken keyring backend"], times["token in uv's environment"]
    theirs = times.get("keyrings.google-artifactregistry-auth")
    at = "https://us-python.pkg.dev/ on loopback" if skipped is None else "the emulator's loopback port"
    versus = f"skipped: {skipped}" if theirs is None else round(ours / theirs, 2)
    rows = [
        Row(
            "keyring",
            f"uv pip install {packages} packages, gcptoken keyring backend",
            round(ours, 1),
            "ms",
            ratio=round(ours / bare, 2),
            ratio_of="the token in uv's environment's",
            notes={"vs keyrings.google-artifactregistry-auth": versus, "index": at},
        ),
        Row("keyring", f"uv pip install {packages} packages, token in uv's environment", round(bare, 1), "ms"),
    ]
    if theirs is not None:
        name = f"uv pip install {packages} packages, keyrings.google-artifactregistry-auth"
        rows.insert(
            1, Row("keyring", name, round(theirs, 1), "ms", ratio=round(theirs / bare, 2), ratio_of=rows[0].ratio_of)
        )
    return rows


def keyring_rows(scratch: Path, packages: int, runs: int) -> list[Row]:
    """The rows above; the emulators here are their own, with an HTTPS port (pip and uv send
    credentials over TLS only, as Artifact Registry serves)."""
    with EmulatorServer(tls_port=0) as registry:
        get_rows = _get_rows(_base(registry, scratch), runs)
    return get_rows + _install_rows(scratch, packages, runs)
