"""Presets for callers Google vouches for: service accounts that Google's products call as
(Pub/Sub push, Cloud Tasks, Cloud Scheduler, Eventarc, Workflows), and Compute Engine VMs proving
which instance they are (``format=full`` identity tokens).

Both are Google-signed ID tokens (Google's certs, issuer ``https://accounts.google.com``, also
``accounts.google.com`` without the scheme, as google-auth's ``verify_oauth2_token`` accepts:
google/oauth2/id_token.py ``_GOOGLE_ISSUERS``). What tells one caller from another is not the
signature (any Google account can get one for any audience) but the claims checked here.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection
from typing import Any

from gcptoken import endpoints
from gcptoken.errors import InvalidArgumentError, VerificationError
from gcptoken.verify.presets import Preset

__all__ = ["compute_engine", "google_caller", "service_account_emails"]

# Every service account's email ends so: …@PROJECT.iam., …@appspot., …@developer., Google's own
# service agents (…@gcp-sa-….iam.) and …@system.gserviceaccount.com. ASCII only (see presets).
_SERVICE_ACCOUNT = re.compile(r"[a-z0-9][a-z0-9._+-]{0,99}@(?:[a-z0-9-]+\.)*gserviceaccount\.com", re.I | re.ASCII)
_UNBOUNDED = float("-inf")


def service_account_emails(accounts: str | Collection[str], what: str = "service_accounts") -> frozenset[str]:
    """The allowed emails, lowercased (Google's tokens carry service accounts' emails in lower
    case; the IAM API lowercases an account's id). InvalidArgumentError unless each is one."""
    values = (accounts,) if isinstance(accounts, str) else tuple(accounts or ())
    if not values:
        raise InvalidArgumentError(f"{what} must name at least one service account's email")
    for value in values:
        if not isinstance(value, str) or not _SERVICE_ACCOUNT.fullmatch(value.strip()):
            raise InvalidArgumentError(
                f"{str(value)[:100]!r} is not a service account's email (NAME@PROJECT.iam.gserviceaccount.com); "
                "for people's tokens, allow emails instead (Policy(emails=…), --email)"
            )
    return frozenset(value.strip().lower() for value in values)


def _check_account(claims: dict[str, Any], allowed: frozenset[str]) -> None:
    email = claims.get("email")
    if email is None:
        raise VerificationError(
            "missing_claim", "token has no 'email' claim, so it names no service account (Google adds it for callers)"
        )
    if type(email) is not str or email.lower() not in allowed:
        shown = repr(email[:100]) if type(email) is str else "(not a string)"
        raise VerificationError("email_not_allowed", f"caller {shown} is not one of the allowed service accounts")
    verified = claims.get("email_verified")
    if verified is not True:
        state = "absent" if "email_verified" not in claims else f"it is {json.dumps(verified)[:20]}"
        raise VerificationError("email_not_verified", f"token 'email_verified' is not true ({state})")


def google_caller(service_accounts: str | Collection[str]) -> Preset:
    """Google-signed ID tokens whose ``email`` is one of ``service_accounts`` and marked
    ``email_verified: true``: what Pub/Sub, Cloud Tasks, Scheduler, Eventarc and Workflows send."""
    allowed = service_account_emails(service_accounts)

    def rule(claims: dict[str, Any], now: float, skew: float) -> float:
        _check_account(claims, allowed)
        return _UNBOUNDED

    return Preset(
        "google_caller", endpoints.OAUTH2_CERTS_V3, endpoints.GOOGLE_ISSUERS, frozenset({"RS256"}), claims_rule=rule
    )


# What each of compute_engine's values can be, so that one that can never match is refused rather
# than silently admitting nothing: project IDs (a letter, then letters, digits, hyphens; "example.com:"
# before it for the old domain-scoped ones) or numbers; zones as Google names them (a region such as
# us-central1 names no zone); instance IDs (numbers) or names (RFC 1035 labels); license IDs (numbers).
_NUMBER = re.compile(r"0*[1-9][0-9]{0,19}", re.ASCII)
_RULES: dict[str, tuple[re.Pattern[str], str]] = {
    "projects": (
        re.compile(r"(?:[a-z0-9][a-z0-9.-]*:)?[a-z][a-z0-9-]{0,61}[a-z0-9]|0*[1-9][0-9]{0,19}", re.ASCII),
        "a project ID (my-project) or number",
    ),
    "zones": (re.compile(r"[a-z]+(?:-[a-z]+)*[0-9]+-[a-z]", re.ASCII), "a zone such as us-central1-a (not a region)"),
    "instances": (
        re.compile(r"[a-z](?:[-a-z0-9]{0,61}[a-z0-9])?|0*[1-9][0-9]{0,19}", re.ASCII),
        "an instance ID or name",
    ),
    "licenses": (_NUMBER, "a license ID (a number such as 1000201; licenses=TRUE is the VM's request, not this)"),
}


def _values(given: Collection[str | int] | str | int | None, what: str) -> frozenset[str] | None:
    if given is None:
        return None
    if isinstance(given, str | int):
        values: tuple[object, ...] = (given,)
    elif isinstance(given, Collection) and not isinstance(given, bytes | dict):
        values = tuple(given)
    else:
        raise InvalidArgumentError(f"{what} must be a list of names or numbers, not {type(given).__name__}")
    if not values:
        raise InvalidArgumentError(f"{what} must be a non-empty list of names or numbers")
    pattern, form = _RULES[what]
    checked = set()
    for value in values:
        text = str(value).strip() if type(value) in (str, int) else None
        if text is not None and what == "zones":
            text = text.rsplit("/", 1)[-1]  # projects/N/zones/Z too
        if text is None or not pattern.fullmatch(text):
            shown = repr(value)[:80] if type(value) in (str, int) else type(value).__name__
            raise InvalidArgumentError(f"{what}: {shown} is not {form}")
        checked.add(text)
    return frozenset(checked)


def _shown(value: Any) -> str:
    return repr(value[:100]) if type(value) is str else str(value) if type(value) is int else "(absent or not a string)"


def _field(instance: dict[str, Any], name: str) -> str | None:
    value = instance.get(name)
    return str(value) if type(value) in (str, int) else None


def compute_engine(
    projects: Collection[str | int] | str | int,
    zones: Collection[str] | str | None = None,
    instances: Collection[str | int] | str | int | None = None,
    licenses: Collection[str | int] | str | int | None = None,
    service_accounts: str | Collection[str] | None = None,
) -> Preset:
    """A VM's ``format=full`` identity token, from one of ``projects`` (IDs or numbers), and when
    given: in one of ``zones`` (``us-central1-a``), one of ``instances`` (IDs, or names: a name is
    unique only within its project and zone), carrying at least one of ``licenses`` (license IDs,
    numbers; the VM's metadata request must include its licences), run as one of ``service_accounts``. The claims are
    those of https://cloud.google.com/compute/docs/instances/verifying-instance-identity
    (``google.compute_engine``: project_id, project_number, zone, instance_id, instance_name,
    instance_creation_timestamp, license_id)."""
    allowed_projects = _values(projects, "projects")
    if allowed_projects is None:
        raise InvalidArgumentError("projects is required: any VM of any project can get a token for your audience")
    allowed_zones = _values(zones, "zones")
    allowed_instances = _values(instances, "instances")
    allowed_licenses = _values(licenses, "licenses")
    accounts = None if service_accounts is None else service_account_emails(service_accounts)

    def rule(claims: dict[str, Any], now: float, skew: float) -> float:
        google = claims.get("google")
        instance = google.get("compute_engine") if type(google) is dict else None
        if type(instance) is not dict:
            raise VerificationError(
                "missing_claim",
                "token has no 'google.compute_engine' claim: a standard-format token says nothing of the VM "
                "(it must ask the metadata server for format=full)",
            )
        if not {_field(instance, "project_id"), _field(instance, "project_number")} & allowed_projects:
            raise VerificationError(
                "project_not_allowed",
                f"project {_shown(instance.get('project_id'))} is not one of the allowed projects",
            )
        if allowed_zones is not None and _field(instance, "zone") not in allowed_zones:
            raise VerificationError("zone_not_allowed", f"zone {_shown(instance.get('zone'))} is not allowed")
        if allowed_instances is not None and not (
            {_field(instance, "instance_id"), _field(instance, "instance_name")} & allowed_instances
        ):
            shown = _shown(instance.get("instance_name"))
            raise VerificationError("instance_not_allowed", f"instance {shown} is not one of the allowed instances")
        if allowed_licenses is not None:
            carried = instance.get("license_id")
            if not isinstance(carried, list):
                raise VerificationError(
                    "license_not_allowed",
                    "token carries no 'license_id' (the VM must ask the metadata server with &licenses=TRUE)",
                )
            if not {str(value) for value in carried if type(value) in (str, int)} & allowed_licenses:
                raise VerificationError("license_not_allowed", "the VM carries none of the required licenses")
        if accounts is not None:
            _check_account(claims, accounts)
        return _UNBOUNDED

    return Preset(
        "compute_engine", endpoints.OAUTH2_CERTS_V3, endpoints.GOOGLE_ISSUERS, frozenset({"RS256"}), claims_rule=rule
    )
