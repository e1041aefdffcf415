"""The request a workflow step ``call: http.post`` (or http.request) with ``auth: {type: OIDC}`` sends.

From https://cloud.google.com/workflows/docs/http-requests: User-Agent is
``GoogleCloudWorkflows; (+https://cloud.google.com/workflows/docs)``, appended after a space to a
User-Agent the step sets; a body with no Content-Type of the step's own is JSON-encoded and sent as
``application/json; charset=utf-8`` (bytes as ``application/octet-stream``); with a Content-Type of the
step's own it is encoded as that type says (JSON, form or text: sent here as given). The OIDC audience
is ``auth.audience``, else "the same value as url" (the page recommends the service's root URL).
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from gcptoken.errors import InvalidArgumentError
from gcptoken.senders.request import OutgoingRequest, checked_method, header, merged, user_headers

__all__ = ["step_request"]

LABEL = "Workflows"
USER_AGENT = "GoogleCloudWorkflows; (+https://cloud.google.com/workflows/docs)"


def _json_body(body: bytes) -> bytes:
    """The step's body, a value in the workflow, as Workflows encodes it: compact JSON."""
    try:
        value = json.loads(body.decode("utf-8"), parse_constant=_no_constant)
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    except (ValueError, RecursionError):  # not UTF-8, not JSON, NaN, a lone surrogate, too deep
        raise InvalidArgumentError(
            "a workflow step's body is a value, sent as JSON, and the data is not JSON; "
            "set a Content-Type header (e.g. text/plain) to send it as it is"
        ) from None


def _no_constant(name: str) -> object:
    raise ValueError(f"{name} is not JSON")


def step_request(
    url: str,
    body: bytes = b"",
    *,
    method: str | None = None,
    headers: Mapping[str, str] | None = None,
    audience: str | None = None,
) -> OutgoingRequest:
    chosen = checked_method(method, "POST", LABEL, body=body, body_rule=False)
    own = user_headers(headers, LABEL)
    agent = header(own, "User-Agent")
    sent = {"User-Agent": f"{agent} {USER_AGENT}" if agent else USER_AGENT}
    if body and header(own, "Content-Type") is None:
        body = _json_body(body)
        sent["Content-Type"] = "application/json; charset=utf-8"
    return OutgoingRequest("workflows", chosen, url, url if audience is None else audience, merged(own, sent), body)
