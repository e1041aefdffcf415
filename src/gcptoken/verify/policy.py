"""Who may pass, beyond a valid signature, issuer, audience and time: the caller's own rules."""

from __future__ import annotations

import json
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from gcptoken.errors import InvalidArgumentError, VerificationError

__all__ = ["Policy"]


def _lowered(values: Collection[str] | None, what: str) -> frozenset[str] | None:
    if values is None:
        return None
    if isinstance(values, str):
        values = (values,)
    if not values or not all(isinstance(value, str) and value for value in values):
        raise InvalidArgumentError(f"{what} must be a non-empty list of non-empty strings")
    return frozenset(value.lower() for value in values)


@dataclass(frozen=True, init=False)
class Policy:
    """Rules applied after the token is otherwise valid. Every rule left at its default is off.

    - ``require_email_verified``: the ``email_verified`` claim must be JSON ``true``;
    - ``emails``: the ``email`` claim must be one of these (compared case-insensitively). An email
      the token itself marks ``email_verified: false`` never matches, so an unverified address
      (possible with Firebase password sign-up, say) cannot borrow someone else's;
    - ``hosted_domains``: the ``hd`` claim (the Google Workspace domain) must be one of these;
    - ``subjects``: the ``sub`` claim must be one of these (exact);
    - ``max_age``: seconds since ``iat`` beyond which a token is refused even before its ``exp``.
    """

    require_email_verified: bool
    emails: frozenset[str] | None
    hosted_domains: frozenset[str] | None
    subjects: frozenset[str] | None
    max_age: float | None

    def __init__(
        self,
        *,
        require_email_verified: bool = False,
        emails: Collection[str] | None = None,
        hosted_domains: Collection[str] | None = None,
        subjects: Collection[str] | None = None,
        max_age: float | None = None,
    ) -> None:
        if max_age is not None and not max_age > 0:
            raise InvalidArgumentError("max_age must be a positive number of seconds")
        if subjects is not None and isinstance(subjects, str):
            subjects = (subjects,)
        if subjects is not None and (not subjects or not all(isinstance(s, str) and s for s in subjects)):
            raise InvalidArgumentError("subjects must be a non-empty list of non-empty strings")
        object.__setattr__(self, "require_email_verified", bool(require_email_verified))
        object.__setattr__(self, "emails", _lowered(emails, "emails"))
        object.__setattr__(self, "hosted_domains", _lowered(hosted_domains, "hosted_domains"))
        object.__setattr__(self, "subjects", None if subjects is None else frozenset(subjects))
        object.__setattr__(self, "max_age", None if max_age is None else float(max_age))

    @property
    def is_empty(self) -> bool:
        lists = (self.emails, self.hosted_domains, self.subjects)
        return not self.require_email_verified and all(values is None for values in lists)

    def check(self, claims: dict[str, Any]) -> None:
        """The time-independent rules (``max_age`` is the verifier's, as it depends on the clock).
        Claims of any JSON type are refused with a VerificationError, never a TypeError."""
        verified = claims.get("email_verified")
        if self.require_email_verified and verified is not True:
            state = "absent" if "email_verified" not in claims else f"it is {json.dumps(verified)[:20]}"
            raise VerificationError("email_not_verified", f"token 'email_verified' is not true ({state})")
        if self.emails is not None:
            email = claims.get("email")
            if type(email) is not str or email.lower() not in self.emails:
                raise VerificationError("email_not_allowed", _refusal("email", claims, "email"))
            if verified is False:
                raise VerificationError("email_not_verified", "token marks its email as not verified")
        if self.hosted_domains is not None:
            domain = claims.get("hd")
            if type(domain) is not str or domain.lower() not in self.hosted_domains:
                hint = " (a personal account, not Google Workspace)" if "hd" not in claims else ""
                raise VerificationError("hosted_domain_not_allowed", _refusal("hosted domain", claims, "hd") + hint)
        if self.subjects is not None:
            subject = claims.get("sub")
            if type(subject) is not str or subject not in self.subjects:
                raise VerificationError("subject_not_allowed", _refusal("subject", claims, "sub"))


def _refusal(what: str, claims: dict[str, Any], name: str) -> str:
    """Why a claim fails an allow-list: absent, of the wrong JSON type, or simply not listed."""
    if name not in claims:
        return f"the token has no {name!r} claim, so no {what} is allowed"
    value = claims[name]
    if type(value) is not str:
        kinds = {bool: "a boolean", int: "a number", float: "a number", list: "a list", dict: "an object"}
        return f"the token's {name!r} is {kinds.get(type(value), 'null')}, not a string"
    return f"{what} {value[:100]!r} is not allowed"
