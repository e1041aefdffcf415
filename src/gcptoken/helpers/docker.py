"""``docker-credential-gcptoken``: docker's credential-helper protocol, answered with a Google access
token for Google's registries (and the hosts the user named), from the on-disk cache first.

The protocol (docker/docker-credential-helpers, ``credentials/credentials.go`` and
``client/client.go``): docker runs ``docker-credential-NAME ACTION`` with one argument and reads
stdout. ``get`` takes the server (a host, ``host:port`` or a URL) on stdin and prints
``{"ServerURL","Username","Secret"}`` as Go's ``json.Encoder`` writes it (compact, a newline);
``list`` prints ``{server: username}``; ``version`` one line. Any failure is its message on stdout
and exit 1; the exact message ``credentials not found in native keychain`` means "none here", which
docker takes as no credentials rather than an error. Options come from the environment: docker
passes no options (its one argument is the action).

Where a token goes is decided here and nowhere else: Google's registries and the hosts the user
names in ``$GCPTOKEN_HELPER_HOSTS`` (``helpers.hosts.answers_for``), as gcloud's helper refuses a
registry it does not recognise (``surface/auth/docker_helper.py``). A ``credHelpers`` entry alone
never counts: a repository-shipped ``DOCKER_CONFIG`` or an installer could write one, and docker
follows the realm a registry names (plain ``http://`` too) with the credentials it was given.
"""

from __future__ import annotations

import io
import json
import os
import sys

from gcptoken.cli.interrupts import drop_stdout
from gcptoken.helpers.hosts import HOSTS_ENV, answers_for, host_of

TYPE_CHECKING = False  # not typing's: a cached ``get`` must stay as cheap as Python's start
if TYPE_CHECKING:
    from typing import Any, TextIO

__all__ = ["CONFIG_LIMIT", "CONFIG_NAME", "HELPER_NAME", "NOT_FOUND", "USERNAME", "docker_config_path", "main", "run"]

PROGRAM = "docker-credential-gcptoken"
HELPER_NAME = "gcptoken"  # what credHelpers / credsStore name: docker runs docker-credential-<NAME>
# Artifact Registry and Container Registry take this user name with an OAuth access token as the
# password (https://cloud.google.com/artifact-registry/docs/docker/authentication#token);
# docker-credential-gcr answers the same (credhelper/helper.go, gcrOAuth2Username).
USERNAME = "oauth2accesstoken"
# credentials/error.go: docker matches this text exactly (after trimming) as "no credentials".
NOT_FOUND = "credentials not found in native keychain"
MISSING_SERVER = "no credentials server URL"
CREDENTIALS_ENV = "GCPTOKEN_DOCKER_CREDENTIALS"  # a credential file instead of ADC's
IMPERSONATE_ENV = "GCPTOKEN_DOCKER_IMPERSONATE"  # SA, or A,B,SA as gcloud's --impersonate-service-account
CONFIG_NAME = "config.json"
CONFIG_LIMIT = 4 << 20  # the largest docker config read or written here (docker-config's limit too)
_MAX_INPUT = 64 * 1024  # bufio.Scanner's own limit on one line
# Container Registry's hosts, as docker-credential-gcr lists them (config.DefaultGCRRegistries).
_LISTED = ("gcr.io", "us.gcr.io", "eu.gcr.io", "asia.gcr.io", "marketplace.gcr.io", "staging-k8s.gcr.io")

HELP = f"""\
usage: {PROGRAM} <get|list|store|erase|version>

docker's credential helper: Google access tokens for Artifact Registry (*-docker.pkg.dev) and
Container Registry (gcr.io, *.gcr.io), from the credential Google's libraries would use (ADC), cached
on disk between calls. docker runs it; you do not.

Install: gcptoken docker-config            (gcr.io and its regions, as gcloud's default)
         gcptoken docker-config us-docker.pkg.dev europe-west1-docker.pkg.dev
That adds {{"credHelpers": {{"HOST": "{HELPER_NAME}"}}}} to $DOCKER_CONFIG/config.json (~/.docker).

It answers only for Google's registries and the hosts in $GCPTOKEN_HELPER_HOSTS (comma-separated
host, host:port or *.suffix; set it where docker runs): a credHelpers entry alone is not enough.
Any other registry gets "{NOT_FOUND}", so as docker's
credsStore it never hands a Google token to another registry. Prefer credHelpers: as credsStore
every docker login fails, since store and erase are refused (nothing is stored).

Environment (docker passes no options):
  {CREDENTIALS_ENV}=FILE    a credential file instead of Application Default Credentials
  {IMPERSONATE_ENV}=SA      act as this service account (A,B,SA: through a delegation chain)
"""


