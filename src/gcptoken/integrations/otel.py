"""OpenTelemetry's OTLP/HTTP exporters with an ID token on every export (a collector on Cloud Run):
a ``requests.Session`` that signs each request with gcptoken's ID token, for the exporters'
``session=`` argument, or named in their credential-provider variable when only the environment
configures them.

The exporters' ``headers=`` and ``OTEL_EXPORTER_OTLP_HEADERS`` are read once, when the exporter is
built: a token put there is refused an hour later, and so is every export after it. The session asks
gcptoken on each request instead (cached, renewed ahead of expiry). A token that cannot be had never
raises into the exporter: the session answers for the collector, in terms every exporter version
(>= 1.37) understands: 503 when it may pass (the exporter retries, with its own backoff), 401 when
the credential is refused or missing (not retried). A failing credential is asked again at most once
per BACKOFF seconds, and said on gcptoken's logger once, then once a minute while it fails, and once
when it works again. This module never imports opentelemetry: the exporter imports us.
"""

from __future__ import annotations

from gcptoken.extras import require

require("requests", "gcptoken.integrations.otel")  # before any import of its modules: one clear line if missing

import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import requests

from gcptoken import checks
from gcptoken.credentials import Credentials, load_credentials
from gcptoken.errors import GcpTokenError, TokenRequestError, TransportError
from gcptoken.integrations.audience import AUTHORIZATION, audience_for, id_token_header
from gcptoken.integrations.failure_report import FailureReport
from gcptoken.integrations.requests_auth import IdTokenAuth
from gcptoken.loopback import is_loopback_host

__all__ = [
    "AUDIENCE_VARIABLE",
    "BACKOFF",
    "ENTRY_POINT",
    "HEADER_VARIABLE",
    "IdTokenSession",
    "id_token_session",
    "session_from_environment",
]

log = logging.getLogger("gcptoken.integrations")

# The value for OTEL_PYTHON_EXPORTER_OTLP_HTTP_CREDENTIAL_PROVIDER (or its _TRACES_, _METRICS_, _LOGS_
# forms): the exporters look it up among the ``opentelemetry_otlp_credential_provider`` entry points
# and call it without arguments for a requests.Session (opentelemetry-exporter-otlp-proto-http >= 1.37,
# ``_common._load_session_from_envvar``; https://github.com/open-telemetry/opentelemetry-python/pull/4689).
ENTRY_POINT = "gcptoken_http_id_token"

# What the environment alone can say besides the credential (ADC): the audience, the header.
AUDIENCE_VARIABLE = "GCPTOKEN_OTEL_AUDIENCE"
HEADER_VARIABLE = "GCPTOKEN_OTEL_HEADER"

# After a failure, exports within this many seconds get the same answer without asking again.
BACKOFF = 30.0


def _transient(error: GcpTokenError) -> bool:
    """Worth trying again soon: the endpoint unreachable, or an answer that says so (5xx, 429)."""
    if isinstance(error, TransportError):
        return True
    return isinstance(error, TokenRequestError) and (
        error.retryable or error.status == 429 or (error.status or 0) >= 500
    )


def _answer(url: str, status: int, reason: str, text: str, retry_after: float) -> requests.Response:
    """A response from gcptoken in the collector's place: what the exporter reads of one (status,
    reason, text, ``ok``, ``Retry-After``) on 1.37 and later."""
    response = requests.Response()
    response.status_code, response.reason, response.url = status, reason, url
    response._content = text.encode("utf-8")
    response.encoding = "utf-8"
    response.headers["content-type"] = "text/plain; charset=utf-8"
    response.headers["retry-after"] = str(max(1, round(retry_after)))
    return response


class _Signed(requests.auth.AuthBase):
    """One request's token, already fetched."""

    def __init__(self, auth: IdTokenAuth, audience: str, token: str) -> None:
        self.auth, self.audience, self.token = auth, audience, token

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        return self.auth.sign(request, self.audience, self.token)


