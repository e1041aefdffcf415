"""``grpc.CallCredentials`` carrying ID tokens, for channels and calls a program builds itself:
``grpc.composite_channel_credentials(grpc.ssl_channel_credentials(), id_token_call_credentials())``,
or ``stub.Method(request, credentials=...)``. Sync and ``grpc.aio`` channels alike.

The audience is ``audience=`` or, per call, the one the call's service URL gives (see targets).
grpcio runs the plugin in a thread of its own for each RPC, under ``grpc.aio`` too (never on the
event loop), so fetching a token there blocks nothing else; that thread is also why the channel
helpers put the token in themselves (see authorized). gRPC core reports every plugin failure as
UNAVAILABLE, whatever the plugin says (plugin_credentials.cc): a refused token fetch is
``UNAVAILABLE: Getting metadata from plugin failed with error: gcptoken: …`` here, where the
helpers' channels say UNAUTHENTICATED.
"""

from __future__ import annotations

import grpc

from gcptoken import checks
from gcptoken.credentials import Credentials, load_credentials
from gcptoken.errors import GcpTokenError
from gcptoken.integrations.audience import AUTHORIZATION, id_token_header
from gcptoken.integrations.grpc.failures import details_for
from gcptoken.integrations.grpc.targets import audience_from_service_url

__all__ = ["IdTokenPlugin", "id_token_call_credentials"]


class _TokenFetchFailed(Exception):
    """What the plugin hands grpc for a failed fetch: grpc shows only ``str()`` of it."""


class IdTokenPlugin(grpc.AuthMetadataPlugin):
    def __init__(self, credentials: Credentials | None = None, audience: str | None = None, *, header: str) -> None:
        self.credentials = credentials or load_credentials()
        self.audience = None if audience is None else checks.audience(audience)
        self.key = id_token_header(header).lower()

    def __call__(self, context: grpc.AuthMetadataContext, callback: grpc.AuthMetadataPluginCallback) -> None:
        audience = self.audience
        try:
            if audience is None:
                audience = audience_from_service_url(context.service_url)
            token = self.credentials.id_token(audience).value
        except GcpTokenError as error:
            callback((), _TokenFetchFailed(details_for(error, audience or context.service_url)))
            return
        callback(((self.key, f"Bearer {token}"),), None)


def id_token_call_credentials(
    credentials: Credentials | None = None, *, audience: str | None = None, header: str = AUTHORIZATION
) -> grpc.CallCredentials:
    """Call credentials adding ``authorization: Bearer <ID token>`` (or ``x-serverless-authorization``
    with ``header=``) from ``credentials`` (default: Application Default Credentials), through
    gcptoken's cache. gRPC sends call credentials only over TLS or local channels."""
    plugin = IdTokenPlugin(credentials, audience, header=header)
    return grpc.metadata_call_credentials(plugin, name="gcptoken-id-token")
