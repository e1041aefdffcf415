"""``gcptoken inspect [TOKEN|-]``: the private token inspector, served on 127.0.0.1 under a
one-time path, opened in the browser through a file only this user can read."""

from __future__ import annotations

import argparse
import sys

from gcptoken.extras import require

require("emulator", "gcptoken inspect")  # starlette and uvicorn

from gcptoken.cli.local_servers import configure_log, say, serve, warn_if_exposed  # noqa: E402

__all__ = ["run_inspect"]

ARGV_WARNING = (
    "warning: a token given on the command line can be read by other users of this machine "
    "(/proc/PID/cmdline) while gcptoken runs; pass - and the token on stdin, or paste it in the page"
)


def run_inspect(args: argparse.Namespace) -> int:
    from gcptoken.inspector.server import inspector_app
    from gcptoken.servers.browser_open import PrivateOpener
    from gcptoken.servers.launch import OneTimeLink

    token = args.token
    if token == "-":
        token = sys.stdin.read(64 * 1024).strip()
    elif token:
        say(ARGV_WARNING)
    warn_if_exposed("127.0.0.1", args.port, "the inspector", None)
    configure_log("gcptoken.inspector", args.verbose)
    link = OneTimeLink("inspect")  # the path is spent by the first load: other users cannot follow
    app = inspector_app(link, token or None)
    opener: PrivateOpener | None = None

    def announce(host_port: str) -> None:
        nonlocal opener
        url = f"http://{host_port}/{link.secret}/"
        print(url, flush=True)  # stdout is this user's: the address reaches no command line
        say("inspector on this machine only; its address works once, in one browser; Ctrl-C stops it")
        if not args.no_browser:
            opener = PrivateOpener(url, "inspect")
            if not opener.open():
                say("no browser found: open the address above")

    try:
        return serve(app, "127.0.0.1", args.port, announce)
    finally:
        if opener is not None:
            opener.close()