class IdTokenSession(requests.Session):
    """See :func:`id_token_session`. Credentials are found at the first request, not when the
    session is built (auto-instrumentation builds it at start-up, before anything could say why)."""

    def __init__(
        self,
        *,
        audience: str | None = None,
        credentials: Credentials | None = None,
        header: str = AUTHORIZATION,
        clock: Callable[[], float] = time.monotonic,
        broken: str | None = None,
    ) -> None:
        super().__init__()
        self.audience = None if audience is None else checks.audience(audience)
        self.header = id_token_header(header)
        self.broken = broken  # why no export can be signed (a bad setting): said instead of sending
        self.clock = clock
        self.report = FailureReport(log, clock)
        self._credentials = credentials
        self._auth: IdTokenAuth | None = None
        self._failed: tuple[float, int, str, str] | None = None  # until when; status, reason, line
        self._lock = threading.Lock()

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> requests.Response:
        target = url.decode() if isinstance(url, bytes) else str(url)
        audience = self.audience or audience_for(target)
        refused = self.broken or _cleartext(target)
        if refused:
            self.report.failed(refused)
            return _answer(target, 403, "Forbidden", refused, BACKOFF)
        with self._lock:
            failed, now = self._failed, self.clock()
        if failed is not None and now < failed[0]:
            self.report.failed(failed[3])
            return _answer(target, failed[1], failed[2], failed[3], failed[0] - now)
        try:
            auth = self._signer()
            token = auth.credentials.id_token(audience).value
        except GcpTokenError as error:  # messages never carry a token or a key
            return self._failure(target, audience, error)
        with self._lock:
            self._failed = None
        self.report.succeeded(f"gcptoken: ID tokens for {audience} again")
        kwargs["auth"] = _Signed(auth, audience, token)
        try:
            return super().request(method, url, *args, **kwargs)
        except GcpTokenError as error:  # the renewal after a refused token failed
            return self._failure(target, audience, error)

    def _signer(self) -> IdTokenAuth:
        with self._lock:
            auth = self._auth
        if auth is None:
            auth = IdTokenAuth(self._credentials or load_credentials(), self.audience, header=self.header)
            with self._lock:
                self._auth = auth
        return auth

    def _failure(self, url: str, audience: str, error: GcpTokenError) -> requests.Response:
        line = f"gcptoken: no ID token for {audience}, so this export is not sent: {error}"
        status, reason = (503, "Service Unavailable") if _transient(error) else (401, "Unauthorized")
        with self._lock:
            self._failed = (self.clock() + BACKOFF, status, reason, line)
        self.report.failed(line)
        return _answer(url, status, reason, line, BACKOFF)


def _cleartext(url: str) -> str | None:
    """Why a token must not go to ``url``: plain http to a host that is not this machine (a local
    collector on loopback is fine)."""
    parts = urlsplit(url)
    if parts.scheme.lower() != "http" or is_loopback_host(parts.hostname):
        return None
    return (
        f"gcptoken: no ID token is sent in cleartext to http://{parts.netloc}: "
        "give the exporter an https:// endpoint (plain http only to this machine)"
    )


def id_token_session(
    *, audience: str | None = None, credentials: Credentials | None = None, header: str = AUTHORIZATION
) -> requests.Session:
    """A session for one OTLP/HTTP exporter (``OTLPSpanExporter(endpoint, session=...)``, and the
    metric and log exporters alike) that sends an ID token with every export.

    ``audience``: by default each request's ``scheme://host``, so an endpoint
    ``https://collector-xyz.a.run.app/v1/traces`` gets tokens for ``https://collector-xyz.a.run.app``,
    as Cloud Run expects; give one for a custom audience. ``credentials``: Application Default
    Credentials (found at the first export) unless given. ``header="X-Serverless-Authorization"``
    leaves ``Authorization`` to the collector's own scheme. A token goes only to the origin of the
    request it was made for (a redirect elsewhere loses it), never in cleartext to a host other than
    this machine. Give each exporter its own session: an exporter sets its ``verify``, ``cert`` and
    headers on it, and closes it when it shuts down."""
    return IdTokenSession(audience=audience, credentials=credentials, header=header)


def session_from_environment() -> requests.Session:
    """The entry point's session: :func:`id_token_session` with ``GCPTOKEN_OTEL_AUDIENCE`` and
    ``GCPTOKEN_OTEL_HEADER`` when set. A bad value never stops the app (auto-instrumentation calls
    this at start-up): each export is refused unsent, the reason said in one line."""
    audience, header = os.environ.get(AUDIENCE_VARIABLE) or None, os.environ.get(HEADER_VARIABLE) or AUTHORIZATION
    variable = AUDIENCE_VARIABLE
    try:
        if audience is not None:
            checks.audience(audience)
        variable = HEADER_VARIABLE
        id_token_header(header)
    except GcpTokenError as error:
        return IdTokenSession(broken=f"gcptoken: no export is sent: {variable}: {error}")
    return IdTokenSession(audience=audience, header=header)
