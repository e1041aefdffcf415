"""``gcptoken sign-jwt`` and ``gcptoken sign-blob``: signatures as the credential's service account.

Everything given is read and checked before a credential is; on any error stdout stays empty."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, BinaryIO

from gcptoken.cli.tokens import credentials_for
from gcptoken.credentials import signing
from gcptoken.errors import InvalidArgumentError, TokenRequestError
from gcptoken.private_files import UnreadableFile, file_error, read_small_file
from gcptoken.untrusted import UnreadableJson, is_token_text, json_object

__all__ = ["MAX_CLAIMS", "run_sign_blob", "run_sign_jwt"]

MAX_CLAIMS = 64 * 1024  # claims are a few hundred bytes; this is a typo'd file name's guard


def _read(argument: str, what: str, limit: int) -> bytes:
    """``argument``'s bytes: stdin for ``-``, else the regular file it names, at most ``limit``."""
    if argument == "-":
        stdin: BinaryIO | None = getattr(sys.stdin, "buffer", None)  # None: the shell closed it (<&-)
        if stdin is None:
            raise InvalidArgumentError(f"{what} is to be read from stdin, which is closed")
        data = stdin.read(limit + 1)
        if len(data) > limit:
            raise InvalidArgumentError(f"{what} on stdin is larger than {limit} bytes")
        return data
    try:
        return read_small_file(argument, limit)
    except (OSError, UnreadableFile) as exc:
        raise file_error(argument, what, exc, InvalidArgumentError) from None


def _claims(argument: str) -> dict[str, Any]:
    if argument == "-" or argument.startswith("@"):
        where = "--claims on stdin" if argument == "-" else f"--claims file {argument[1:]}"
        what = "--claims" if argument == "-" else "--claims file"
        data: bytes | str = _read("-" if argument == "-" else argument[1:], what, MAX_CLAIMS)
    else:
        where, data = "--claims", argument
    try:
        return json_object(data)
    except UnreadableJson as exc:
        raise InvalidArgumentError(f"{where} {exc}: the claims must be one JSON object") from None


def run_sign_jwt(args: argparse.Namespace) -> int:
    from gcptoken.credentials.signing import checked_jwt_claims
    from gcptoken.jose import compact

    claims = checked_jwt_claims(_claims(args.claims), add_exp=False)
    token = credentials_for(args).sign_jwt(claims, timeout=args.timeout)
    if not is_token_text(token.value):  # an upstream's answer is printed only if it is one token
        raise TokenRequestError("the signed JWT obtained is no token (spaces, control or non-ASCII characters)")
    if args.format == "token":
        sys.stdout.write(token.value + "\n")
        return 0
    key_id = compact.parse(token.value).header.get("kid")
    answer = {"keyId": key_id, "signedJwt": token.value, "expires_at": token.expires_at.isoformat()}
    sys.stdout.write(json.dumps(answer, indent=2) + "\n")
    return 0


def run_sign_blob(args: argparse.Namespace) -> int:
    data = _read(args.file, "the data to sign" if args.file == "-" else "the file to sign", signing.MAX_BLOB)
    signature = credentials_for(args).sign_blob(data, timeout=args.timeout)
    if args.format == "signature":
        sys.stdout.write(signature.base64 + "\n")
    else:  # IAM signBlob's own field names
        sys.stdout.write(json.dumps({"keyId": signature.key_id, "signedBlob": signature.base64}, indent=2) + "\n")
    return 0
