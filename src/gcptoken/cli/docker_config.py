"""``gcptoken docker-config``: point docker at ``docker-credential-gcptoken`` for Google's registries
(``credHelpers`` in docker's config), as ``gcloud auth configure-docker`` does, without a prompt."""

from __future__ import annotations

import argparse
import shutil
import sys
from collections.abc import Callable

__all__ = ["add_docker_config", "run_docker_config"]

EPILOG = """\
With no REGISTRY: gcr.io and its regions (gcloud's default list); name Artifact Registry's hosts,
e.g. us-docker.pkg.dev. The file is $DOCKER_CONFIG/config.json (default ~/.docker/config.json); every
other setting in it is kept. A registry already mapped to another helper (gcloud, say) is left alone
and nothing is written unless --force. A registry that is not Google's is refused unless
$GCPTOKEN_HELPER_HOSTS names it (the helper answers only those; set it where docker runs too).
config.json as a symbolic link is not followed; a linked folder is, when the link and the folder
are yours and others cannot write the folder."""


def add_docker_config(command: Callable[[str, str, str], argparse.ArgumentParser]) -> None:
    parser = command(
        "docker-config",
        "gcptoken.cli.docker_config:run_docker_config",
        "let docker pull from Google's registries with gcptoken's tokens (credHelpers in docker's config)",
    )
    parser.epilog = EPILOG
    parser.add_argument(
        "registries",
        nargs="*",
        default=[],
        metavar="REGISTRY",
        help="HOST or HOST:PORT (comma-separated too; default: gcr.io's)",
    )
    parser.add_argument("--force", action="store_true", help="replace entries that name another helper")
    parser.add_argument("--remove", action="store_true", help="remove gcptoken's entries (default: all of them)")
    parser.add_argument("--dry-run", action="store_true", help="say what would change; write nothing")


def _say(verb: str, hosts: list[str]) -> None:
    if hosts:
        print(f"{verb}: {', '.join(hosts)}")


def run_docker_config(args: argparse.Namespace) -> int:
    from gcptoken.helpers.docker_config import update_docker_config

    names = [part for name in args.registries for part in name.split(",") if part.strip()]
    change = update_docker_config(names, force=args.force, remove=args.remove, dry_run=args.dry_run)
    would = "would " if args.dry_run else ""
    _say(f"{would}add", change.added)
    _say(f"{would}replace", [f"{host} (was {helper})" for host, helper in change.replaced])
    _say(f"{would}remove", change.removed)
    _say("already gcptoken's", change.unchanged)
    _say("left alone (another helper's)", [f"{host} ({helper})" for host, helper in change.kept])
    if change.written:
        print(f"updated {change.path}" + (" (new, mode 0600)" if change.created else ""))
    elif not args.dry_run:
        print(f"nothing to change in {change.path}")
    if not args.remove and shutil.which("docker-credential-gcptoken") is None:
        print(
            "gcptoken: warning: docker-credential-gcptoken is not on PATH: docker will fail to run it "
            "until it is (it is installed with gcptoken, beside the gcptoken command)",
            file=sys.stderr,
        )
    return 0
