"""What Cloud Run's front door answers and what it forwards, as documented and as seen.

- The token: ``Authorization: Bearer ID_TOKEN`` or ``X-Serverless-Authorization: Bearer ID_TOKEN``;
  when both are sent, only ``X-Serverless-Authorization`` is checked and ``Authorization`` goes to
  the container untouched, for the app's own scheme
  (https://cloud.google.com/run/docs/authenticating/service-to-service#acquire-token; the rule as
  the Cloud Run team confirmed it in https://github.com/GoogleCloudPlatform/cloud-run-proxy/pull/25).
- The checked token is forwarded with its signature replaced by ``SIGNATURE_REMOVED_BY_GOOGLE``
  (https://cloud.google.com/run/docs/troubleshooting#signature-removed), so the container can read
  its claims but cannot replay it elsewhere.
- A refused token is a 401 with ``WWW-Authenticate: Bearer error="invalid_token"
  error_description="The access token could not be verified"`` and an HTML "Error: Unauthorized"
  page; no token, or a caller without ``roles/run.invoker``, is a 403 "Error: Forbidden … Your
  client does not have permission to get URL … from this server." (Google's front-end pages, as
  https://cloud.google.com/run/docs/troubleshooting and public reports of the 401 show them).
- Headers added to what is forwarded: ``X-Forwarded-For`` (the client appended),
  ``X-Forwarded-Proto``, ``Forwarded``, ``X-Cloud-Trace-Context`` and ``traceparent`` (a client's
  own trace context is kept); client-sent ``X-Google-*`` headers are removed, that name pattern
  being Google's (https://cloud.google.com/run/docs/container-contract,
  https://cloud.google.com/functions/docs/reference/headers).
"""

from __future__ import annotations

import html
import secrets

__all__ = [
    "REMOVED_SIGNATURE",
    "SERVERLESS_AUTHORIZATION",
    "forbidden",
    "forwarded_headers",
    "strip_signature",
    "unauthorized",
]

SERVERLESS_AUTHORIZATION = b"x-serverless-authorization"
REMOVED_SIGNATURE = "SIGNATURE_REMOVED_BY_GOOGLE"
_CHALLENGE = b'Bearer error="invalid_token" error_description="The access token could not be verified"'
Answer = tuple[int, list[tuple[bytes, bytes]], bytes]


def _page(status: int, title: str, heading: str, sentence: str) -> Answer:
    body = (
        "<html><head>\n"
        '<meta http-equiv="content-type" content="text/html;charset=utf-8">\n'
        f"<title>{status} {title}</title>\n"
        "</head>\n"
        "<body text=#000000 bgcolor=#ffffff>\n"
        f"<h1>Error: {heading}</h1>\n"
        f"<h2>{sentence}</h2>\n"
        "<h2></h2>\n"
        "</body></html>\n"
    ).encode()
    headers = [(b"content-type", b"text/html; charset=UTF-8"), (b"content-length", b"%d" % len(body))]
    return status, headers, body


def _path(path: str) -> str:
    return html.escape(path[:200])  # a request's path is the caller's: never markup on the page


def unauthorized(path: str) -> Answer:
    """A token was sent but not accepted (not an ID token, wrong audience or issuer, expired, bad signature)."""
    status, headers, body = _page(
        401,
        "Unauthorized",
        "Unauthorized",
        f"Your client does not have permission to the requested URL <code>{_path(path)}</code>.",
    )
    return status, [*headers, (b"www-authenticate", _CHALLENGE)], body


def forbidden(path: str) -> Answer:
    """No token, or a caller not bound to ``roles/run.invoker`` on the service."""
    return _page(
        403,
        "Forbidden",
        "Forbidden",
        f"Your client does not have permission to get URL <code>{_path(path)}</code> from this server.",
    )


def strip_signature(token: str) -> str:
    """``header.payload.SIGNATURE_REMOVED_BY_GOOGLE``: the claims stay readable, the token unusable."""
    header, payload, _ = token.split(".", 2)
    return f"{header}.{payload}.{REMOVED_SIGNATURE}"


def forwarded_headers(headers: list[tuple[bytes, bytes]], client: str | None, scheme: str) -> list[tuple[bytes, bytes]]:
    """``headers`` less any ``x-google-*``, plus what Cloud Run adds for the container."""
    kept: list[tuple[bytes, bytes]] = []
    prior_for = b""
    trace = traceparent = None
    for name, value in headers:
        lower = name.lower()
        if lower.startswith(b"x-google-"):
            continue
        if lower == b"x-forwarded-for":
            prior_for = value
            continue
        if lower in (b"x-forwarded-proto", b"forwarded"):
            continue  # the front door's own word, never the client's
        if lower == b"x-cloud-trace-context":
            trace = value
        elif lower == b"traceparent":
            traceparent = value
        kept.append((lower, value))
    peer = (client or "").encode("ascii", "replace")
    trace_id = secrets.token_hex(16)
    span = secrets.randbits(63) or 1
    kept.append((b"x-forwarded-for", prior_for + b", " + peer if prior_for else peer))
    kept.append((b"x-forwarded-proto", scheme.encode("ascii")))
    kept.append((b"forwarded", b'for="' + peer + b'";proto=' + scheme.encode("ascii")))
    if trace is None:
        kept.append((b"x-cloud-trace-context", f"{trace_id}/{span};o=1".encode()))
    if traceparent is None:
        kept.append((b"traceparent", f"00-{trace_id}-{span:016x}-01".encode()))
    return kept
