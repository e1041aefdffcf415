"""The kubeconfig ``users:`` entry that runs ``gcptoken kube-credential`` (or a whole kubeconfig
with one cluster and a context using it), in the shape
``gcloud container clusters get-credentials`` writes for gke-gcloud-auth-plugin (exec: apiVersion,
command, args, installHint, provideClusterInfo), plus ``interactiveMode: Never`` (the plugin never
prompts). Every scalar is written as a JSON string (UTF-8, not ASCII-only), which YAML reads as the
same double-quoted string: any path or value (spaces, quotes, colons, ``#``, non-ASCII, emoji,
control characters) is safe."""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
from collections.abc import Sequence

from gcptoken.helpers.kube import V1

__all__ = [
    "INSTALL_HINT",
    "certificate_authority_data",
    "gcptoken_command",
    "https_server",
    "kubeconfig_user",
    "plugin_args",
    "whole_kubeconfig",
]

# What YAML cannot hold unescaped inside quotes (json.dumps already escaped U+0000–U+001F).
_NOT_YAML_PRINTABLE = re.compile("[\x7f-\x9f\u2028\u2029\ud800-\udfff\ufeff\ufffe\uffff]")

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


def _yaml_escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def _quoted(value: str) -> str:
    """A YAML double-quoted scalar, UTF-8 as YAML is: JSON's escapes (\\" \\\\ \\n \\uXXXX) mean the
    same in YAML, but JSON's ASCII-only form writes a character beyond the BMP as a surrogate pair,
    which YAML (kubectl's loader) refuses. Characters YAML may not hold as they are (YAML 1.2
    §5.1: controls, DEL, C1, surrogates, U+FFFE/FFFF; also U+2028/2029 and the BOM, which YAML 1.1
    reads as breaks or a stream mark) are escaped as YAML allows, ``\\xXX`` or ``\\uXXXX``."""
    return _NOT_YAML_PRINTABLE.sub(_yaml_escape, json.dumps(value, ensure_ascii=False))


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


# RFC 7468 textual encoding: a label between BEGIN and END lines, base64 between them.
_PEM_BLOCK = re.compile(rb"-----BEGIN ([A-Z0-9 ]{1,40})-----\r?\n(.*?)-----END \1-----", re.DOTALL)


def certificate_authority_data(text: bytes) -> tuple[str, list[str]]:
    """``certificate-authority-data`` from a CA file: PEM, or the base64 of PEM that GKE's API and
    ``gcloud container clusters describe`` give as masterAuth.clusterCaCertificate. Only the
    CERTIFICATE blocks that parse as X.509 certificates are kept: a bundle that also holds a
    private key never copies the key. Returns the data and what was dropped (block labels);
    ValueError for a file with no certificate."""
    import base64
    import binascii

    from cryptography import x509

    pem = text.strip()
    if b"-----BEGIN " not in pem:
        try:
            pem = base64.b64decode(pem, validate=True).strip()
        except (binascii.Error, ValueError):
            pem = b""
    kept: list[bytes] = []
    dropped: list[str] = []
    for block in _PEM_BLOCK.finditer(pem):
        label = block.group(1).decode()
        if label == "CERTIFICATE":
            try:
                x509.load_pem_x509_certificate(block.group())
                kept.append(block.group())
                continue
            except ValueError:
                label = "CERTIFICATE that does not parse"
        dropped.append(label)
    if not kept:
        raise ValueError("holds no PEM certificate, nor is it the base64 of one (GKE's clusterCaCertificate)")
    return base64.b64encode(b"\n".join(kept) + b"\n").decode(), dropped


def https_server(url: str) -> str:
    """An API server's URL as kubectl needs it: https (any case in, lower case out), a host name or
    IP address (IPv6 in brackets), a port if any in 1..65535, no user info (a password would go
    into the kubeconfig; kubectl authenticates with the token), no query or fragment.
    ValueError naming what is wrong."""
    import ipaddress
    from urllib.parse import urlsplit

    if not url.isprintable() or any(c.isspace() for c in url):
        raise ValueError("has spaces or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port  # ValueError for a port out of range or not a number
    except ValueError as exc:
        raise ValueError(f"is not a URL ({exc})") from None
    if parts.scheme.lower() != "https":
        raise ValueError("must be an https:// URL (kubectl sends tokens over TLS only)")
    if "@" in parts.netloc:
        raise ValueError("has user info (user@ or user:password@): leave it out, kubectl sends the token")
    if parts.query or parts.fragment or url.endswith(("?", "#")):
        raise ValueError("has a query or fragment")
    host = parts.hostname or ""
    if parts.netloc.startswith("["):
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"has a bad IPv6 address [{host[:60]}]") from None
    elif not _HOST_NAME.fullmatch(host):
        raise ValueError("has no valid host name")
    if port == 0 or parts.netloc.endswith(":"):
        raise ValueError("has a bad port")
    return "https" + url[len(parts.scheme) :]


# A DNS name or IPv4 address: letters, digits, hyphens, dots (RFC 1123), at most 253 characters.
_HOST_NAME = re.compile(
    r"(?=.{1,253}\Z)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?"
)


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
