"""``gcptoken decode``, ``verify`` and ``info``: looking at tokens."""

from __future__ import annotations

import argparse
import sys
import time

from gcptoken.cli.io import print_json, read_token
from gcptoken.endpoints import GOOGLE_ISSUERS
from gcptoken.tokens import decode

__all__ = ["run_decode", "run_info", "run_verify"]


def run_decode(args: argparse.Namespace) -> int:
    decoded = decode(read_token(args.token))
    result: dict[str, object] = {"header": decoded.header, "claims": decoded.claims}
    exp = decoded.claims.get("exp")
    if isinstance(exp, int | float) and not isinstance(exp, bool):
        result["expires_in"] = int(exp - time.time())
    print("gcptoken: decoded only, NOT verified (use 'gcptoken verify' to check it)", file=sys.stderr)
    print_json(result)
    return 0


def run_verify(args: argparse.Namespace) -> int:
    from gcptoken.verify import Verifier

    token = read_token(args.token)
    verifier = Verifier(
        audience=args.audience,
        certs=args.certs,
        issuers=args.issuer or GOOGLE_ISSUERS,
        clock_skew=args.clock_skew,
    )
    claims = verifier.verify(token, now=args.now)
    print_json(claims)
    return 0


def run_info(args: argparse.Namespace) -> int:
    from gcptoken.tokeninfo import tokeninfo

    print_json(tokeninfo(read_token(args.token), timeout=args.timeout))
    return 0
