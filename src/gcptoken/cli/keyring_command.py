"""``gcptoken keyring``: the keyring backend pip and uv ask for Artifact Registry tokens — its
one-line installs in --help, and ``check URL``: would pip or uv get a token for that index?"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gcptoken.helpers.keyring_check import Finding

__all__ = ["add_keyring_command", "run_keyring"]

EPILOG = """\
gcptoken is a keyring backend (entry point keyring.backends: gcptoken): pip and uv ask keyring for
an index's credentials, and for an https:// index on *.pkg.dev, gcr.io, *.gcr.io or a host in
GCPTOKEN_HELPER_HOSTS it answers oauth2accesstoken and an access token from the credential ADC finds.
install it where keyring runs:
  pip install 'gcptoken[keyring]'                      # pip --keyring-provider import: pip's environment
  uv tool install keyring --with 'gcptoken[keyring]'   # uv, pip --keyring-provider subprocess: keyring on PATH
the index URL, as you write it:
  --index-url https://LOCATION-python.pkg.dev/PROJECT/REPOSITORY/simple/                  (pip, import)
  --index-url https://oauth2accesstoken@LOCATION-python.pkg.dev/PROJECT/REPOSITORY/simple/ (subprocess, uv)
never http:// nor a bare host: those get nothing.
environment: GCPTOKEN_HELPER_HOSTS (host, host:port or *.suffix, comma-separated: more hosts to
answer for), GCPTOKEN_KEYRING_TIMEOUT (seconds a lookup may take, default 9).
check: exit 0 when pip or uv would get a token for URL, 1 when not (a line per finding), 2 for usage."""


def add_keyring_command(command: Callable[[str, str, str], argparse.ArgumentParser]) -> None:
    parser = command(
        "keyring",
        "gcptoken.cli.keyring_command:run_keyring",
        "pip's and uv's keyring backend for Artifact Registry: how to install it; check an index URL",
    )
    parser.epilog = EPILOG
    parser.add_argument("action", choices=("check",), help="check: would pip and uv get a token for URL")
    parser.add_argument("url", metavar="URL", help="the index URL, as given to pip or uv")


def run_keyring(args: argparse.Namespace) -> int:
    from gcptoken.errors import InvalidArgumentError
    from gcptoken.helpers import keyring_check as check

    if not args.url.strip() or not args.url.isprintable():
        raise InvalidArgumentError("URL must be printable text, e.g. https://LOCATION-python.pkg.dev/P/R/simple/")
    target = check.url_finding(args.url)
    findings = [target]
    user = check.user_finding(args.url)
    if user is not None:
        findings.append(user)
    here = check.keyring_here()
    on_path = check.keyring_on_path()
    findings += [*here, on_path]
    _show(findings)  # what is known so far, before a token fetch that may take seconds
    providers = any(finding.ok for finding in [*here, on_path])
    if target.ok and providers and not (user and user.ok is False):
        token = check.token_for(_lookup_timeout())
        _show([token])
        return 0 if token.ok else 1
    return 1


def _show(findings: list[Finding]) -> None:
    marks = {True: "ok", False: "no", None: "--"}
    sys.stdout.write("".join(f"[{marks[finding.ok]}] {finding.text}\n" for finding in findings))
    sys.stdout.flush()


def _lookup_timeout() -> float:
    """The backend's own per-request timeout ($GCPTOKEN_KEYRING_TIMEOUT), so the check waits as pip would."""
    try:
        from gcptoken.helpers.keyring_backend import _timeout
    except ImportError:  # no keyring here: the subprocess provider's keyring reads the same variable
        return 3.0
    return _timeout()