def docker_config_path() -> str:
    """docker's config file: ``$DOCKER_CONFIG/config.json``, else ``~/.docker/config.json``."""
    directory = os.environ.get("DOCKER_CONFIG") or os.path.join(os.path.expanduser("~"), ".docker")
    return os.path.join(directory, CONFIG_NAME)


def _docker_config() -> dict[str, Any] | None:
    """docker's config, parsed, or None (missing, unreadable, a symlink, not an object). Read only
    to word a message better: it never decides where a token goes."""
    try:
        fd = os.open(docker_config_path(), os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOFOLLOW", 0))
        with open(fd, "rb") as handle:
            config = json.loads(handle.read(CONFIG_LIMIT))
    except (OSError, ValueError, RecursionError):
        return None
    return config if isinstance(config, dict) else None


def _is_ours(server: str) -> bool:
    if server.lower().startswith("http://"):
        return False  # a token never goes over plain HTTP
    return answers_for(server)


def _unanswered_mapping(server: str) -> str | None:
    """Why a host mapped to this helper in credHelpers gets no token (one line), or None when it is
    not mapped: only then is "not found" something the user can fix. Silent for credsStore, which
    asks about every registry."""
    config = _docker_config()
    helpers = config.get("credHelpers") if config is not None else None
    authority = host_of(server)
    if not authority or not isinstance(helpers, dict) or server.lower().startswith("http://"):
        return None
    if not any(value == HELPER_NAME and host_of(str(key)) == authority for key, value in helpers.items()):
        return None
    return (
        f"{authority} is mapped to {HELPER_NAME} in {docker_config_path()} but is neither a Google registry "
        f"nor in {HOSTS_ENV}: "
        f"no token given (set {HOSTS_ENV}={authority} where docker runs if it should get a Google token)"
    )


def _go_json(value: Any) -> str:
    """What Go's json.Encoder writes: compact, non-ASCII kept, <, >, &, U+2028/9 escaped, a newline."""
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    for char, escaped in (
        ("<", "\\u003c"),
        (">", "\\u003e"),
        ("&", "\\u0026"),
        ("\u2028", "\\u2028"),
        ("\u2029", "\\u2029"),
    ):
        text = text.replace(char, escaped)
    return text + "\n"


class _Refusal(Exception):
    """A protocol error: ``str()`` goes to stdout (docker shows it); ``detail`` to stderr."""

    def __init__(self, message: str, detail: str | None = None) -> None:
        super().__init__(message)
        self.detail = detail


def _server_from(stdin: TextIO) -> str:
    text = stdin.read(_MAX_INPUT + 1)
    if len(text) > _MAX_INPUT:
        raise _Refusal("bufio.Scanner: token too long", "the server URL on stdin is over 64 KiB")
    return "".join(text.splitlines()).strip()  # Get joins the scanned lines, then trims


def _token() -> str:
    from gcptoken.cli.fast import cached_token

    credentials = os.environ.get(CREDENTIALS_ENV, "").strip() or None
    impersonate = os.environ.get(IMPERSONATE_ENV, "").strip() or None
    if impersonate is None:  # what helper_token looks up first, here before its transport loads
        fresh = cached_token("access_token", None, credentials)
        if fresh is not None:
            return str(fresh["value"])
    from gcptoken.helpers.tokens import helper_token
    from gcptoken.http.light_transport import use_light_transport

    use_light_transport()  # one request or two, then exit: http.client, not httpx's import (a miss only)
    try:
        return helper_token("access_token", credentials=credentials, impersonate=impersonate).value
    except Exception as exc:
        from gcptoken.errors import GcpTokenError
        from gcptoken.untrusted import one_line

        if not isinstance(exc, GcpTokenError):
            raise
        message = one_line(" ".join(str(exc).split()), 300)
        raise _Refusal(f"{PROGRAM}: no Google access token: {message}") from None


def _get(stdin: TextIO) -> str:
    server = _server_from(stdin)
    if not server:
        raise _Refusal(MISSING_SERVER)
    if not _is_ours(server):
        raise _Refusal(NOT_FOUND, _unanswered_mapping(server))
    return _go_json({"ServerURL": server, "Username": USERNAME, "Secret": _token()})


def _list() -> str:
    return _go_json({f"https://{host}": USERNAME for host in _LISTED})


def _refuse_store(stdin: TextIO) -> str:
    stdin.read(_MAX_INPUT + 1)  # docker writes the credentials: read them so it never sees a broken pipe
    config = _docker_config() or {}
    if config.get("credsStore") == HELPER_NAME:  # then docker asks this helper to store every login
        how = f'replace "credsStore": "{HELPER_NAME}" in docker\'s config with credHelpers entries for Google\'s hosts'
    else:
        how = "map the registry to another helper or remove it from credHelpers (gcptoken docker-config --remove HOST)"
    raise _Refusal(
        f"{PROGRAM} stores no credentials: it hands out Google access tokens itself (to log in with a password, {how})"
    )


def _refuse_erase(stdin: TextIO) -> str:
    _server_from(stdin)
    raise _Refusal(
        f"{PROGRAM} keeps no credentials to erase "
        "(to stop using it for a registry: gcptoken docker-config --remove HOST)"
    )


def _answer(action: str, stdin: TextIO) -> str:
    if action == "get":
        return _get(stdin)
    if action == "list":
        return _list()
    if action == "store":
        return _refuse_store(stdin)
    if action == "erase":
        return _refuse_erase(stdin)
    if action == "version":
        from gcptoken import __version__

        return f"{PROGRAM} (gcptoken) {__version__}\n"
    safe = action if action.isprintable() and len(action) < 40 else "?"
    raise _Refusal(f"Unknown credential action `{safe}`")


def run(argv: list[str], stdin: TextIO, stdout: TextIO, stderr: TextIO) -> int:
    """One helper call: the answer on ``stdout`` and 0, or the protocol's error form and 1."""
    if argv and argv[0] in ("-h", "--help"):
        stdout.write(HELP)
        return 0
    try:
        if len(argv) != 1:
            raise _Refusal(f"Usage: {PROGRAM} <store|get|erase|list|version>")  # Serve's own words
        answer, code = _answer(argv[0], stdin), 0
    except _Refusal as refusal:
        answer, code = f"{refusal}\n", 1
        if str(refusal) != NOT_FOUND:  # "none here" is an answer, not a failure to report
            stderr.write(f"{PROGRAM}: error: {refusal.detail or str(refusal).removeprefix(PROGRAM + ': ')}\n")
        elif refusal.detail:  # a "none here" the user can fix: say why, once
            stderr.write(f"{PROGRAM}: warning: {refusal.detail}\n")
    except Exception as exc:  # never a traceback where docker parses, nor a half answer
        answer, code = f"{PROGRAM}: internal error ({type(exc).__name__})\n", 1
        stderr.write(answer)
    stdout.write(answer)
    return code


def _stdout_failed(exc: OSError | None) -> int:
    """One stderr line for an answer that could not be written (stdout closed, full, a broken pipe),
    and stdout pointed at /dev/null so the interpreter's last flush cannot print a traceback."""
    reason = "it is closed" if exc is None or exc.errno is None else os.strerror(exc.errno)
    drop_stdout()
    if sys.stderr is not None:
        try:
            sys.stderr.write(f"{PROGRAM}: error: cannot write the answer to stdout ({reason})\n")
            sys.stderr.flush()
        except OSError:
            pass
    return 1


def main() -> int:
    """The console script ``docker-credential-gcptoken``."""
    if sys.stdout is None:  # started with fd 1 closed: nowhere to answer
        return _stdout_failed(None)
    # docker speaks UTF-8 whatever the locale; bytes that are not are replaced, never a crash.
    sys.stdout.reconfigure(encoding="utf-8", errors="replace")  # type: ignore[union-attr]
    stdin = sys.stdin if sys.stdin is not None else io.StringIO("")  # fd 0 closed: nothing to read
    if sys.stdin is not None:
        sys.stdin.reconfigure(encoding="utf-8", errors="replace")  # type: ignore[union-attr]
    stderr = sys.stderr if sys.stderr is not None else io.StringIO()
    try:
        code = run(sys.argv[1:], stdin, sys.stdout, stderr)
        sys.stdout.flush()
    except KeyboardInterrupt:
        return 130
    except OSError as exc:  # stdout full, a broken pipe, a closed descriptor: every action alike
        return _stdout_failed(exc)
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
