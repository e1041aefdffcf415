"""OpenTelemetry's OTLP/HTTP exporters with an ID token on every export (a collector on Cloud Run):
a ``requests.Session`` carrying gcptoken's ``IdTokenAuth``, for the exporters' ``session=``
argument, or named in their credential-provider variable when only the environment configures them.

The exporters' ``headers=`` and ``OTEL_EXPORTER_OTLP_HEADERS`` are read once, when the exporter is
built: a token put there is refused an hour later, and so is every export after it. The session asks
gcptoken on each request instead (cached, renewed ahead of expiry). This module never imports
opentelemetry: the exporter is the caller's dependency, and it imports us.
"""

from __future__ import annotations

from gcptoken.extras import require

require("requests", "gcptoken.integrations.otel")  # before any import of its modules: one clear line if missing

import logging

import requests

from gcptoken.credentials import Credentials
from gcptoken.errors import GcpTokenError
from gcptoken.integrations.audience import AUTHORIZATION, audience_for
from gcptoken.integrations.requests_auth import IdTokenAuth

__all__ = ["ENTRY_POINT", "id_token_session"]

log = logging.getLogger("gcptoken.integrations")

# The value for OTEL_PYTHON_EXPORTER_OTLP_HTTP_CREDENTIAL_PROVIDER (or its _TRACES_, _METRICS_, _LOGS_
# forms): the exporters look it up among the ``opentelemetry_otlp_credential_provider`` entry points
# and call it without arguments for a requests.Session (opentelemetry-exporter-otlp-proto-http >= 1.37,
# ``_common._load_session_from_envvar``; https://github.com/open-telemetry/opentelemetry-python/pull/4689).
ENTRY_POINT = "gcptoken_http_id_token"


class _ExportAuth(IdTokenAuth):
    """IdTokenAuth that says on gcptoken's logger why an export went unsent: the exporter turns the
    error into a failed export (or its processor logs it), in its own words and at its own level."""

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        try:
            return super().__call__(request)
        except GcpTokenError as error:  # messages never carry a token or a key
            audience = self.audience or audience_for(str(request.url))
            log.error("gcptoken: no ID token for %s, so this export is not sent: %s", audience, error)
            raise


def id_token_session(
    *, audience: str | None = None, credentials: Credentials | None = None, header: str = AUTHORIZATION
) -> requests.Session:
    """A session for one OTLP/HTTP exporter (``OTLPSpanExporter(endpoint, session=...)``, and the
    metric and log exporters alike) that sends an ID token with every export.

    ``audience``: by default each request's ``scheme://host``, so an endpoint
    ``https://collector-xyz.a.run.app/v1/traces`` gets tokens for ``https://collector-xyz.a.run.app``,
    as Cloud Run expects; give one for a custom audience. ``credentials``: Application Default
    Credentials unless given. ``header="X-Serverless-Authorization"`` leaves ``Authorization`` to
    the collector's own scheme. Give each exporter its own session: an exporter closes its session
    when it shuts down."""
    session = requests.Session()
    session.auth = _ExportAuth(credentials, audience, header=header)
    return session
