"""Argument parsing and dispatch. Command modules are imported only when their command runs,
so ``gcptoken --help`` and cached paths never pay for httpx or cryptography."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence

from gcptoken.cli.docker_config import add_docker_config
from gcptoken.cli.help_examples import add_examples
from gcptoken.cli.interrupts import Terminated, stopped
from gcptoken.cli.key_parser import add_key_command
from gcptoken.cli.keyring_command import add_keyring_command
from gcptoken.cli.kube import add_kube_credential
from gcptoken.cli.parser_kit import (
    EXIT_USAGE,
    AsWritten,
    HelpFormatter,
    Parser,
    after_dashes,
    credential_options,
    credential_path,
    finite,
    scopes,
    seconds,
    verbose_option,
)
from gcptoken.cli.pubsub_emulator import add_pubsub_emulator
from gcptoken.cli.run_flags import run_options, serverless_option
from gcptoken.cli.send_parser import add_send_command
from gcptoken.cli.server_flags import METADATA_EPILOG, PLATFORM_EPILOG, guard_options, platform_option
from gcptoken.cli.sign_parser import add_sign_commands

__all__ = ["EXIT_FAILURE", "EXIT_INVALID", "EXIT_OK", "build_parser", "main"]

EXIT_OK = 0
EXIT_INVALID = 1  # token invalid, or the request was refused
EXIT_FAILURE = 3

FORMATS = ("token", "json", "header", "headers", "claims")  # headers: {"Authorization": …}, for headers commands
_CLOUD = "https://www.googleapis.com/auth/"


# Every local user can read a process's argv (/proc/PID/cmdline).
ARGV_NOTE = "prefer - or pasting: other users can read a token given on the command line"


def build_parser() -> argparse.ArgumentParser:
    from gcptoken import __version__

    parser = Parser(
        prog="gcptoken",
        description="Google Cloud ID tokens (and access tokens) from any credential; verify them; emulate Google.",
        formatter_class=HelpFormatter,
        epilog="'gcptoken COMMAND --help' shows a command's options and examples.",
    )
    parser.add_argument("-V", "--version", action="version", version=f"gcptoken {__version__}")
    verbose_option(parser, False)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def command(name: str, handler: str, help: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help, description=help, formatter_class=HelpFormatter)
        sub.set_defaults(handler=handler)
        verbose_option(sub, argparse.SUPPRESS)  # -v after the command too; absent, the top level's stands
        return sub

    id_ = command("id", "gcptoken.cli.tokens:run_id", "print an ID token for an audience")
    id_.add_argument("audience_arg", nargs="?", metavar="AUDIENCE", help="e.g. https://SERVICE.a.run.app")
    id_.add_argument("--audience", help="the same as AUDIENCE")
    id_.add_argument("--format", choices=FORMATS, default="token", help="output")
    id_.add_argument(
        "--token-format", choices=("standard", "full"), help="metadata server only: full adds email and instance claims"
    )
    id_.add_argument("--include-license", action="store_true", help="metadata server only, with --token-format full")
    id_.add_argument("--include-email", action="store_true", help="impersonation only: add email claims")
    serverless_option(id_)  # for --format header/headers
    credential_options(id_)

    access = command("access", "gcptoken.cli.tokens:run_access", "print an OAuth access token")
    access.add_argument("--scopes", type=scopes, help="comma-separated scopes (default: cloud-platform)")
    access.add_argument("--format", choices=("token", "json", "header", "headers"), default="token", help="output")
    access.add_argument(
        "--lifetime", type=int, metavar="SECONDS", help="impersonation only: 1-43200 (over 3600 needs the org policy)"
    )
    access.add_argument("--subject", metavar="USER", help="domain-wide delegation: a token for this Workspace user")
    credential_options(access)

    jwt = command("jwt", "gcptoken.cli.tokens:run_jwt", "print a self-signed JWT from a service-account key")
    jwt.add_argument("--audience", help="the API, e.g. https://SERVICE.googleapis.com/")
    jwt.add_argument("--scopes", type=scopes, help="comma-separated scopes instead of an audience")
    jwt.add_argument("--lifetime", dest="jwt_lifetime", type=int, default=3600, metavar="SECONDS", help="1-3600")
    jwt.add_argument("--format", choices=FORMATS, default="token", help="output")
    credential_options(jwt, source=False, impersonate=False, timeout=False, no_cache=False)

    call = command("call", "gcptoken.cli.call:run_call", "call a private service with an ID token (no curl needed)")
    call.add_argument(
        "target",
        nargs="+",
        metavar=AsWritten("[METHOD] URL"),
        help="e.g. POST https://SERVICE.a.run.app/path (GET, or POST with --data, by default)",
    )
    call.gather_into = "target"  # type: ignore[attr-defined]  # METHOD and URL may sit around options
    call.add_argument("--data", help="request body; @FILE reads a file, - reads stdin")
    call.add_argument("--header", "-H", action="append", default=[], help="'Name: value' (repeatable)")
    call.add_argument("--audience", help="instead of the one derived from the URL")
    serverless_option(call)
    credential_options(call, no_cache=False)

    curl = command(
        "curl",
        "gcptoken.cli.call:run_curl",
        "run curl with an ID token for the URL's service; everything after the first -- goes to curl untouched",
    )
    curl.add_argument("url", metavar="URL")
    after_dashes(curl, "curl_args", "CURL_ARGS", "curl's own arguments, after the first --, passed on untouched")
    curl.add_argument("--audience", help="instead of the one derived from the URL")
    serverless_option(curl)
    credential_options(curl, no_cache=False)

    add_send_command(command)
    add_sign_commands(command)
    add_key_command(command)

    whoami = command("whoami", "gcptoken.cli.whoami:run_whoami", "show which credential would be used, from where, why")
    credential_options(whoami, no_cache=False)
    whoami.add_argument("--format", choices=("text", "json"), default="text", help="output")

    decode = command("decode", "gcptoken.cli.inspect:run_decode", "show a JWT's header and claims, unverified")
    decode.add_argument("token", nargs="?", default="-", metavar="TOKEN", help="the token, or - for stdin")

    verify = command("verify", "gcptoken.cli.inspect:run_verify", "verify an ID token; exit 1 when invalid")
    verify.add_argument(
        "token", nargs="?", default="-", metavar="TOKEN", help=f"the token, or - for stdin (default; {ARGV_NOTE})"
    )
    verify.add_argument(
        "--audience", action="append", required=True, help="accepted audience (repeatable; Firebase: the project ID)"
    )
    verify.add_argument(
        "--preset",
        choices=("google", "iap", "firebase"),
        help="who issued it: Google ID token (default), IAP's signed header, Firebase Auth ID token",
    )
    verify.add_argument(
        "--service-account",
        metavar="EMAIL",
        help="a JWT this service account signed (self-signed, IAM signJwt): its published keys, iss = sub = EMAIL",
    )
    verify.add_argument(
        "--caller",
        action="append",
        metavar="SA_EMAIL",
        help="a call Google's products made as this service account (Pub/Sub push, Cloud Tasks, Scheduler, "
        "Eventarc, Workflows): email one of these, email_verified (repeatable)",
    )
    verify.add_argument(
        "--issuer",
        action="append",
        metavar="URL",
        help="an OpenID Connect issuer, its keys found by discovery; with --certs: accepted issuer (repeatable)",
    )
    verify.add_argument("--certs", metavar="URL_OR_FILE", help="keys: certs URL or file (v1, v3/JWKS format)")
    verify.add_argument("--email", action="append", metavar="EMAIL", help="allowed email (repeatable)")
    verify.add_argument("--hd", action="append", metavar="DOMAIN", help="allowed hosted domain (repeatable)")
    verify.add_argument("--subject", action="append", metavar="SUB", help="allowed subject (repeatable)")
    verify.add_argument("--require-email-verified", action="store_true", help="email_verified must be true")
    verify.add_argument("--max-age", type=seconds, metavar="SECONDS", help="refuse tokens issued longer ago")
    verify.add_argument("--now", type=finite, metavar="EPOCH_SECONDS", help="check validity at this moment")
    verify.add_argument(
        "--clock-skew", type=finite, metavar="SECONDS", help="allowed (default: the preset's, 60; IAP 30)"
    )

    inspect = command(
        "inspect", "gcptoken.cli.inspector:run_inspect", "a private token inspector in the browser (local)"
    )
    inspect.add_argument(
        "token", nargs="?", default=None, metavar="TOKEN", help=f"shown at once; - reads stdin ({ARGV_NOTE})"
    )
    inspect.add_argument("--port", type=int, default=0, help="port (0 picks a free one)")
    inspect.add_argument(
        "--no-browser", action="store_true", help="print the one-time URL only (it works once, in one browser)"
    )

    info = command("info", "gcptoken.cli.inspect:run_info", "ask Google's tokeninfo about a token")
    info.add_argument("token", nargs="?", default="-", metavar="TOKEN", help="the token, or - for stdin")
    info.add_argument("--timeout", type=seconds, default=10.0, metavar="SECONDS", help="per request")

    emulator = command(
        "emulator", "gcptoken.cli.serve:run_emulator", "run the local emulator of Google's token service"
    )
    emulator.add_argument("--host", default="127.0.0.1", help="address to listen on (others: see the warning)")
    guard_options(emulator, peers=False)
    emulator.add_argument(
        "--allow-admin",
        action="append",
        metavar="CIDR",
        help="also let these clients use the admin API and console (default: loopback only; repeatable)",
    )
    emulator.add_argument("--port", type=int, default=8089, help="port (0 picks a free one)")
    platform_option(emulator)
    emulator.epilog = PLATFORM_EPILOG
    emulator.add_argument("--state-dir", metavar="DIR", help="write credential files and env here; keep state")
    emulator.add_argument(
        "--mtls-port",
        type=int,
        metavar="PORT",
        help="also serve over TLS requiring client certificates (X.509 federation; 0 picks a free port; "
        "on by default with --state-dir, -1 turns it off)",
    )
    emulator.add_argument(
        "--tls-port",
        type=int,
        metavar="PORT",
        help="also serve over HTTPS, no client certificate (for kubectl, docker, pip and uv; 0 picks a free port; "
        "the CA: --state-dir's ca.pem)",
    )
    run_options(emulator)

    add_pubsub_emulator(command)
    add_kube_credential(command)
    add_keyring_command(command)

    login = command("login", "gcptoken.cli.login:run_login", "sign in as a person; write an authorized_user file")
    login.add_argument("--client-id-file", metavar="FILE", help="the Desktop app OAuth client JSON from the console")
    login.add_argument(
        "--scopes",
        type=scopes,
        metavar="S1,S2",
        help="scopes to ask for (default: openid, email, cloud-platform in a browser; openid, email, profile with "
        "--device, all Google's device flow allows: no cloud-platform, so no access tokens)",
    )
    login.add_argument("--output", metavar="FILE", help="where to write (default: gcloud's ADC file)")
    login.add_argument("--force", action="store_true", help="replace an existing file for another account")
    login.add_argument("--port", type=int, metavar="PORT", help="loopback port for the redirect (default: a free one)")
    login.add_argument(
        "--no-browser",
        action="store_true",
        help="print Google's sign-in URL to open in any browser, here or on another machine, and accept the "
        "address it ends on pasted back (otherwise the browser is opened on a one-time loopback link, not on "
        "that URL: other users can read a browser's command line)",
    )
    login.add_argument("--device", action="store_true", help="the device flow: a code to enter on any device")
    wait_help = "how long to wait for the sign-in (default: 300 in a browser; with --device, until the code expires)"
    login.add_argument("--wait", type=seconds, metavar="SECONDS", help=wait_help)
    login.add_argument("--timeout", type=seconds, default=10.0, metavar="SECONDS", help="per request")

    logout = command(
        "logout", "gcptoken.cli.login:run_logout", "revoke a signed-in user's refresh token; remove the file"
    )
    logout.add_argument(
        "--credentials",
        type=credential_path,
        metavar="FILE",
        help="the authorized_user file (default: gcloud's ADC file)",
    )
    logout.add_argument("--timeout", type=seconds, default=10.0, metavar="SECONDS", help="per request")

    metadata = command(
        "metadata-server",
        "gcptoken.cli.bridges:run_metadata_server",
        "serve the GCE metadata API from a real credential, for apps and containers in any language",
    )
    metadata.epilog = METADATA_EPILOG
    credential_options(metadata, no_cache=False)
    metadata.add_argument("--host", default="127.0.0.1", help="address to listen on (others: see the warning)")
    metadata.add_argument("--port", type=int, default=0, help="port (0 picks a free one)")
    guard_options(metadata)
    metadata.add_argument("--project", metavar="ID", help="project id (default: the credential's)")
    metadata.add_argument("--project-number", metavar="N", help="project number (default: from Resource Manager)")
    metadata.add_argument("--email", help="the service account email to report (default: the credential's)")
    metadata.add_argument("--zone", default="us-central1-a", help="instance zone")
    metadata.add_argument("--instance-name", metavar="NAME", help="instance name (default: this host's)")
    metadata.add_argument(
        "--scopes", type=scopes, default=f"{_CLOUD}cloud-platform", metavar="S1,S2", help="instance scopes"
    )
    metadata.add_argument("--attribute", action="append", metavar="KEY=VALUE", help="instance attribute (repeatable)")
    platform_option(metadata)

    proxy = command(
        "proxy", "gcptoken.cli.bridges:run_proxy", "a local reverse proxy that adds an ID token to every request"
    )
    proxy.add_argument("url", metavar="URL", help="the private service (Cloud Run URL, or an app behind IAP)")
    credential_options(proxy, no_cache=False)
    proxy.add_argument("--audience", help="the ID token's audience (default: URL's origin; IAP: its OAuth client id)")
    serverless_option(proxy)
    proxy.add_argument("--host", default="127.0.0.1", help="address to listen on (others: see the warning)")
    proxy.add_argument("--port", type=int, default=0, help="port (0 picks a free one)")
    proxy.add_argument(
        "--http2",
        action="store_true",
        help="HTTP/1.1 clients' requests too go to the service over HTTP/2 (HTTP/2 and gRPC clients' always do)",
    )
    guard_options(proxy, origins=True)

    add_docker_config(command)

    cache = command("cache", "gcptoken.cli.cache:run_cache", "manage the on-disk token cache")
    cache.add_argument("action", choices=("clear", "path"), help="clear: remove cached tokens; path: print where")

    command("demo", "gcptoken.cli.demo:run_demo", "show the whole flow against an embedded emulator")

    completion = command("completion", "gcptoken.cli.completion:run_completion", "print a shell completion script")
    completion.add_argument("shell", choices=("bash", "zsh", "fish"), help="the shell to complete gcptoken in")

    add_examples(commands.choices)  # every command's --help ends with examples
    return parser


def _handler(path: str) -> Callable[[argparse.Namespace], int]:
    module_name, function = path.split(":")
    handler: Callable[[argparse.Namespace], int] = getattr(importlib.import_module(module_name), function)
    return handler


def _exit_code(exc: Exception) -> int:
    from gcptoken.errors import InvalidArgumentError, RefusedError, TokenRequestError, VerificationError

    if isinstance(exc, InvalidArgumentError):
        return EXIT_USAGE
    if isinstance(exc, VerificationError | RefusedError):
        return EXIT_INVALID
    if isinstance(exc, TokenRequestError) and exc.status is not None and 400 <= exc.status < 500:
        # 429 means "unavailable for now", as a 503 does: a failure to retry later, not a refusal.
        return EXIT_FAILURE if exc.status in (408, 429) else EXIT_INVALID
    return EXIT_FAILURE


def _split_curl(argv: Sequence[str]) -> tuple[list[str], list[str] | None]:
    """``curl`` takes everything after its first ``--`` untouched (later ``--`` included)."""
    argv = list(argv)
    try:
        command_at = next(i for i, arg in enumerate(argv) if not arg.startswith("-"))
    except StopIteration:
        return argv, None
    if argv[command_at] != "curl":
        return argv, None
    if "--" not in argv[command_at:]:
        return argv, []
    cut = argv.index("--", command_at)
    return argv[:cut], argv[cut + 1 :]


def _run(argv: Sequence[str]) -> int:
    from gcptoken.http.light_transport import use_light_transport

    use_light_transport()  # a one-shot process: http.client, not httpx's import
    ours, curl_args = _split_curl(argv)
    args = build_parser().parse_args(ours)
    if curl_args is not None:
        args.curl_args = curl_args
    if not args.verbose:
        return _dispatch(args)
    import logging  # only for -v: the one-shot path does not pay for it

    logger = logging.getLogger("gcptoken")
    handler = logging.StreamHandler(sys.stderr)  # today's stderr, for this command only
    handler.setFormatter(logging.Formatter("gcptoken: %(message)s"))
    logger.addHandler(handler)
    level = logger.level
    logger.setLevel(logging.DEBUG)
    try:
        return _dispatch(args)
    finally:  # main() called in-process (tests, embedding) leaves the logger as it found it
        logger.removeHandler(handler)
        logger.setLevel(level)


def _dispatch(args: argparse.Namespace) -> int:
    from gcptoken.cli.io import error_line
    from gcptoken.errors import GcpTokenError

    try:
        return _handler(args.handler)(args)
    except GcpTokenError as exc:
        print(error_line(exc), file=sys.stderr)
        return _exit_code(exc)


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return _run(sys.argv[1:] if argv is None else argv)
    except (KeyboardInterrupt, Terminated) as exc:  # Ctrl-C: 130; SIGTERM (fast.main's handler): 143
        return stopped(exc)
    except BrokenPipeError:
        return EXIT_FAILURE


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
