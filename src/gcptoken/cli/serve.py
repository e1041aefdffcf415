"""``gcptoken emulator``: the emulator in the foreground."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from gcptoken.cli.local_servers import GuardFlags, configure_log, warn_if_exposed
from gcptoken.errors import InvalidArgumentError

if TYPE_CHECKING:
    from gcptoken.emulator import EmulatorServer
    from gcptoken.emulator.run import FrontDoorServer, RunService

__all__ = ["run_emulator"]


def run_emulator(args: argparse.Namespace) -> int:
    from gcptoken.extras import require

    require("emulator", "gcptoken emulator")  # before gcptoken.emulator's own, which names the module
    from gcptoken.cli.run_flags import run_services_from
    from gcptoken.emulator import EmulatorServer

    services = run_services_from(args)  # checked before anything listens
    flags = GuardFlags(args, allow_flag="allow_admin")
    warn_if_exposed(args.host, args.port, "the emulator", flags, admin=True)
    mtls_port = args.mtls_port if args.mtls_port is not None else (0 if args.state_dir else -1)
    if not -1 <= mtls_port <= 65535:
        raise InvalidArgumentError(f"--mtls-port must be 0-65535 (or -1 for none), not {mtls_port}")
    if args.tls_port is not None and not 0 <= args.tls_port <= 65535:
        raise InvalidArgumentError(f"--tls-port must be 0-65535, not {args.tls_port}")
    try:
        server = EmulatorServer(
            host=args.host,
            port=args.port,
            state_dir=args.state_dir,
            mtls_port=None if mtls_port == -1 else mtls_port,
            tls_port=args.tls_port,
            allow_hosts=flags.hosts,
            allow_admin=flags.allow,
            platform=args.platform,
        )
    except OSError as exc:  # a ListenError: it names the port and its option
        print(f"gcptoken: error: {exc}", file=sys.stderr)
        return 3
    except ValueError as exc:
        print(f"gcptoken: error: {exc}", file=sys.stderr)
        return 3
    configure_log("gcptoken.emulator", args.verbose)  # refusals by the guard under -v
    missing = _missing_invoker(server, services)
    if missing is not None:  # known only now: the state (--state-dir) is loaded
        server.stop()
        print(f"gcptoken: error: --run-invoker: {missing}", file=sys.stderr)
        return 2
    try:
        doors = _front_doors(server, services, flags)
    except OSError as exc:
        server.stop()
        print(f"gcptoken: error: {exc}", file=sys.stderr)
        return 3

    def announce() -> None:
        print(server.url, flush=True)
        where = f"; state in {args.state_dir} (source {args.state_dir}/env to use it)" if args.state_dir else ""
        where += f"; metadata server as {args.platform}" if args.platform != "gce" else ""
        mtls = f" (mutual TLS on {server.mtls.url})" if server.mtls is not None else ""
        mtls += f" (HTTPS on {server.tls.url})" if server.tls is not None else ""
        print(
            f"gcptoken: emulator listening on {server.url}{mtls}{where}; Ctrl-C stops it", file=sys.stderr, flush=True
        )
        for door in doors:
            invokers = ", ".join(sorted(door.service.invokers)) or "none yet (403 for all; --run-invoker)"
            print(
                f"gcptoken: Cloud Run service {door.service.name} on {door.service.url} -> {door.service.upstream}; "
                f"invokers: {invokers}",
                file=sys.stderr,
                flush=True,
            )
            # What the app behind it passes to read the checked identity: explicitly, never through
            # K_SERVICE, which a local app has only because someone set it (CloudRunIdentity refuses
            # the emulator's values); the app's own port must be reachable through the front door only.
            print(
                f"gcptoken:   app behind it: CloudRunIdentity({list(door.service.audiences)!r}, "
                "trust_cloud_run_authentication=True, k_service_required=False), "
                f"and keep {door.service.upstream} reachable only through {door.service.url}: gcptoken cannot "
                "enforce that, and a direct caller can forge what the app would trust",
                file=sys.stderr,
                flush=True,
            )

    try:
        server.serve_forever(announce)  # until Ctrl-C or SIGTERM (taken before the announcement), stopping gracefully
    finally:
        for door in doors:
            door.stop()
    print("gcptoken: emulator stopped", file=sys.stderr)
    return 0


def _missing_invoker(server: EmulatorServer, services: list[RunService]) -> str | None:
    """As gcloud run services add-iam-policy-binding: a service account that does not exist is refused."""
    if not services:
        return None
    from gcptoken.emulator.run.services import missing_account

    return missing_account((m for s in services for m in s.invokers), server.state)


def _front_doors(server: EmulatorServer, services: list[RunService], flags: GuardFlags) -> list[FrontDoorServer]:
    """Each ``--run`` service's front door, listening on loopback whatever --host says (an app
    fronted here is a local one; --allow-host names are answered too)."""
    if not services:
        return []
    from gcptoken.emulator.run import start_front_doors

    return start_front_doors(server.state, services, hosts=flags.hosts)
