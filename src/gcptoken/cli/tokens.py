"""``gcptoken id`` and ``gcptoken access``."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable

from gcptoken import checks
from gcptoken.cache.rules import cache_key
from gcptoken.cli.run_flags import token_header
from gcptoken.credentials import (
    DEFAULT_SCOPES,
    Credentials,
    GcloudCredentials,
    ImpersonatedCredentials,
    MetadataCredentials,
    ServiceAccountCredentials,
    UserCredentials,
    load_credentials,
)
from gcptoken.credentials.adc import find_credentials
from gcptoken.credentials.base import QUOTA_PROJECT_HEADER, quota_project
from gcptoken.errors import InvalidArgumentError, TokenRequestError
from gcptoken.tokens import Token
from gcptoken.untrusted import is_token_text

__all__ = ["checked_audience", "checked_chain", "credentials_for", "run_access", "run_id", "run_jwt"]


def checked_audience(audience: str, what: str = "the audience") -> str:
    """The library's audience rule (checks.audience), and its note on a URL audience with a path
    or query said here, once, as one ``gcptoken: note:`` line on stderr."""
    checked = checks.audience(audience, what)
    checks.note_audience_once(checked, lambda note: print(f"gcptoken: note: {note}", file=sys.stderr))
    return checked


def _emit(
    token: Token, output: str, field: str, name: str = "Authorization", extra: dict[str, str] | None = None
) -> None:
    """``token`` printed as ``output``; ``name``: the header a header format puts it in, ``extra``:
    other headers the ``headers`` format adds (the quota project, as AccessTokenAuth sends it)."""
    if not is_token_text(token.value):  # every source refuses one already; none is ever printed
        raise TokenRequestError(f"the {field} obtained is no token (it holds spaces, control or non-ASCII characters)")
    if output == "token":
        text = token.value
    elif output == "header":
        text = f"{name}: Bearer {token.value}"
    elif output == "headers":  # a JSON object of headers: what MCP clients' headers commands print
        text = json.dumps({name: f"Bearer {token.value}", **(extra or {})})
    elif output == "claims":
        text = json.dumps(token.claims, indent=2)
    else:
        text = json.dumps({field: token.value, "expires_at": token.expires_at.isoformat()}, indent=2)
    sys.stdout.write(text + "\n")


def _audience(args: argparse.Namespace, credentials: Credentials) -> str:
    positional, option = args.audience_arg, args.audience
    if positional is not None and option is not None and positional != option:
        raise InvalidArgumentError("give the audience once: AUDIENCE or --audience, not two different ones")
    audience = positional if positional is not None else option
    if audience is None:
        if isinstance(credentials, UserCredentials):
            return credentials.default_audience  # the one ID token Google issues a user
        raise InvalidArgumentError("an audience is required, e.g. gcptoken id https://SERVICE.a.run.app")
    return checked_audience(audience)


def checked_chain(args: argparse.Namespace) -> str | None:
    """--impersonate-service-account, checked: given, it must name at least one account (an empty
    value never falls back silently to the caller's own identity)."""
    chain: str | None = getattr(args, "impersonate_service_account", None)
    if chain is None:
        return None
    emails = [email.strip() for email in chain.split(",")]
    if not any(emails):
        raise InvalidArgumentError("--impersonate-service-account is empty; name a service account email")
    for email in emails:
        if not email or "@" not in email or not checks.printable(email):
            raise InvalidArgumentError(
                f"--impersonate-service-account: {email[:80]!r} is not a service account email (A,B,C: no empty names)"
            )
    return ",".join(emails)


def _with_impersonation_options(credentials: Credentials, include_email: bool, lifetime: int | None) -> Credentials:
    """--include-email and --lifetime for a credential that impersonates by itself (an
    impersonated_service_account file, an external_account file with an impersonation URL)."""
    if not (include_email or lifetime is not None):
        return credentials
    if not isinstance(credentials, ImpersonatedCredentials):
        raise InvalidArgumentError(
            "--include-email and --lifetime apply only when impersonating: --impersonate-service-account, "
            "or a credential file that impersonates"
        )
    return ImpersonatedCredentials(
        credentials.source,
        credentials.target,
        credentials.delegates,
        include_email=include_email or credentials.include_email,
        lifetime=credentials.lifetime if lifetime is None else lifetime,
        iam_base=credentials.iam_base,
    )


def credentials_for(args: argparse.Namespace) -> Credentials:
    """The credential the options name: --credentials, else ADC discovery (--source forces one),
    wrapped in impersonation when --impersonate-service-account is given."""
    token_format = getattr(args, "token_format", None)
    include_license = getattr(args, "include_license", False)
    include_email = getattr(args, "include_email", False)
    lifetime = getattr(args, "lifetime", None)
    chain = checked_chain(args)
    if include_license and token_format != "full":
        raise InvalidArgumentError("--include-license needs --token-format full")
    if lifetime is not None and not 1 <= lifetime <= 43200:
        raise InvalidArgumentError(f"--lifetime must be 1 to 43200 seconds, not {lifetime}")
    if chain and (token_format is not None or include_license):
        raise InvalidArgumentError("--token-format and --include-license do not apply to impersonated ID tokens")
    if getattr(args, "source", None) == "gcloud":  # gcloud impersonates by itself
        if args.credentials or token_format is not None:
            raise InvalidArgumentError("--source gcloud takes neither --credentials nor --token-format")
        return GcloudCredentials(chain, include_email=include_email, lifetime=lifetime)
    credentials = _base_credentials(args, token_format, include_license)
    if chain:
        return ImpersonatedCredentials.from_chain(
            credentials, chain, include_email=include_email, lifetime=3600 if lifetime is None else lifetime
        )
    return _with_impersonation_options(credentials, include_email, lifetime)


def _base_credentials(args: argparse.Namespace, token_format: str | None, include_license: bool) -> Credentials:
    if args.credentials:
        if getattr(args, "source", None) not in (None, "file"):
            raise InvalidArgumentError(f"--credentials and --source {args.source} exclude each other")
        credentials = load_credentials(args.credentials)
        where = "the --credentials file"
    else:
        found = find_credentials(getattr(args, "source", None))
        credentials, where = found.credentials, f"{found.source} ({found.location})"
    if isinstance(credentials, MetadataCredentials):
        return MetadataCredentials("full" if token_format == "full" else "standard", include_license)
    if token_format is not None or include_license:
        raise InvalidArgumentError(
            f"--token-format and --include-license apply only to the metadata server; the credential in use "
            f"comes from {where} (force the metadata server with --source metadata)"
        )
    return credentials


def _through_disk_cache(
    args: argparse.Namespace, credentials: Credentials, kind: str, subject: str, fetch: Callable[[], Token]
) -> Token:
    """Tokens from the on-disk cache unless --no-cache; credentials without a shared identity are
    never cached on disk."""
    identity = credentials.shared_identity()
    if args.no_cache or identity is None:
        return fetch()
    from gcptoken.cache.disk import DiskTokenCache, owner_of

    key = cache_key(identity, kind, subject)
    return DiskTokenCache().get_or_fetch(key, fetch, owner_of(identity), wait=args.timeout)


def run_id(args: argparse.Namespace) -> int:
    for given in (args.audience_arg, args.audience):
        if given is not None:
            checks.audience(given)  # before any credential is read or token minted
    if args.serverless_header and args.format not in ("header", "headers"):
        raise InvalidArgumentError("--serverless-header names the header of --format header or headers")
    credentials = credentials_for(args)
    audience = _audience(args, credentials)
    token = _through_disk_cache(
        args, credentials, "id_token", audience, lambda: credentials.id_token(audience, timeout=args.timeout)
    )
    _emit(token, args.format, "id_token", token_header(args))
    return 0


def run_access(args: argparse.Namespace) -> int:
    scopes = None if args.scopes is None else checks.scope_list(args.scopes, "--scopes")
    credentials = credentials_for(args)
    if args.subject is not None:  # its own cache entries: the subject is part of the identity
        if args.lifetime is not None:
            raise InvalidArgumentError("--lifetime does not apply with --subject (delegated tokens live an hour)")
        credentials = credentials.with_subject(args.subject)
    subject = " ".join(sorted(scopes or DEFAULT_SCOPES))
    token = _through_disk_cache(
        args, credentials, "access_token", subject, lambda: credentials.access_token(scopes, timeout=args.timeout)
    )
    project = quota_project(credentials)
    _emit(token, args.format, "access_token", extra={QUOTA_PROJECT_HEADER: project} if project else None)
    return 0


def run_jwt(args: argparse.Namespace) -> int:
    if args.audience is None and args.scopes is None:
        raise InvalidArgumentError(
            "gcptoken jwt needs one of --audience (the API, e.g. https://pubsub.googleapis.com/) or --scopes"
        )
    if args.audience is not None and args.scopes is not None:
        raise InvalidArgumentError("gcptoken jwt takes one of --audience or --scopes, not both")
    audience = None if args.audience is None else checks.audience(args.audience, "--audience")
    scopes = None if args.scopes is None else checks.scope_list(args.scopes, "--scopes")
    credentials = credentials_for(args)
    if not isinstance(credentials, ServiceAccountCredentials):
        raise InvalidArgumentError(
            f"self-signed JWTs need a service-account key; the credential in use is {credentials.description}"
        )
    token = credentials.self_signed_jwt(audience, scopes=scopes, lifetime=args.jwt_lifetime)
    _emit(token, args.format, "jwt")
    return 0
