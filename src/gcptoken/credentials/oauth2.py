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
from gcptoken.tokens import Token, utc_from_epoch

if TYPE_CHECKING:
    from gcptoken.http.tls import ClientCertificate

__all__ = ["access_token_from", "basic_auth", "id_token_from", "post_form", "raise_for_refusal"]

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
    ``{"error", "error_description"}`` or the JSON APIs' ``{"error": {"code", "message", "status"}}``."""
    if status == 200:
        return
    error = body.get("error")
    description = body.get("error_description")
    if isinstance(error, dict):
        description = error.get("message")
        error = error.get("status")
    words = ": ".join(str(part) for part in (error, description) if part)
    raise TokenRequestError(
        f"{where} refused the request (HTTP {status}): {words or 'no error given'}",
        status=status,
        error=str(error) if error else None,
        description=str(description) if description else None,
        retryable=status >= 500 or status in (408, 429),
    )


def _field(body: Mapping[str, Any], name: str, where: str) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value:
        raise TokenRequestError(f"{where} answered without a {name!r}")
    return value


def id_token_from(body: Mapping[str, Any], where: str) -> Token:
    """The ``id_token`` of a token response; its expiry is its own ``exp`` claim."""
    value = _field(body, "id_token", where)
    try:
        exp = compact.parse(value).claims.get("exp")
    except VerificationError as exc:
        raise TokenRequestError(f"{where} returned an id_token that is not a JWT") from exc
    if not isinstance(exp, int | float) or isinstance(exp, bool):
        raise TokenRequestError(f"{where} returned an id_token without a numeric exp")
    return Token(value, utc_from_epoch(exp), "id_token")


def access_token_from(body: Mapping[str, Any], where: str, now: float | None = None) -> Token:
    """The ``access_token`` of a token response; ``expires_in`` may be an int or a string."""
    value = _field(body, "access_token", where)
    raw = body.get("expires_in", 3600)
    try:
        expires_in = int(raw)
    except (TypeError, ValueError):
        raise TokenRequestError(f"{where} returned a non-numeric expires_in") from None
    return Token(value, utc_from_epoch(int(time.time() if now is None else now) + expires_in), "access_token")
