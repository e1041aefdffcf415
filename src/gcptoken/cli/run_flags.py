"""``gcptoken emulator --run NAME=URL``: Cloud Run's front door before local apps (the options,
and the services they describe)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from gcptoken.errors import InvalidArgumentError

if TYPE_CHECKING:
    from gcptoken.emulator.run.services import RunService

__all__ = ["run_options", "run_services_from", "serverless_option", "token_header"]


def run_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("Cloud Run's front door (each service on its own loopback port: its URL)")
    group.add_argument(
        "--run",
        action="append",
        default=[],
        metavar="NAME=URL",
        help="front the local app at URL as Cloud Run service NAME: ID token and roles/run.invoker checked, "
        "Cloud Run's 401/403 answered, the rest forwarded (repeatable)",
    )
    group.add_argument(
        "--run-invoker",
        action="append",
        default=[],
        metavar="NAME=MEMBER",
        help="grant roles/run.invoker on NAME: serviceAccount:EMAIL, user:EMAIL, allAuthenticatedUsers (repeatable)",
    )
    group.add_argument(
        "--run-audience",
        action="append",
        default=[],
        metavar="NAME=AUDIENCE",
        help="a custom audience NAME also accepts, besides its URLs (repeatable)",
    )
    group.add_argument(
        "--run-port",
        action="append",
        default=[],
        metavar="NAME=PORT",
        help="the port NAME's front door listens on, so its URL is known before it starts (default: a free "
        "port; repeatable, one per service)",
    )
    group.add_argument(
        "--run-allow-unauthenticated",
        action="append",
        default=[],
        metavar="NAME",
        help="bind allUsers, as gcloud run deploy --allow-unauthenticated: no token checked (repeatable)",
    )


def _pairs(values: list[str], option: str, names: set[str] | None) -> list[tuple[str, str]]:
    pairs = []
    for value in values:
        name, equals, rest = value.partition("=")
        if not equals or not name or not rest:
            raise InvalidArgumentError(f"{option} takes NAME=VALUE, not {value[:60]!r}")
        if names is not None and name not in names:
            raise InvalidArgumentError(f"{option} {name[:60]}: no --run {name}=URL names that service")
        pairs.append((name, rest))
    return pairs


def run_services_from(args: argparse.Namespace) -> list[RunService]:
    """The services the options describe (RunService objects), checked before anything listens."""
    from gcptoken.emulator.run.services import ALL_USERS, RunService

    services: dict[str, RunService] = {}
    for name, url in _pairs(args.run, "--run", None):
        if name in services:
            raise InvalidArgumentError(f"--run {name[:60]} is given twice")
        services[name] = RunService(name, url)
    names = set(services)
    audiences: dict[str, list[str]] = {}
    for name, audience in _pairs(args.run_audience, "--run-audience", names):
        audiences.setdefault(name, []).append(audience)
    invokers: dict[str, set[str]] = {}
    for name, member in _pairs(args.run_invoker, "--run-invoker", names):
        invokers.setdefault(name, set()).add(member)
    ports: dict[str, int] = {}
    for name, port in _pairs(args.run_port, "--run-port", names):
        if not port.isdigit() or not 0 <= int(port) <= 65535 or name in ports:
            raise InvalidArgumentError(f"--run-port {name[:60]}: one port, 0-65535, not {port[:20]!r}")
        ports[name] = int(port)
    for name in args.run_allow_unauthenticated:
        if name not in names:
            raise InvalidArgumentError(
                f"--run-allow-unauthenticated {name[:60]}: no --run {name}=URL names that service"
            )
        invokers.setdefault(name, set()).add(ALL_USERS)
    return [
        RunService(name, s.upstream, tuple(audiences.get(name, ())), invokers.get(name, set()), port=ports.get(name, 0))
        for name, s in services.items()
    ]


def serverless_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--serverless-header",
        action="store_true",
        help="send the ID token in X-Serverless-Authorization, which Cloud Run checks first, leaving "
        "Authorization to the app's own scheme",
    )


def token_header(args: argparse.Namespace) -> str:
    from gcptoken.integrations.audience import AUTHORIZATION, SERVERLESS_AUTHORIZATION

    return SERVERLESS_AUTHORIZATION if getattr(args, "serverless_header", False) else AUTHORIZATION
