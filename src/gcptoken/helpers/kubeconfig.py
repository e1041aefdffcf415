"""The kubeconfig ``users:`` entry that runs ``gcptoken kube-credential`` (or a whole kubeconfig
with one cluster and a context using it), in the shape
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

__all__ = [
    "INSTALL_HINT",
    "certificate_authority_data",
    "gcptoken_command",
    "kubeconfig_user",
    "plugin_args",
    "whole_kubeconfig",
]

INSTALL_HINT = (
    "gcptoken is not installed, or not on kubectl's PATH: pip install gcptoken, then print this entry again with "
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


def certificate_authority_data(text: bytes) -> str:
    """``certificate-authority-data`` from a CA file: PEM, or the base64 of PEM that GKE's API and
    ``gcloud container clusters describe`` give as masterAuth.clusterCaCertificate. ValueError
    for anything else."""
    import base64
    import binascii

    pem = text.strip()
    if not pem.startswith(b"-----BEGIN CERTIFICATE-----"):
        try:
            pem = base64.b64decode(pem, validate=True).strip()
        except (binascii.Error, ValueError):
            pem = b""
    if not pem.startswith(b"-----BEGIN CERTIFICATE-----") or not pem.endswith(b"-----END CERTIFICATE-----"):
        raise ValueError("is not a PEM certificate, nor the base64 of one (GKE's clusterCaCertificate)")
    return base64.b64encode(pem + b"\n").decode()


def whole_kubeconfig(cluster: str, server: str, ca_data: str, user: str, command: str, args: Sequence[str]) -> str:
    """A kubeconfig with one cluster at ``server``, one context of the same name for it and the
    ``user`` that runs ``command ARGS`` (kubeconfig_user's), that context current."""
    lines = [
        "apiVersion: v1",
        "kind: Config",
        "clusters:",
        f"- name: {_quoted(cluster)}",
        "  cluster:",
        f"    server: {_quoted(server)}",
        f"    certificate-authority-data: {_quoted(ca_data)}",
        "contexts:",
        f"- name: {_quoted(cluster)}",
        "  context:",
        f"    cluster: {_quoted(cluster)}",
        f"    user: {_quoted(user)}",
        f"current-context: {_quoted(cluster)}",
    ]
    return "\n".join(lines) + "\n" + kubeconfig_user(user, command, args)
