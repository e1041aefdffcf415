"""``gcptoken call`` and ``gcptoken curl``: call a private service with an ID token."""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from types import FrameType

from gcptoken import checks
from gcptoken.cli.interrupts import Terminated
from gcptoken.cli.run_flags import token_header
from gcptoken.cli.tokens import checked_audience, credentials_for
from gcptoken.endpoints import safe_url
from gcptoken.errors import GcpTokenError, InvalidArgumentError
from gcptoken.integrations.audience import audience_for
from gcptoken.keys.reference import without_pins
from gcptoken.private_files import file_error
from gcptoken.untrusted import one_line

__all__ = ["request_body", "run_call", "run_curl"]

_METHOD = re.compile(r"[A-Za-z]{1,20}")
# RFC 9110's token characters: what a header name may hold.
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]{1,256}")


def _method_and_url(args: argparse.Namespace) -> tuple[str, str]:
    if len(args.target) == 1:
        method, url = ("POST" if args.data is not None else "GET"), args.target[0]
    elif len(args.target) == 2:
        method, url = args.target
        if not _METHOD.fullmatch(method):
            raise InvalidArgumentError(
                f"give [METHOD] URL: {method[:40]!r} is not an HTTP method (two URLs? call one at a time)"
            )
        method = method.upper()
    else:
        raise InvalidArgumentError("give [METHOD] URL, e.g. gcptoken call POST https://SERVICE.a.run.app/path")
    return method, checks.http_url(url, user_info=False)


def _headers(raw: list[str], token_header: str = "Authorization") -> dict[str, str]:
    headers = {}
    for header in raw:
        name, separator, value = header.partition(":")
        name, value = name.strip(), value.strip()
        if not separator or not _HEADER_NAME.fullmatch(name):
            raise InvalidArgumentError(f"--header must be 'Name: value' with an ASCII name, not {header[:60]!r}")
        if not value.isascii() or not value.isprintable():
            raise InvalidArgumentError(f"--header {name}: the value must be printable ASCII")
        if name.lower() == token_header.lower():
            raise InvalidArgumentError(
                f"--header {token_header}: gcptoken sets it; with --serverless-header, Authorization is yours"
            )
        headers[name] = value
    return headers


def request_body(data: str | None) -> bytes | None:
    """``--data``: the text, ``@FILE``'s bytes or stdin's for ``-``; None when absent."""
    if data is None:
        return None
    if data == "-":
        return sys.stdin.buffer.read()
    if data.startswith("@"):
        try:
            with open(data[1:], "rb") as handle:  # any file, a pipe too: a body is no credential
                return handle.read()
        except OSError as exc:
            raise file_error(data[1:], "--data file", exc, InvalidArgumentError) from None
    return data.encode("utf-8")


def _audience(args: argparse.Namespace, url: str) -> str:
    return checked_audience(args.audience, "--audience") if args.audience is not None else audience_for(url)


def run_call(args: argparse.Namespace) -> int:
    method, url = _method_and_url(args)  # everything is checked before a token is minted
    header = token_header(args)
    headers = _headers(args.header, header)
    audience = _audience(args, url)
    body = request_body(args.data)
    import httpx

    from gcptoken.http.failures import network_failure
    from gcptoken.http.tls import server_context
    from gcptoken.integrations.httpx_auth import IdTokenAuth

    auth = IdTokenAuth(credentials_for(args), audience, header=header)
    verify = server_context() or True  # the CAs every transport trusts (SSL_CERT_FILE, SSL_CERT_DIR)
    try:
        with httpx.Client(auth=auth, timeout=args.timeout, trust_env=False, verify=verify) as client:
            response = client.request(method, url, content=body, headers=headers)
    except httpx.HTTPError as exc:
        print(f"gcptoken: error: {method} {safe_url(url)}: {network_failure(exc, url)}", file=sys.stderr)
        return 3
    print(f"gcptoken: HTTP {response.status_code} {one_line(response.reason_phrase, 100)}", file=sys.stderr)
    sys.stdout.buffer.write(response.content)
    sys.stdout.flush()
    return 0 if response.status_code < 400 else 1


class _Signalled(Exception):
    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


_FORWARDED = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGINT", "SIGHUP") if hasattr(signal, name))


def run_curl(args: argparse.Namespace) -> int:
    url = checks.http_url(args.url, user_info=False)
    audience = _audience(args, url)
    curl = shutil.which("curl")
    if curl is None:
        raise GcpTokenError("curl is not installed (not on PATH); 'gcptoken call' needs no curl")
    token = credentials_for(args).id_token(audience, timeout=args.timeout)
    # The header goes through a private file, never the command line (visible to other users),
    # and the file is removed however this ends: exit, Ctrl-C, SIGTERM or SIGHUP.
    fd, path = tempfile.mkstemp(prefix="gcptoken-header-")
    previous: dict[int, object] = {}
    process: subprocess.Popen[bytes] | None = None

    def stop(signum: int, frame: FrameType | None) -> None:
        if process is not None and process.poll() is None:
            process.send_signal(signum)
        raise _Signalled(signum)

    try:
        for signum in _FORWARDED:
            previous[signum] = signal.signal(signum, stop)
        with os.fdopen(fd, "w") as handle:
            handle.write(f"{token_header(args)}: Bearer {token.value}\n")
        process = subprocess.Popen([curl, "-H", f"@{path}", *args.curl_args, url], env=without_pins())
        return process.wait()
    except _Signalled as stopped:
        if process is not None:
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
        # Said as every one-shot command says it (cli.interrupts): Ctrl-C 130, SIGTERM 143.
        if stopped.signum == signal.SIGINT:
            raise KeyboardInterrupt from None
        if stopped.signum == signal.SIGTERM:
            raise Terminated from None
        sys.stderr.write("gcptoken: hung up (SIGHUP)\n")
        return 128 + stopped.signum
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)  # type: ignore[arg-type]
        os.unlink(path)
