"""``gcptoken emulator``: the emulator in the foreground."""

from __future__ import annotations

import argparse
import sys

from gcptoken.cli.local_servers import GuardFlags, configure_log, warn_if_exposed
from gcptoken.errors import InvalidArgumentError

__all__ = ["run_emulator"]


def run_emulator(args: argparse.Namespace) -> int:
    from gcptoken.extras import require

    require("emulator", "gcptoken emulator")  # before gcptoken.emulator's own, which names the module
    from gcptoken.emulator import EmulatorServer

    flags = GuardFlags(args, allow_flag="allow_admin")
    warn_if_exposed(args.host, args.port, "the emulator", flags, admin=True)
    mtls_port = args.mtls_port if args.mtls_port is not None else (0 if args.state_dir else -1)
    if not -1 <= mtls_port <= 65535:
        raise InvalidArgumentError(f"--mtls-port must be 0-65535 (or -1 for none), not {mtls_port}")
    try:
        server = EmulatorServer(
            host=args.host,
            port=args.port,
            state_dir=args.state_dir,
            mtls_port=None if mtls_port == -1 else mtls_port,
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

    def announce() -> None:
        print(server.url, flush=True)
        where = f"; state in {args.state_dir} (source {args.state_dir}/env to use it)" if args.state_dir else ""
        where += f"; metadata server as {args.platform}" if args.platform != "gce" else ""
        mtls = f" (mutual TLS on {server.mtls.url})" if server.mtls is not None else ""
        print(
            f"gcptoken: emulator listening on {server.url}{mtls}{where}; Ctrl-C stops it", file=sys.stderr, flush=True
        )

    server.serve_forever(announce)  # until Ctrl-C or SIGTERM (taken before the announcement), stopping gracefully
    print("gcptoken: emulator stopped", file=sys.stderr)
    return 0
