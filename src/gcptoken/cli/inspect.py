"""``gcptoken decode``, ``verify`` and ``info``: looking at tokens."""

from __future__ import annotations

import argparse
import sys
import time
from typing import TYPE_CHECKING, Any

from gcptoken.cli.io import print_json, read_token
from gcptoken.errors import InvalidArgumentError, VerificationError
from gcptoken.tokens import decode, not_a_jwt
from gcptoken.verify.presets import GOOGLE, IAP

if TYPE_CHECKING:
    from gcptoken.verify.verifier import Verifier

__all__ = ["run_decode", "run_info", "run_verify"]


def _refuse_a_non_jwt(token: str, *, access_tokens: bool = False) -> None:
    """decode, verify and info: an opaque token or pasted JSON is named, with what to use instead
    (info takes access tokens: tokeninfo reads them)."""
    found = not_a_jwt(token)
    if found is not None and not (access_tokens and found[0] == "access_token"):
        raise VerificationError("malformed", found[1])


def run_decode(args: argparse.Namespace) -> int:
    token = read_token(args.token)
    _refuse_a_non_jwt(token)
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
    _refuse_a_non_jwt(token)
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
    if args.caller:
        return _google_caller(args, options)
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


def _google_caller(args: argparse.Namespace, options: dict[str, Any]) -> Verifier:
    """``--caller``: Google-signed tokens of those service accounts, for ``--audience``."""
    from gcptoken.verify.verifier import Verifier

    given = {
        "--preset " + str(args.preset): args.preset not in (None, "google"),
        "--service-account": args.service_account is not None,
        "--issuer": bool(args.issuer),
        "--email": bool(args.email),
    }
    clashing = [flag for flag, present in given.items() if present]
    if clashing:
        raise InvalidArgumentError(
            f"--caller checks Google-signed tokens of the service accounts it names: leave out {', '.join(clashing)}"
        )
    if args.certs:
        options.update(certs=args.certs, discovery=False)
    return Verifier.google_caller(args.audience, args.caller, **options)


def run_info(args: argparse.Namespace) -> int:
    from gcptoken.verify.tokeninfo import tokeninfo

    token = read_token(args.token)
    _refuse_a_non_jwt(token, access_tokens=True)  # a refresh token or JSON is never sent to Google
    print_json(tokeninfo(token, timeout=args.timeout))
    return 0
