"""The command-line flags of the commands that start a local server: who is let in besides loopback
(every server checks peer, Host and Origin), and the metadata server's recipe. argparse only: the
parser is built on every run, so nothing heavy is imported here."""

from __future__ import annotations

import argparse

__all__ = ["METADATA_EPILOG", "guard_options"]

METADATA_EPILOG = """\
Point clients at it (it prints the values when it starts):
  export GCE_METADATA_HOST=127.0.0.1:PORT GCE_METADATA_IP=127.0.0.1:PORT GCE_METADATA_ROOT=127.0.0.1:PORT

Containers (docker compose): listen on the docker bridge, for its clients only,
  gcptoken metadata-server --host 172.17.0.1 --port 8081 --allow 172.16.0.0/12 \\
      --allow-host host.docker.internal
and in docker-compose.yml:
  services:
    app:
      environment:
        GCE_METADATA_HOST: host.docker.internal:8081
        GCE_METADATA_IP: host.docker.internal:8081
        GCE_METADATA_ROOT: host.docker.internal:8081
      extra_hosts: ["host.docker.internal:host-gateway"]
Anyone who can reach the port can get your tokens: keep it on loopback or a bridge, with --allow.
Requests naming another Host (DNS rebinding) or coming from a web page of another origin are refused.
"""


def guard_options(parser: argparse.ArgumentParser, *, peers: bool = True, origins: bool = False) -> None:
    """Who a local server answers besides loopback (every server checks peer, Host and Origin)."""
    if peers:
        parser.add_argument(
            "--allow", action="append", metavar="CIDR", help="also answer these clients, besides loopback (repeatable)"
        )
    parser.add_argument(
        "--allow-host",
        action="append",
        metavar="NAME",
        help="also answer requests addressed to this host name (repeatable); others are refused (DNS rebinding)",
    )
    if origins:
        parser.add_argument(
            "--allow-origin",
            action="append",
            metavar="ORIGIN",
            help="let pages of this origin (http://localhost:5173) call through, as the proxy's own (repeatable)",
        )
