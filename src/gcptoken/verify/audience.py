"""The audience a verifier accepts: mandatory, and never a wildcard by accident.

A token's ``aud`` is the one thing that says it was minted for *this* service: without the check,
any Google-signed token (for any other service, from any caller) passes. So every verifier needs
its audience, and the only way to skip the check is to pass ``ANY_AUDIENCE_INSECURE`` (alone, and
never where a service guards its requests: the integrations refuse a verifier built with it).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Final

from gcptoken.errors import InvalidArgumentError

__all__ = ["ANY_AUDIENCE_INSECURE", "AnyAudience", "Audience", "accepted_audiences", "refuse_in_a_service"]


class AnyAudience:
    """The type of ``ANY_AUDIENCE_INSECURE``: an object, not a string, so no configuration value
    (an environment variable saying ``*``, say) can ever turn into it."""

    def __repr__(self) -> str:
        return "gcptoken.verify.ANY_AUDIENCE_INSECURE"


ANY_AUDIENCE_INSECURE: Final = AnyAudience()

Audience = str | Sequence[str] | AnyAudience

_REQUIRED = (
    "audience is required: the 'aud' your service expects (its URL, say); without it, tokens minted "
    "for any other service would pass"
)


def accepted_audiences(audience: object) -> frozenset[str] | None:
    """The audiences to accept, or None for ``ANY_AUDIENCE_INSECURE``; InvalidArgumentError for a
    missing, empty or wildcard-looking audience."""
    if isinstance(audience, AnyAudience):
        return None
    if audience is None:
        raise InvalidArgumentError(_REQUIRED)
    if isinstance(audience, str):
        values: tuple[object, ...] | None = (audience,)
    elif isinstance(audience, Iterable) and not isinstance(audience, bytes | bytearray | Mapping):
        values = tuple(audience)
    else:
        values = None
    if not values:
        raise InvalidArgumentError(
            _REQUIRED if values is not None else "audience must be a string or a list of strings"
        )
    if any(isinstance(value, AnyAudience) for value in values):
        raise InvalidArgumentError(
            "ANY_AUDIENCE_INSECURE stands alone: beside it, the other audiences would mean nothing"
        )
    for value in values:
        if not isinstance(value, str):
            raise InvalidArgumentError("audience must be a non-empty string or list of strings")
        if not value.strip():
            raise InvalidArgumentError(_REQUIRED)
        if value != value.strip():
            raise InvalidArgumentError(f"audience {value[:100]!r} has spaces around it: no token's 'aud' would match")
        if value == "*":
            raise InvalidArgumentError(
                "audience '*' is not a wildcard: it accepts only tokens minted for the literal audience '*'; "
                "pass your service's URL"
            )
    return frozenset(value for value in values if isinstance(value, str))  # all are, checked above


def refuse_in_a_service(any_audience: bool, where: str) -> None:
    """Integrations guard a service's requests: one that accepts tokens minted for any other
    service is the very mistake the audience exists to stop."""
    if any_audience:
        raise InvalidArgumentError(
            f"{where} refuses a verifier built with ANY_AUDIENCE_INSECURE: a service must check that tokens "
            "were minted for it; pass its URL (or custom audience) as the audience"
        )
