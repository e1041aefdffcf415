"""``gcptoken whoami``: which credential would be used, from where, and why."""

from __future__ import annotations

import argparse
import json
import sys

from gcptoken.cli.tokens import checked_chain
from gcptoken.credentials import (
    GcloudCredentials,
    ImpersonatedCredentials,
    MetadataCredentials,
    ServiceAccountCredentials,
    load_credentials,
)
from gcptoken.credentials.adc import Discovery, find_credentials
from gcptoken.credentials.base import quota_project
from gcptoken.credentials.gcloud import run_gcloud
from gcptoken.credentials.impersonated import impersonation_description
from gcptoken.errors import GcpTokenError, InvalidArgumentError
from gcptoken.untrusted import one_line

__all__ = ["run_whoami"]


def _discover(args: argparse.Namespace) -> Discovery:
    if args.credentials:
        if args.source not in (None, "file"):
            raise InvalidArgumentError(f"--credentials and --source {args.source} exclude each other")
        return Discovery(load_credentials(args.credentials), "file", args.credentials, "--credentials names it")
    return find_credentials(args.source)


def _identity(found: Discovery, timeout: float) -> str:
    credentials = found.credentials
    if isinstance(credentials, ServiceAccountCredentials):
        return f"service account {credentials.key.client_email} (key {credentials.key.private_key_id[:12]}…)"
    if isinstance(credentials, GcloudCredentials):
        try:
            account = one_line(run_gcloud(["config", "get-value", "account"]), 320)  # gcloud's words: escaped
            return f"{account} (gcloud's active account)" if account else "gcloud, with no active account"
        except GcpTokenError as exc:
            return f"gcloud's active account (unavailable: {exc})"
    if isinstance(credentials, MetadataCredentials):
        try:
            return f"service account {credentials.email(timeout=timeout)} (the instance's default)"
        except GcpTokenError as exc:
            return f"the instance's default service account (email unavailable: {exc})"
    return credentials.description


def run_whoami(args: argparse.Namespace) -> int:
    chain = checked_chain(args)  # before anything is looked up: "" is an error, not "no impersonation"
    found = _discover(args)
    identity = _identity(found, args.timeout)
    if chain:
        impersonated = ImpersonatedCredentials.from_chain(found.credentials, chain)
        identity = impersonation_description(impersonated.target, impersonated.delegates, identity)
    report = {
        "credential": identity,
        "source": found.source,
        "location": found.location,
        "why": found.reason,
        "tried_before": list(found.tried),
        "universe": found.credentials.universe_domain,
        "quota_project": quota_project(found.credentials),
    }
    if args.format == "json":
        sys.stdout.write(json.dumps(report, indent=2) + "\n")
        return 0
    for name in ("credential", "source", "location", "why"):
        sys.stdout.write(f"{name + ':':<12}{report[name]}\n")
    if report["universe"] != "googleapis.com":
        sys.stdout.write(f"{'universe:':<12}{report['universe']}\n")
    if report["quota_project"]:
        sys.stdout.write(f"{'quota:':<12}{report['quota_project']} (x-goog-user-project on API calls)\n")
    for entry in found.tried:
        sys.stdout.write(f"{'skipped:':<12}{entry}\n")
    return 0
