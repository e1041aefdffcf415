"""``gcptoken decode``, ``verify`` and ``info``: looking at tokens."""

from __future__ import annotations

import argparse
import sys
import time
from typing import TYPE_CHECKING, Any

from gcptoken.cli.io import print_json, read_token
from gcptoken.errors import InvalidArgumentError, VerificationError
from gcptoken.tokens import decode
from gcptoken.verify.presets import GOOGLE, IAP

if TYPE_CHECKING:
    from gcptoken.verify.verifier import Verifier

__all__ = ["run_decode", "run_info", "run_verify"]


def _not_a_jwt(token: str) -> str | None:
    """What an opaque token is, when it is one people paste by mistake."""
    if token.startswith("ya29."):
        return "this is an opaque OAuth access token (ya29.…), not a JWT: use 'gcptoken info' to ask Google about it"
    if token.startswith("1//"):
        return "this looks like a refresh token, a long-lived secret, not a JWT; revoke it if it was shared by mistake"
    return None


def run_decode(args: argparse.Namespace) -> int:
    token = read_token(args.token)
    problem = _not_a_jwt(token)
    if problem is not None:
        raise VerificationError("malformed", problem)
    decoded = decode(token)
    result: dict[str, object] = {"header": decoded.header, "claims": decoded.claims}
    exp = decoded.claims.get("exp")
    if isinstance(exp, int | float) and not isinstance(exp, bool):
        result["expires_in"] = int(exp - time.time())
    print("gcptoken: decoded only, NOT verified (use 'gcptoken verify' to check it)", file=sys.stderr)
    print_json(result)
    return 0


def run_verify(args: argparse.Namespace) -> int:
    token = read_token(args.token)
    claims = _verifier(args).verify(token, now=args.now)
    print_json(claims)
    return 0


def _verifier(args: argparse.Namespace) -> Verifier:
    from gcptoken.verify.policy import Policy
    from gcptoken.verify.verifier import Verifier

    account = args.service_account
    policy = Policy(
        require_email_verified=args.require_email_verified,
        emails=args.email,
        hosted_domains=args.hd,
        subjects=None if account else args.subject,  # a service account's subject is checked by its preset
        max_age=args.max_age,
    )
    options: dict[str, Any] = {"policy": policy}
    if args.clock_skew is not None:
        options["clock_skew"] = args.clock_skew
    if account is not None:
        if args.preset or args.certs:
            raise InvalidArgumentError("--service-account names the keys: leave out --preset and --certs")
        return Verifier.service_account(account, args.audience, issuer=args.issuer, subject=args.subject, **options)
    if args.issuer and not args.certs:
        if len(args.issuer) != 1:
            raise InvalidArgumentError(
                "--issuer finds keys by discovery from one issuer; add --certs to accept several"
            )
        return Verifier.oidc(args.issuer[0], args.audience, **options)
    if args.certs:
        options["certs"] = args.certs
        options["discovery"] = False
    if args.issuer:
        options["issuers"] = args.issuer
    if args.preset == "firebase":
        if len(args.audience) != 1:
            raise InvalidArgumentError("--preset firebase takes one --audience: the Firebase project ID")
        return Verifier.firebase(args.audience[0], **options)
    return Verifier.from_preset(IAP if args.preset == "iap" else GOOGLE, args.audience, **options)


def run_info(args: argparse.Namespace) -> int:
    from gcptoken.verify.tokeninfo import tokeninfo

    print_json(tokeninfo(read_token(args.token), timeout=args.timeout))
    return 0
