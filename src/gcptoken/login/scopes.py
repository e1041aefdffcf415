"""The scopes a sign-in asks for (per flow), refused before the sign-in when Google would not know
one, the few Google's device flow may grant, and what a token response granted of what was asked,
said in one line."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from gcptoken.checks import unknown_scopes
from gcptoken.errors import InvalidArgumentError
from gcptoken.untrusted import one_line

__all__ = [
    "BROWSER_SCOPES",
    "CLOUD_PLATFORM",
    "DEVICE_ALLOWED",
    "DEVICE_SCOPES",
    "device_only",
    "granted_scopes",
    "known_to_google",
    "not_granted",
    "shown",
    "unknown_said",
]

_AUTH = "https://www.googleapis.com/auth/"
CLOUD_PLATFORM = f"{_AUTH}cloud-platform"
BROWSER_SCOPES = ("openid", f"{_AUTH}userinfo.email", CLOUD_PLATFORM)
DEVICE_SCOPES = ("openid", "email", "profile")
# Google's device flow grants only these, and refuses a request naming any other with invalid_scope
# ("Invalid device flow scope: …"): cloud-platform is not among them.
# https://developers.google.com/identity/protocols/oauth2/limited-input-device#allowedscopes
DEVICE_ALLOWED = frozenset(
    {
        *DEVICE_SCOPES,
        f"{_AUTH}userinfo.email",
        f"{_AUTH}userinfo.profile",
        f"{_AUTH}drive.appdata",
        f"{_AUTH}drive.file",
        f"{_AUTH}youtube",
        f"{_AUTH}youtube.readonly",
    }
)
# Google's token responses name the OpenID Connect scopes email and profile by their userinfo URLs.
_SAME = {"email": f"{_AUTH}userinfo.email", "profile": f"{_AUTH}userinfo.profile"}


def _canonical(scope: str) -> str:
    return _SAME.get(scope, scope)


def shown(scopes: Iterable[str]) -> str:
    """``openid, userinfo.email, cloud-platform``: short names, as a person reads them."""
    return ", ".join(scope.removeprefix(_AUTH) for scope in scopes) or "none"


def granted_scopes(answer: Mapping[str, Any]) -> tuple[str, ...] | None:
    """The scopes a token response says it granted (its ``scope``), or None when it does not say."""
    scope = answer.get("scope")
    return tuple(scope.split()) if isinstance(scope, str) else None


def not_granted(wanted: Sequence[str], granted: Sequence[str]) -> tuple[str, ...]:
    """Those of ``wanted`` that ``granted`` lacks (``email`` and ``userinfo.email`` are one scope)."""
    have = {_canonical(scope) for scope in granted}
    return tuple(scope for scope in wanted if _canonical(scope) not in have)


def device_only(scopes: Iterable[str]) -> bool:
    """Whether every scope is one the device flow can grant (a sign-in it may have made)."""
    return all(scope in DEVICE_ALLOWED for scope in scopes)


def known_to_google(scopes: Sequence[str], what: str = "--scopes") -> tuple[str, ...]:
    """``scopes``, or InvalidArgumentError naming those Google would not know. Checked before the
    browser opens: Google refuses them on its own error page, which never comes back to us."""
    unknown = unknown_said(scopes)
    if unknown:
        raise InvalidArgumentError(f"{what}: {unknown}; several are separated by commas or spaces)")
    return tuple(scopes)


def unknown_said(scopes: Iterable[str]) -> str:
    """``not a scope Google knows: NAMES (use …`` (the parenthesis left open for more), or "" when
    Google knows every one: one wording for login's refusal and access's explanation."""
    unknown = unknown_scopes(scopes)
    if not unknown:
        return ""
    named = one_line(", ".join(unknown), 200)
    return f"not a scope Google knows: {named} (use openid, email, profile or a URL like {CLOUD_PLATFORM}"
