"""kubectl's exec credential plugin protocol: which ``ExecCredential`` version kubectl asks for
(``$KUBERNETES_EXEC_INFO``), the JSON answer it parses from stdout, and the cached answer given
before argparse, httpx or cryptography load (``gcptoken.cli.fast`` calls it first).

kubectl runs the plugin with ``KUBERNETES_EXEC_INFO`` holding an ExecCredential whose apiVersion is
the kubeconfig's; the answer must carry the same apiVersion, ``status.token`` and an RFC 3339
``status.expirationTimestamp`` (kubectl keeps the token in memory until then), and is read from
stdout only when the plugin exits 0: on failure, stderr is shown to the user
(https://kubernetes.io/docs/reference/access-authn-authz/authentication/#client-go-credential-plugins;
client-go's plugin/pkg/client/auth/exec/exec.go)."""

from __future__ import annotations

import json
import os
import sys
import time

__all__ = [
    "API_VERSIONS",
    "EXEC_INFO_ENV",
    "KubeExecInfoError",
    "answer_from_cache",
    "exec_credential",
    "requested_api_version",
]

EXEC_INFO_ENV = "KUBERNETES_EXEC_INFO"
V1 = "client.authentication.k8s.io/v1"
V1BETA1 = "client.authentication.k8s.io/v1beta1"
API_VERSIONS = (V1, V1BETA1)
# The options the cached answer understands; any other (--no-cache, -v, --print-kubeconfig-user, …) runs the
# full command line, which still answers from the disk cache when it can.
_FAST_OPTIONS = ("--audience", "--scopes", "--credentials", "--impersonate-service-account", "--timeout")


class KubeExecInfoError(ValueError):
    """``$KUBERNETES_EXEC_INFO`` is not an ExecCredential of a version this plugin speaks."""


def requested_api_version(environ: dict[str, str] | None = None) -> str:
    """The apiVersion kubectl asked for: v1 when it said nothing (run by hand), else its own
    ExecCredential's, which must be one of API_VERSIONS. ``spec.interactive`` is ignored: this
    plugin never reads stdin."""
    text = (os.environ if environ is None else environ).get(EXEC_INFO_ENV, "").strip()
    if not text:
        return V1
    try:
        info = json.loads(text)
    except (ValueError, RecursionError):  # RecursionError: nested deeper than json can parse
        raise KubeExecInfoError(f"${EXEC_INFO_ENV} is not JSON (or is nested too deeply)") from None
    version = info.get("apiVersion") if isinstance(info, dict) else None
    if version not in API_VERSIONS:
        shown = json.dumps(version)[:80] if isinstance(version, str) else "none"
        raise KubeExecInfoError(
            f"${EXEC_INFO_ENV} asks for apiVersion {shown}; gcptoken answers {V1} and {V1BETA1} "
            "(set one of them as the exec apiVersion in your kubeconfig)"
        )
    return str(version)


def rfc3339(epoch: float) -> str:
    """``2026-12-02T11:16:12Z``: UTC, whole seconds (rounded down: never later than the token's)."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(epoch)))


def exec_credential(token: str, expires_at: float, api_version: str) -> str:
    """The ExecCredential kubectl reads from stdout, one JSON line."""
    status = {"token": token, "expirationTimestamp": rfc3339(expires_at)}
    return json.dumps({"apiVersion": api_version, "kind": "ExecCredential", "status": status}) + "\n"


def _fast_options(argv: list[str]) -> dict[str, str] | None:
    """``--name value`` / ``--name=value`` pairs of _FAST_OPTIONS, each once; None for anything else."""
    options: dict[str, str] = {}
    rest = iter(argv)
    for arg in rest:
        name, equals, value = arg.partition("=")
        if name not in _FAST_OPTIONS or name in options:
            return None
        if not equals:
            value = next(rest, "")
        if not value.strip() or value.startswith("-"):
            return None
        options[name] = value
    if "--audience" in options and "--scopes" in options:
        return None  # the full command line says they do not go together
    return options


def answer_from_cache(argv: list[str]) -> int | None:
    """0 after printing an ExecCredential from the disk cache for ``kube-credential ARGV``, or None
    (a miss, an option this path does not handle, any doubt): the full command line must run."""
    if argv[:1] != ["kube-credential"]:
        return None
    options = _fast_options(argv[1:])
    if options is None:
        return None
    try:
        api_version = requested_api_version()
        timeout = float(options.get("--timeout", "10"))
    except (KubeExecInfoError, ValueError):
        return None  # the full command line says what is wrong, in one line
    if not 0 < timeout < float("inf"):
        return None
    from gcptoken.cli.fast import cached_token

    if "--audience" in options:
        kind, subject = "id_token", options["--audience"]
    else:
        scopes = options.get("--scopes", "https://www.googleapis.com/auth/cloud-platform")
        kind, subject = "access_token", " ".join(sorted(scopes.replace(",", " ").split()))
    fresh = cached_token(kind, subject, options.get("--credentials"), options.get("--impersonate-service-account"))
    if fresh is None:
        return None
    sys.stdout.write(exec_credential(fresh["value"], float(fresh["expires_at"]), api_version))
    return 0
