"""``gcptoken inspect [TOKEN|-]``: the private token inspector, served on 127.0.0.1 under a
one-time path, opened in the browser."""

from __future__ import annotations

import argparse
import secrets
import sys

from gcptoken.extras import require

require("emulator", "gcptoken inspect")  # starlette and uvicorn

from gcptoken.cli.bridges import serve  # noqa: E402
from gcptoken.errors import InvalidArgumentError  # noqa: E402

__all__ = ["run_inspect"]


def run_inspect(args: argparse.Namespace) -> int:
    from gcptoken.inspector.server import inspector_app

    token = args.token
    if token == "-":
        token = sys.stdin.read(64 * 1024).strip()
    if not 0 <= args.port <= 65535:
        raise InvalidArgumentError(f"--port must be 0-65535, not {args.port}")
    secret = secrets.token_urlsafe(24)  # other local users and other sites cannot guess the page
    app = inspector_app(secret, token or None)

    def announce(host_port: str) -> None:
        url = f"http://{host_port}/{secret}/"
        print(url, flush=True)
        print("gcptoken: inspector on this machine only; Ctrl-C stops it", file=sys.stderr, flush=True)
        if not args.no_browser:
            import webbrowser

            if not webbrowser.open(url):
                print(f"gcptoken: open {url}", file=sys.stderr, flush=True)

    return serve(app, "127.0.0.1", args.port, announce)
