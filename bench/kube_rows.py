"""kubectl's exec credential plugin: ``kubectl get namespaces`` against a loopback HTTPS stand-in
for an API server (tests/helpers/kube_apiserver.py), its user's token from ``gcptoken
kube-credential`` (cached) or from ``gke-gcloud-auth-plugin --use_application_default_credentials``
(Google's Go plugin, reading the same emulator-issued key file, whose token_uri is the emulator),
run in turn round after round; then each plugin alone. The peer keeps no cache in this mode: it
asks the token endpoint on every call (here a loopback one, so the comparison favours it)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from bench.cached_kinds_rows import BARE, PYTHON_GOAL
from bench.cli_rows import gcptoken_command, key_file_env
from bench.timing import Row, median_walls
from gcptoken.emulator.http.server import EmulatorServer

__all__ = ["kube_rows"]

PEER = "gke-gcloud-auth-plugin"
KUBECTL_GOAL = 1.25  # a kubectl command through gcptoken costs at most this many times the peer's
V1, V1BETA1 = "client.authentication.k8s.io/v1", "client.authentication.k8s.io/v1beta1"


def _kubeconfig(path: Path, server: str, ca_data: str, command: str, args: list[str], api_version: str) -> Path:
    """A kubeconfig whose one user runs ``command ARGS`` (JSON strings are YAML strings)."""
    quoted = "".join(f"      - {json.dumps(arg)}\n" for arg in args)
    path.write_text(
        "apiVersion: v1\nkind: Config\n"
        f"clusters:\n- name: c\n  cluster:\n    server: {server}\n    certificate-authority-data: {ca_data}\n"
        "contexts:\n- name: c\n  context:\n    cluster: c\n    user: u\ncurrent-context: c\n"
        f"users:\n- name: u\n  user:\n    exec:\n      apiVersion: {api_version}\n"
        f"      command: {json.dumps(command)}\n      args:\n{quoted}"
        "      interactiveMode: Never\n      provideClusterInfo: false\n"
    )
    return path


def kube_rows(emulator: EmulatorServer, scratch: Path, runs: int) -> list[Row]:
    kubectl, peer = shutil.which("kubectl"), shutil.which(PEER)
    if kubectl is None:
        return [Row("kubectl", "kubectl get namespaces (kubectl not installed)", 0, "ms")]
    from tests.helpers.kube_apiserver import KubeApiServer  # the stand-in the tests use

    _, env = key_file_env(emulator, scratch, "kube")
    env = {**env, "HOME": str(scratch / "kube-home")}  # kubectl's discovery cache: the bench's own
    command = gcptoken_command()
    plugin = [*command, "kube-credential"]
    rows: list[Row] = []
    with KubeApiServer(emulator.url) as api:
        ours = _kubeconfig(
            scratch / "kube-ours", api.url, api.ca_data, command[0], [*command[1:], "kube-credential"], V1
        )
        get = [kubectl, "get", "namespaces", "-o", "name"]
        commands: dict[str, tuple[Sequence[str], dict[str, str]]] = {"ours": ([*get, "--kubeconfig", str(ours)], env)}
        if peer is not None:
            theirs = _kubeconfig(
                scratch / "kube-peer", api.url, api.ca_data, peer, ["--use_application_default_credentials"], V1BETA1
            )
            commands["peer"] = ([*get, "--kubeconfig", str(theirs)], env)
        for argv, environ in commands.values():  # fills our cache and kubectl's discovery cache
            subprocess.run(argv, env=environ, check=True, capture_output=True, timeout=120)
        commands |= {"plugin": (plugin, env), BARE: ([sys.executable, "-I", "-c", "pass"], env)}
        if peer is not None:
            commands["peer alone"] = ([peer, "--use_application_default_credentials"], env)
        walls = median_walls(commands, runs)
    assert api.rejected == 0, "the stand-in refused a token: the rows would time failures"
    if peer is None:
        rows.append(Row("kubectl", "kubectl get namespaces, gcptoken (cached)", round(walls["ours"], 1), "ms"))
        rows.append(Row("kubectl", f"{PEER} (not installed)", 0, "ms"))
    else:
        ratio = round(walls["ours"] / walls["peer"], 2)
        rows += [
            Row(
                "kubectl",
                "kubectl get namespaces, gcptoken (cached)",
                round(walls["ours"], 1),
                "ms",
                ratio=ratio,
                ratio_of=f"of {PEER}'s",
                goal=f"<= {KUBECTL_GOAL:g}× {PEER}'s",
                meets=ratio <= KUBECTL_GOAL,
            ),
            Row("kubectl", f"kubectl get namespaces, {PEER}", round(walls["peer"], 1), "ms"),
        ]
    cached, bare = walls["plugin"], walls[BARE]
    to_python = round(cached / bare, 2)
    rows.append(
        Row(
            "kubectl",
            "gcptoken kube-credential alone, cached",
            round(cached, 1),
            "ms",
            ratio=to_python,
            ratio_of=f"of {BARE}",
            goal=f"<= {PYTHON_GOAL:g}× {BARE}",
            meets=to_python <= PYTHON_GOAL,
            notes={BARE: round(bare, 1)},
        )
    )
    if peer is not None:
        alone = walls["peer alone"]
        name = f"{PEER} alone (no cache: a token request)"
        rows.append(
            Row("kubectl", name, round(alone, 1), "ms", notes={"gcptoken's cached answer": round(cached / alone, 2)})
        )
    return rows
