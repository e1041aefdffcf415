"""``gcptoken pubsub-emulator``: the official Pub/Sub emulator (installed with gcloud) whose push
subscriptions' pushes carry the ID token Pub/Sub sends, minted by a running ``gcptoken emulator``."""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable

from gcptoken.cli.interrupts import Terminated  # the parser's module imports it anyway

__all__ = ["add_pubsub_emulator", "run_pubsub_emulator"]

EPILOG = """\
Start `gcptoken emulator` first (this one mints through it: GCPTOKEN_EMULATOR_HOST, else --emulator).
Then, in the shell of your app and your tests: export PUBSUB_EMULATOR_HOST=HOST:PORT (printed on
stdout), and create topics and push subscriptions as in production (pushConfig.oidcToken). Pushes go
to http:// endpoints on this machine only (--allow-remote-endpoints for others; https:// endpoints get
no token). A push whose token Pub/Sub could not mint is not delivered and is retried, as Google does.
The token's audience is the subscription's oidcToken.audience, else the push endpoint URL (the local
one here: set audience to keep your verifier as in production). A noWrapper push without
writeMetadata names no subscription: it is found by its URL; when subscriptions that could have sent
it send different tokens (two such pushing to one URL with different accounts), it is refused, never
guessed: give each its own URL, or set writeMetadata."""


def add_pubsub_emulator(command: Callable[[str, str, str], argparse.ArgumentParser]) -> None:
    pubsub = command(
        "pubsub-emulator",
        "gcptoken.cli.pubsub_emulator:run_pubsub_emulator",
        "run Google's Pub/Sub emulator with the ID tokens push subscriptions send",
    )
    pubsub.add_argument("--port", type=int, default=8085, help="its port, PUBSUB_EMULATOR_HOST's (0 picks a free one)")
    pubsub.add_argument(
        "--emulator",
        metavar="HOST:PORT",
        help="gcptoken's emulator (default: GCPTOKEN_EMULATOR_HOST, else 127.0.0.1:8089)",
    )
    pubsub.add_argument(
        "--allow-remote-endpoints",
        action="store_true",
        help="also push to endpoints off this machine (default: refused, nothing leaves it)",
    )
    pubsub.add_argument(
        "--project",
        action="append",
        metavar="ID",
        help="where to find the subscription of a push that names none (noWrapper without writeMetadata; "
        "PUBSUB_PROJECT_ID is used too; repeatable)",
    )
    pubsub.add_argument(
        "--allow-host",
        action="append",
        metavar="NAME",
        help="also answer requests whose Host is NAME (host.docker.internal, say; default: loopback only, "
        "so no web page can reach it through DNS rebinding; repeatable)",
    )
    pubsub.epilog = EPILOG


def _emulator_url(args: argparse.Namespace) -> str | None:
    import httpx

    from gcptoken.cli.local_servers import say

    host = args.emulator or os.environ.get("GCPTOKEN_EMULATOR_HOST") or "127.0.0.1:8089"
    url = host.rstrip("/") if host.startswith(("http://", "https://")) else f"http://{host}"
    try:
        info = httpx.get(f"{url}/emulator/v1/info", timeout=5, trust_env=False)
        if info.status_code == 200 and "projectId" in info.json():
            return url
    except (httpx.HTTPError, ValueError):
        pass
    say(f"error: gcptoken's emulator does not answer at {url[:200]}: start it with `gcptoken emulator` (or --emulator)")
    return None


def run_pubsub_emulator(args: argparse.Namespace) -> int:
    from gcptoken.extras import require

    require("emulator", "gcptoken pubsub-emulator")
    from gcptoken.cli.local_servers import GuardFlags, configure_log, say
    from gcptoken.emulator.pubsub import PubsubEmulator, PubsubEmulatorMissingError

    if not 0 <= args.port <= 65535:
        say(f"error: --port must be 0-65535, not {args.port}")
        return 2
    from gcptoken.emulator.pubsub.subscriptions import PROJECT_ID

    for project in args.project or ():
        if not PROJECT_ID.fullmatch(project):
            say(f"error: --project: {project[:70]!r} is not a project ID")
            return 2
    allow_hosts = GuardFlags(args).hosts  # checked as every local server's (InvalidArgumentError: exit 2)
    emulator_url = _emulator_url(args)
    if emulator_url is None:
        return 3
    log = configure_log("gcptoken.pubsub", args.verbose)  # refused pushes always, each push with -v
    try:
        pubsub = PubsubEmulator(
            emulator_url,
            port=args.port,
            allow_remote_endpoints=args.allow_remote_endpoints,
            projects=args.project or (),
            allow_hosts=allow_hosts,
            log=log,
        )
    except ValueError as exc:  # PUBSUB_PROJECT_ID's, named
        say(f"error: {exc}")
        return 2
    except (PubsubEmulatorMissingError, OSError) as exc:  # OSError: a ListenError naming --port
        say(f"error: {exc}")
        return 3
    try:
        pubsub.start()
    except PubsubEmulatorMissingError as exc:
        say(f"error: {exc}")
        return 3
    try:
        print(f"export PUBSUB_EMULATOR_HOST={pubsub.host_port}", flush=True)
        say(f"Pub/Sub emulator on {pubsub.host_port}, its pushes' tokens from {emulator_url}; Ctrl-C stops it")
        while pubsub.running():
            time.sleep(0.5)
        say("error: the Pub/Sub emulator stopped by itself")
        return 3
    except (KeyboardInterrupt, Terminated):
        say("Pub/Sub emulator stopped")
        return 0
    finally:
        pubsub.stop()
