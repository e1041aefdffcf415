"""The ``sign-jwt`` and ``sign-blob`` commands' options (argparse only: built on every run)."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from gcptoken.cli.parser_kit import credential_options

__all__ = ["add_sign_commands"]


def add_sign_commands(command: Callable[[str, str, str], argparse.ArgumentParser]) -> None:
    jwt = command(
        "sign-jwt",
        "gcptoken.cli.sign:run_sign_jwt",
        "print a JWT signed as the credential's service account (a key file signs here; others through IAM)",
    )
    jwt.add_argument(
        "--claims",
        required=True,
        metavar="JSON|@FILE|-",
        help="the claims, a JSON object: given here, @FILE, or - for stdin (exp: at most 12 h ahead; default 1 h)",
    )
    jwt.add_argument("--format", choices=("token", "json"), default="token", help="json adds keyId and expires_at")
    credential_options(jwt, no_cache=False)

    blob = command(
        "sign-blob",
        "gcptoken.cli.sign:run_sign_blob",
        "print the base64 RSA SHA-256 signature of a file's bytes, signed as the credential's service account",
    )
    blob.add_argument("file", metavar="FILE|-", help="the bytes to sign; - reads stdin")
    blob.add_argument("--format", choices=("signature", "json"), default="signature", help="json adds keyId")
    credential_options(blob, no_cache=False)
