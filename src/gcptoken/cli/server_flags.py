"""The command-line flags of the commands that start a local server: who is let in besides loopback
(every server checks peer, Host and Origin), and the metadata server's recipe. argparse only: the
parser is built on every run, so nothing heavy is imported here."""

from __future__ import annotations

import argparse

from gcptoken.local.metadata_platforms import PLATFORMS

__all__ = ["METADATA_EPILOG", "PLATFORM_EPILOG", "guard_options", "platform_option"]


def _platform_lines() -> str:
    lines = []
    for platform in PLATFORMS.values():
        env = " ".join(f"{name}={value}" for name, value in platform.runtime_env) or "(none: detected by the server)"
        lines.append(f"  {platform.name:<11} {platform.title}: {env}")
    return "\n".join(lines)


PLATFORM_EPILOG = f"""\
--platform answers as that platform's metadata server (headers, paths, refusals, ID token claims).
Some clients detect the platform by variables its runtime sets, not by the server; set them in the
app's environment for the platform you pick ({{project_id}}: your project):
{_platform_lines()}
These say "platform detected", never "behind Cloud Run's front door": CloudRunIdentity refuses these
values (an app run locally is reachable with forged tokens). An app behind `gcptoken emulator --run`
passes k_service_required=False, as the emulator prints for each service; elsewhere use a Verifier.
"""

METADATA_EPILOG = f"""\
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

{PLATFORM_EPILOG}"""


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


def platform_option(parser: argparse.ArgumentParser) -> None:
    """``--platform``: whose metadata server to answer as (see PLATFORM_EPILOG)."""
    parser.add_argument(
        "--platform",
        choices=tuple(PLATFORMS),
        default="gce",
        help="answer as this platform's metadata server (the app may need its variables too: see below)",
    )
