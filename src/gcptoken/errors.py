"""The error hierarchy: one root, subclasses that carry data (never secrets)."""

from __future__ import annotations

__all__ = [
    "CredentialsError",
    "GcpTokenError",
    "HardwareKeyError",
    "InvalidArgumentError",
    "RefusedError",
    "TokenRequestError",
    "TransportError",
    "VerificationError",
    "then",
]


def then(message: object, sentence: str) -> str:
    """``message`` (an error, often ending in Google's own words, which may end a sentence
    themselves) followed by our ``sentence``: one full stop between them, never two, and the
    sentence starts with a capital."""
    text, sentence = str(message).rstrip(), sentence[:1].upper() + sentence[1:]
    return f"{text} {sentence}" if text.endswith((".", "!", "?", "…")) else f"{text}. {sentence}"


class GcpTokenError(Exception):
    """Root of every error gcptoken raises on purpose."""


class CredentialsError(GcpTokenError):
    """A credential could not be found, read or understood."""


class HardwareKeyError(CredentialsError):
    """A key in a PKCS#11 token or a TPM could not be used: the device, its module, the key or its
    PIN (never carries the PIN)."""


class TokenRequestError(GcpTokenError):
    """A token endpoint answered with a refusal or an unreadable response.

    ``status`` is the HTTP status, ``error`` and ``description`` are the server's
    ``error`` / ``error_description`` (Google's wording, with control characters escaped and cut
    to 300 characters: an upstream's text is shown, never obeyed by a terminal).
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        error: str | None = None,
        description: str | None = None,
        retryable: bool = False,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.error = error
        self.description = description
        self.retryable = retryable


class TransportError(GcpTokenError):
    """The endpoint could not be reached or the exchange broke off."""


class VerificationError(GcpTokenError):
    """A token failed verification; ``reason`` is a short machine-readable code."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class InvalidArgumentError(GcpTokenError, ValueError):
    """A caller passed a value that cannot work (an empty audience, say)."""


class RefusedError(CredentialsError):
    """A credential cannot give what was asked, by Google's rules (a user's ID token for an
    audience other than its OAuth client, say): a refusal, as a 4xx from Google would be."""
