"""The kubeconfig ``users:`` entry that runs ``gcptoken kube-credential``, in the shape
``gcloud container clusters get-credentials`` writes for gke-gcloud-auth-plugin (exec: apiVersion,
command, args, installHint, provideClusterInfo), plus ``interactiveMode: Never`` (the plugin never
prompts). Every scalar is written as a JSON string, which YAML reads as the same double-quoted
string: any path or value (spaces, quotes, colons, ``#``, non-ASCII, control characters) is safe."""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Sequence

from gcptoken.helpers.kube import V1

__all__ = ["INSTALL_HINT", "gcptoken_command", "kubeconfig_user", "plugin_args"]

INSTALL_HINT = (
    "gcptoken is not where this kubeconfig says: pip install gcptoken, then print this entry again with "
    "gcptoken kube-credential --print-kubeconfig-user"
)


def gcptoken_command() -> str:
    """An absolute path to the running gcptoken (kubectl looks a bare name up on its own PATH,
    which may not hold this virtual environment), else the one on PATH, else the bare name."""
    running = sys.argv[0]
    if os.path.basename(running) == "gcptoken" and os.path.isfile(running):
        return os.path.abspath(running)
    found = shutil.which("gcptoken")
    return os.path.abspath(found) if found else "gcptoken"


def plugin_args(
    *,
    credentials: str | None,
    audience: str | None,
    scopes: str | None,
    impersonate: str | None,
    timeout: float | None,
    no_cache: bool,
) -> list[str]:
    """``kube-credential`` and the options that reproduce these choices; a credential file's path
    made absolute (kubectl starts the plugin in whatever folder kubectl itself runs in)."""
    args = ["kube-credential"]
    if credentials is not None:
        args += ["--credentials", os.path.abspath(credentials)]
    if audience is not None:
        args += ["--audience", audience]
    if scopes is not None:
        args += ["--scopes", scopes]
    if impersonate is not None:
        args += ["--impersonate-service-account", impersonate]
    if timeout is not None:
        args += ["--timeout", f"{timeout:g}"]
    if no_cache:
        args.append("--no-cache")
    return args


def _quoted(value: str) -> str:
    return json.dumps(value)  # a YAML double-quoted scalar: \" \\ \n \uXXXX mean the same in YAML


def kubeconfig_user(name: str, command: str, args: Sequence[str]) -> str:
    """The ``users:`` stanza to paste into a kubeconfig (or merge with ``kubectl config``)."""
    lines = [
        "users:",
        f"- name: {_quoted(name)}",
        "  user:",
        "    exec:",
        f"      apiVersion: {_quoted(V1)}",
        f"      command: {_quoted(command)}",
        "      args:",
        *(f"      - {_quoted(arg)}" for arg in args),
        f"      installHint: {_quoted(INSTALL_HINT)}",
        '      interactiveMode: "Never"',
        "      provideClusterInfo: false",
    ]
    return "\n".join(lines) + "\n"
