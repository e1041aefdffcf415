"""What the commands that start a local server share: the guard's flags checked (one line, exit 2),
the warning for an address beyond loopback, the request log on stderr, serving in the foreground."""

from __future__ import annotations

import argparse
import logging
import re
import sys
from collections.abc import Callable

from gcptoken.errors import InvalidArgumentError

__all__ = ["GuardFlags", "configure_log", "say", "serve", "warn_if_exposed"]

LOOPBACK = ("127.0.0.1", "::1", "localhost", "[::1]")
_NAME = re.compile(r"(?=.{1,253}$)[A-Za-z0-9_]([A-Za-z0-9_-]{0,62})(\.[A-Za-z0-9_]([A-Za-z0-9_-]{0,62}))*\.?")
_ORIGIN = re.compile(r"https?://(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+)(:\d{1,5})?")


def say(text: str) -> None:
    print(f"gcptoken: {text}", file=sys.stderr, flush=True)


class GuardFlags:
    """``--allow``, ``--allow-host`` and ``--allow-origin`` as the guard takes them."""

    def __init__(self, args: argparse.Namespace, allow_flag: str = "allow") -> None:
        from gcptoken.servers.guard import parse_networks

        try:
            self.allow = parse_networks(getattr(args, allow_flag, None), f"--{allow_flag.replace('_', '-')}")
        except ValueError as exc:
            raise InvalidArgumentError(str(exc)) from None
        self.hosts = tuple(_host_name(value) for value in getattr(args, "allow_host", None) or ())
        self.origins = tuple(_origin(value) for value in getattr(args, "allow_origin", None) or ())


def _host_name(value: str) -> str:
    text = value.strip()
    bracketed = text.startswith("[") and text.endswith("]")
    if not (_NAME.fullmatch(text) or (bracketed and re.fullmatch(r"[0-9A-Fa-f:.]+", text[1:-1]))):
        raise InvalidArgumentError(f"--allow-host {value[:60]!r} is not a host name (a name or address, no port)")
    return text.lower()


def _origin(value: str) -> str:
    text = value.strip().rstrip("/")
    if not _ORIGIN.fullmatch(text):
        raise InvalidArgumentError(f"--allow-origin {value[:60]!r} is not an origin (http://HOST[:PORT])")
    return text.lower()


def warn_if_exposed(host: str, port: int, what: str, flags: GuardFlags | None, admin: bool = False) -> None:
    """Checks the port; says what listening beyond loopback exposes and to whom."""
    if not 0 <= port <= 65535:
        raise InvalidArgumentError(f"--port must be 0-65535, not {port}")
    if host in LOOPBACK:
        return
    where = f"{host}:{port or 'its port'}"
    if admin:
        say(
            f"warning: {what} listens on {host}: anyone who can reach {where} can use it (its admin API and "
            "console stay loopback-only unless --allow-admin)"
        )
        return
    allowed = ", ".join(str(n) for n in flags.allow) if flags and flags.allow else ""
    who = f"clients in {allowed}" if allowed else "no one but loopback clients (add --allow CIDR)"
    say(
        f"warning: {what} listens on {host}: anyone who can reach {where} and is let in can get your tokens; "
        f"it answers {who}. Keep it on loopback, or a docker bridge address with --allow"
    )


def configure_log(name: str, verbose: bool) -> logging.Logger:
    """``name``'s log on stderr: refusals always, every request with ``-v``."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("gcptoken: %(message)s"))
    logger = logging.getLogger(name)
    logger.handlers = [handler]
    logger.setLevel(logging.INFO if verbose else logging.WARNING)
    logger.propagate = False
    return logger


def serve(
    app: object,
    host: str,
    port: int,
    announce: Callable[[str], None],
    date_header: bool = True,
    protocol: object = None,
) -> int:
    """Serve ``app`` in the foreground until Ctrl-C or SIGTERM (a graceful shutdown); ``protocol``:
    uvicorn's protocol class, when not the default one."""
    from gcptoken.servers.serving import AsgiServer, bind

    try:
        sock = bind(host, port)
    except OSError as exc:  # a ListenError: it names the port and --port
        say(f"error: {exc}")
        return 3
    server = AsgiServer(app, sock, protocol=protocol, date_header=date_header)  # type: ignore[arg-type]
    server.serve_forever(lambda: announce(server.host_port))  # Ctrl-C and SIGTERM stop it from the announcement on
    say("stopped")
    return 0
