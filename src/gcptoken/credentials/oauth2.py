"""Google's OAuth 2.0 token endpoint: one form POST, Google's error shape, token parsing."""

from __future__ import annotations

import base64
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from gcptoken.endpoints import safe_url
from gcptoken.errors import TokenRequestError, VerificationError
from gcptoken.http.flows import Flow, HttpRequest, json_body
from gcptoken.jose import compact
from gcptoken.tokens import MAX_LIFETIME, Token, expiry, plausible_time
from gcptoken.untrusted import is_token_text, one_line

if TYPE_CHECKING:
    from gcptoken.http.tls import ClientCertificate

__all__ = ["access_token_from", "basic_auth", "id_token_from", "post_form", "raise_for_refusal", "token_field"]

FORM_HEADERS = {"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"}


def basic_auth(client_id: str, client_secret: str | None) -> dict[str, str]:
    """HTTP Basic client authentication, as google-auth sends it to STS: ``id:secret`` as they are
    (Google's client ids and secrets hold no character that RFC 6749's form-encoding would change)."""
    pair = f"{client_id}:{client_secret or ''}"
    return {"Authorization": "Basic " + base64.b64encode(pair.encode("utf-8")).decode("ascii")}


def post_form(
    url: str,
    form: Mapping[str, str],
    describe: Mapping[str, Any],
    what: str = "token endpoint",
    headers: Mapping[str, str] | None = None,
    client_certificate: ClientCertificate | None = None,
) -> Flow[dict[str, Any]]:
    """POST ``form`` to a Google OAuth endpoint; the JSON answer, or TokenRequestError in Google's words."""
    response = yield HttpRequest(
        "POST",
        url,
        {**FORM_HEADERS, **(headers or {})},
        urlencode(form).encode("ascii"),
        describe=describe,
        client_certificate=client_certificate,
    )
    where = f"{what} {safe_url(url)}"
    body = json_body(response, where)
    raise_for_refusal(response.status, body, where)
    return body


def raise_for_refusal(status: int, body: Mapping[str, Any], where: str) -> None:
    """TokenRequestError carrying Google's own words, in either of its error shapes: OAuth's
    ``{"error", "error_description"}`` or the JSON APIs' ``{"error": {"code", "message", "status"}}``.
    The words are the upstream's: shown escaped and capped (``untrusted.one_line``), as text only."""
    if status == 200:
        return
    error = body.get("error")
    description = body.get("error_description")
    if isinstance(error, dict):
        description = error.get("message")
        error = error.get("status")
    error = one_line(error) if isinstance(error, str) and error else None
    description = one_line(description) if isinstance(description, str) and description else None
    words = ": ".join(part for part in (error, description) if part)
    raise TokenRequestError(
        f"{where} refused the request (HTTP {status}): {words or 'no error given'}",
        status=status,
        error=error,
        description=description,
        retryable=status >= 500 or status in (408, 429),
    )


def token_field(body: Mapping[str, Any], name: str, where: str) -> str:
    """The token in field ``name`` of an upstream's answer; a TokenRequestError (that never shows
    it) when it is missing or is no token (``untrusted.is_token_text``)."""
    value = body.get(name)
    if not isinstance(value, str) or not value:
        raise TokenRequestError(f"{where} answered without a {name!r}")
    if not is_token_text(value):
        raise TokenRequestError(
            f"{where} answered a {name!r} that is no token (it holds spaces, control or non-ASCII characters)"
        )
    return value


def id_token_from(body: Mapping[str, Any], where: str, name: str = "id_token") -> Token:
    """The ID token in field ``name`` of an upstream's answer; its expiry is its own ``exp`` claim
    (refused unless a plausible time; clamped as ``tokens.MAX_LIFETIME`` says)."""
    value = token_field(body, name, where)
    try:
        exp = compact.parse(value).claims.get("exp")
    except VerificationError:
        raise TokenRequestError(f"{where} returned an {name} that is not a JWT") from None
    if not plausible_time(exp):
        raise TokenRequestError(f"{where} returned an {name} whose exp is not a plausible time")
    return Token(value, expiry(exp), "id_token")


_DIGITS = frozenset("0123456789")


def _seconds(raw: object) -> float | None:
    """``expires_in`` as Google sends it, a number or its decimal string, in seconds; None for
    what is no number of seconds (negative, a boolean, "1e3", "3_600", non-ASCII digits)."""
    if isinstance(raw, str):
        text = raw.strip()
        if not text or not set(text) <= _DIGITS:
            return None
        return MAX_LIFETIME if len(text) > 9 else int(text)  # no int() of 5,000 digits
    if not isinstance(raw, int | float) or isinstance(raw, bool) or not raw >= 0:  # NaN too
        return None
    return min(raw, MAX_LIFETIME)


def access_token_from(body: Mapping[str, Any], where: str, now: float | None = None) -> Token:
    """The ``access_token`` of a token response; ``expires_in`` may be an int or a string, and
    is clamped to ``tokens.MAX_LIFETIME`` (see there why clamped, not refused)."""
    value = token_field(body, "access_token", where)
    seconds = _seconds(body.get("expires_in", 3600))
    if seconds is None:
        raise TokenRequestError(f"{where} returned an expires_in that is no number of seconds")
    moment = int(time.time() if now is None else now)
    return Token(value, expiry(moment + int(seconds), moment), "access_token")
