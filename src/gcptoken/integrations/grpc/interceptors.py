"""Client interceptors that put ``authorization: Bearer <ID token>`` on every RPC of a sync channel
(``grpc.intercept_channel(channel, IdTokenInterceptor(audience))``); the channel helpers use them.

Why interceptors and not only call credentials: grpcio runs a Python metadata plugin in a new
thread for every RPC (grpc/grpc, src/python/grpcio/grpc/_cython/_cygrpc/credentials.pyx.pxi,
``_spawn_callback_in_thread``), which costs about two thirds of a loopback unary RPC's rate, and its
core turns any plugin failure into UNAVAILABLE (src/core/credentials/call/plugin/
plugin_credentials.cc). An interceptor adds a cached token at the cost of a dict read and fails an
RPC with the status gRFC A83 gives (see failures). It adds the header on any channel it is given,
so give it a TLS or local one, as the helpers do: call credentials refuse insecure channels themselves.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, NamedTuple

import grpc

from gcptoken import checks
from gcptoken.credentials import Credentials, load_credentials
from gcptoken.errors import GcpTokenError
from gcptoken.integrations.audience import AUTHORIZATION, id_token_header
from gcptoken.integrations.grpc.failures import FailedCall, details_for, status_for

__all__ = ["IdTokenInterceptor", "TokenSource"]

Metadata = Iterable[tuple[str, str | bytes]]


class TokenSource:
    """What every gRPC integration shares: the credentials, the audience, and the metadata key
    (gRPC keys are lower case: ``authorization`` or ``x-serverless-authorization``)."""

    def __init__(self, audience: str, credentials: Credentials | None, header: str) -> None:
        self.audience = checks.audience(audience)
        self.credentials = credentials or load_credentials()
        self.key = id_token_header(header).lower()

    def metadata(self, given: Metadata | None, token: str) -> list[tuple[str, str | bytes]]:
        """``given`` with the token in place of any value the caller set for the same key."""
        kept = [(key, value) for key, value in given or () if key.lower() != self.key]
        kept.append((self.key, f"Bearer {token}"))
        return kept

    def failure(self, error: GcpTokenError) -> tuple[grpc.StatusCode, str]:
        return status_for(error), details_for(error, self.audience)


class _Details(NamedTuple):
    method: str
    timeout: float | None
    metadata: Any  # grpc.ClientCallDetails says a tuple; any sequence of pairs works
    credentials: grpc.CallCredentials | None
    wait_for_ready: bool | None
    compression: grpc.Compression | None


class _CallDetails(_Details, grpc.ClientCallDetails):
    """grpc.ClientCallDetails is an interface with no constructor: this is the usual concrete one."""


class IdTokenInterceptor(
    grpc.UnaryUnaryClientInterceptor,
    grpc.UnaryStreamClientInterceptor,
    grpc.StreamUnaryClientInterceptor,
    grpc.StreamStreamClientInterceptor,
):
    """An ID token for ``audience`` on every RPC, from ``credentials`` (default: Application Default
    Credentials) through gcptoken's cache: one fetch for any number of concurrent RPCs, refreshed
    ahead of expiry. A fetch that fails ends the RPC with UNAUTHENTICATED, or UNAVAILABLE for
    network trouble, and the channel stays usable."""

    def __init__(self, audience: str, credentials: Credentials | None = None, *, header: str = AUTHORIZATION) -> None:
        self.source = TokenSource(audience, credentials, header)

    def _authorized(self, details: grpc.ClientCallDetails) -> _CallDetails | FailedCall:
        source = self.source
        try:
            token = source.credentials.id_token(source.audience).value
        except GcpTokenError as error:
            return FailedCall(*source.failure(error))
        return _CallDetails(
            details.method,
            details.timeout,
            source.metadata(details.metadata, token),
            details.credentials,
            details.wait_for_ready,
            getattr(details, "compression", None),
        )

    def intercept_unary_unary(
        self, continuation: Any, client_call_details: grpc.ClientCallDetails, request: Any
    ) -> Any:
        details = self._authorized(client_call_details)
        return details if isinstance(details, FailedCall) else continuation(details, request)

    def intercept_unary_stream(
        self, continuation: Any, client_call_details: grpc.ClientCallDetails, request: Any
    ) -> Any:
        details = self._authorized(client_call_details)
        return details if isinstance(details, FailedCall) else continuation(details, request)

    def intercept_stream_unary(
        self, continuation: Any, client_call_details: grpc.ClientCallDetails, request_iterator: Iterator[Any]
    ) -> Any:
        details = self._authorized(client_call_details)
        return details if isinstance(details, FailedCall) else continuation(details, request_iterator)

    def intercept_stream_stream(
        self, continuation: Any, client_call_details: grpc.ClientCallDetails, request_iterator: Iterator[Any]
    ) -> Any:
        details = self._authorized(client_call_details)
        return details if isinstance(details, FailedCall) else continuation(details, request_iterator)
