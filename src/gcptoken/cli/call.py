"""``gcptoken call`` and ``gcptoken curl``: call a private service with an ID token."""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile

from gcptoken.cli.tokens import credentials_for
from gcptoken.errors import InvalidArgumentError
from gcptoken.integrations.audience import audience_for

__all__ = ["run_call", "run_curl"]


def _method_and_url(args: argparse.Namespace) -> tuple[str, str]:
    if len(args.target) == 1:
        return ("POST" if args.data is not None else "GET"), args.target[0]
    if len(args.target) == 2:
        return args.target[0].upper(), args.target[1]
    raise InvalidArgumentError("give [METHOD] URL, e.g. gcptoken call POST https://SERVICE.a.run.app/path")


def _body(data: str | None) -> bytes | None:
    if data is None:
        return None
    if data == "-":
        return sys.stdin.buffer.read()
    if data.startswith("@"):
        try:
            with open(data[1:], "rb") as handle:
                return handle.read()
        except OSError as exc:
            raise InvalidArgumentError(f"--data {data}: {exc.strerror}") from None
    return data.encode("utf-8")


def run_call(args: argparse.Namespace) -> int:
    import httpx

    from gcptoken.integrations.httpx_auth import IdTokenAuth

    method, url = _method_and_url(args)
    headers = {}
    for header in args.header:
        name, separator, value = header.partition(":")
        if not separator or not name.strip():
            raise InvalidArgumentError(f"--header must be 'Name: value', not {header!r}")
        headers[name.strip()] = value.strip()
    auth = IdTokenAuth(credentials_for(args), args.audience)
    try:
        with httpx.Client(auth=auth, timeout=args.timeout, trust_env=False) as client:
            response = client.request(method, url, content=_body(args.data), headers=headers)
    except httpx.HTTPError as exc:
        print(f"gcptoken: error: {method} {url}: {type(exc).__name__}", file=sys.stderr)
        return 3
    print(f"gcptoken: HTTP {response.status_code} {response.reason_phrase}", file=sys.stderr)
    sys.stdout.buffer.write(response.content)
    sys.stdout.flush()
    return 0 if response.status_code < 400 else 1


def run_curl(args: argparse.Namespace) -> int:
    curl = shutil.which("curl")
    if curl is None:
        raise InvalidArgumentError("curl is not installed (not on PATH); 'gcptoken call' needs no curl")
    token = credentials_for(args).id_token(args.audience or audience_for(args.url), timeout=args.timeout)
    # The header goes through a private file, never the command line (visible to other users).
    fd, path = tempfile.mkstemp(prefix="gcptoken-header-")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(f"Authorization: Bearer {token.value}\n")
        extra = [a for a in args.curl_args if a != "--"]
        return subprocess.run([curl, "-H", f"@{path}", *extra, args.url], check=False).returncode
    finally:
        os.unlink(path)
