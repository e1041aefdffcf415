"""``gcptoken kube-credential``: kubectl's exec credential plugin (an access token for GKE, or an
ID token with --audience for clusters that trust Google as an OIDC issuer), and the kubeconfig
``users:`` entry that runs it. A cached answer never gets here (``helpers.kube.answer_from_cache``)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from gcptoken.cli.parser_kit import credential_options, scopes

__all__ = ["SET_UP_LINE", "add_kube_credential", "run_kube_credential"]

# kubectl's own way to add the user (kubectl config set-credentials --help), then use it in the
# current context; the README and a test run this same line.
SET_UP_LINE = (
    "kubectl config set-credentials gcptoken --exec-api-version=client.authentication.k8s.io/v1 "
    "--exec-command=gcptoken --exec-arg=kube-credential --exec-interactive-mode=Never "
    "&& kubectl config set-context --current --user=gcptoken"
)
EPILOG = f"""\
set up (the current kubectl context then gets its tokens from here; gcptoken on kubectl's PATH):
  {SET_UP_LINE}

kubectl runs this for every command (it keeps the token in memory for that command only): a cached
token is printed without loading any network code, a new one is fetched a few minutes before the
cached one expires. kubectl's KUBERNETES_EXEC_INFO picks the answer's apiVersion (v1, v1beta1).
On failure: one line on stderr (kubectl shows it), nothing on stdout, exit non-zero.
A token your cluster refuses while still valid (a deleted key, say) is not fetched again until it
expires: run `gcptoken cache clear`, or add --no-cache to the kubeconfig's args."""


def add_kube_credential(command: Callable[[str, str, str], argparse.ArgumentParser]) -> None:
    kube = command(
        "kube-credential",
        "gcptoken.cli.kube:run_kube_credential",
        "kubectl's exec credential plugin: a Google token for GKE (no gcloud needed)",
    )
    kube.add_argument(
        "--audience", help="an ID token for this audience instead (API servers that trust Google as OIDC issuer)"
    )
    kube.add_argument(
        "--scopes", type=scopes, help="the access token's scopes, comma-separated (default: cloud-platform)"
    )
    credential_options(kube, source=False)
    kube.add_argument(
        "--print-kubeconfig-user",
        action="store_true",
        help="print the kubeconfig users: entry that runs this command (by its absolute path) with these "
        "options, and exit",
    )
    kube.add_argument(
        "--print-kubeconfig",
        action="store_true",
        help="print a whole kubeconfig: the cluster at --server, its CA, a context using that entry (current)",
    )
    kube.add_argument("--server", metavar="URL", help="with --print-kubeconfig: the API server, https://…")
    kube.add_argument(
        "--certificate-authority",
        metavar="FILE",
        help="with --print-kubeconfig: its CA, PEM or base64 of PEM (GKE's masterAuth.clusterCaCertificate); "
        "only its certificates are copied",
    )
    kube.add_argument(
        "--cluster-name",
        default="gke",
        metavar="NAME",
        help="with --print-kubeconfig: the cluster's and context's name",
    )
    kube.add_argument(
        "--user-name", default="gcptoken", metavar="NAME", help="the users: entry's name, with --print-kubeconfig…"
    )
    kube.epilog = EPILOG


def run_kube_credential(args: argparse.Namespace) -> int:
    from gcptoken.cli.tokens import checked_chain
    from gcptoken.errors import InvalidArgumentError

    if args.audience is not None and args.scopes is not None:
        raise InvalidArgumentError("--audience (an ID token) and --scopes (an access token) exclude each other")
    if args.audience is not None and not args.audience.strip():
        raise InvalidArgumentError("--audience is empty; name the audience your API server expects")
    if args.audience is not None:
        from gcptoken.checks import audience

        audience(args.audience, "--audience")  # the library's rule: printable, a valid URL if one
    impersonate = checked_chain(args)
    if args.print_kubeconfig_user or args.print_kubeconfig:
        return _print_user(args, impersonate)
    for name in ("server", "certificate_authority"):
        if getattr(args, name) is not None:
            raise InvalidArgumentError(f"--{name.replace('_', '-')} goes with --print-kubeconfig")
    from gcptoken.helpers.kube import KubeExecInfoError, exec_credential, requested_api_version
    from gcptoken.helpers.tokens import helper_token

    try:
        api_version = requested_api_version()
    except KubeExecInfoError as exc:
        raise InvalidArgumentError(str(exc)) from None
    kind, subject = ("id_token", args.audience) if args.audience is not None else ("access_token", args.scopes)
    token = helper_token(
        kind,
        subject,
        credentials=args.credentials,
        impersonate=impersonate,
        timeout=args.timeout,
        use_cache=not args.no_cache,
    )
    sys.stdout.write(exec_credential(token.value, token.expires_at, api_version))  # all at once, or nothing
    return 0


def _print_user(args: argparse.Namespace, impersonate: str | None) -> int:
    from gcptoken.errors import InvalidArgumentError
    from gcptoken.helpers.kubeconfig import gcptoken_command, kubeconfig_user, plugin_args, whole_kubeconfig

    chosen = plugin_args(
        credentials=args.credentials,
        audience=args.audience,
        scopes=args.scopes,
        impersonate=impersonate,
        timeout=None if args.timeout == 10.0 else args.timeout,
        no_cache=args.no_cache,
    )
    for value in (args.user_name, args.cluster_name, *chosen):
        if not value or not value.isprintable():  # spaces are fine; newlines, tabs, ESC are not
            raise InvalidArgumentError(f"{value[:40]!r} cannot go into a kubeconfig: use printable text")
    if not args.print_kubeconfig:
        _write_utf8(kubeconfig_user(args.user_name, gcptoken_command(), chosen))
        return 0
    server, ca_data = _cluster(args)
    _write_utf8(whole_kubeconfig(args.cluster_name, server, ca_data, args.user_name, gcptoken_command(), chosen))
    return 0


def _write_utf8(text: str) -> None:
    """YAML is UTF-8 whatever the locale's encoding (a path may hold any character)."""
    sys.stdout.flush()
    sys.stdout.buffer.write(text.encode("utf-8"))


def _cluster(args: argparse.Namespace) -> tuple[str, str]:
    """--server and --certificate-authority, checked: kubectl sends a token over TLS only."""
    from gcptoken.errors import InvalidArgumentError
    from gcptoken.helpers.kubeconfig import certificate_authority_data, https_server
    from gcptoken.private_files import UnreadableFile, read_small_file

    if args.print_kubeconfig_user:
        raise InvalidArgumentError("--print-kubeconfig prints the users: entry too: give one of the two")
    server, authority = args.server, args.certificate_authority
    if server is None or authority is None:
        raise InvalidArgumentError("--print-kubeconfig needs --server https://… and --certificate-authority FILE")
    try:
        server = https_server(server)
    except ValueError as exc:  # the URL itself is not shown: it may hold a password
        raise InvalidArgumentError(f"--server {exc}") from None
    try:
        ca_data, dropped = certificate_authority_data(read_small_file(authority))
    except (OSError, UnreadableFile) as exc:
        problem = str(exc) if isinstance(exc, UnreadableFile) else (exc.strerror or "cannot be read")
        raise InvalidArgumentError(f"--certificate-authority {authority[:200]}: {problem}") from None
    except ValueError as exc:
        raise InvalidArgumentError(f"--certificate-authority {authority[:200]} {exc}") from None
    if dropped:
        sys.stderr.write(
            f"gcptoken: note: --certificate-authority: kept only its certificates, dropped {', '.join(dropped)}\n"
        )
    return server, ca_data
