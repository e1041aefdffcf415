"""The ``grpc.aio`` side: ``cloud_run_channel`` and ``local_channel`` as in the sync module, returning
``grpc.aio.Channel``, and ``id_token_interceptors`` for a channel built by hand.

The token goes in through gcptoken's interceptors, always the last on the channel: no interceptor
of the caller's ever sees it. A cached token goes in without leaving the loop; a fetch runs in a
thread of its own (see source), awaited no longer than the call's timeout, never a blocking call on
the event loop; concurrent RPCs share one fetch. A failed fetch raises
``grpc.aio.AioRpcError`` (UNAUTHENTICATED, UNAVAILABLE for network trouble, DEADLINE_EXCEEDED past
the call's timeout) from the call, as any failed RPC does.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, Iterable, Sequence
from typing import Any

import grpc
import grpc.aio

from gcptoken.credentials import Credentials
from gcptoken.integrations.audience import AUTHORIZATION
from gcptoken.integrations.grpc.channels import ChannelOptions, local_credentials
from gcptoken.integrations.grpc.source import TokenSource
from gcptoken.integrations.grpc.targets import dial_target

__all__ = ["cloud_run_channel", "id_token_interceptors", "local_channel"]

RequestIterator = Iterable[Any] | AsyncIterable[Any]


class _Authorizing:
    def __init__(self, source: TokenSource) -> None:
        self.source = source

    async def _authorized(self, details: grpc.aio.ClientCallDetails) -> grpc.aio.ClientCallDetails:
        if details.credentials is not None:  # a call's own call credentials replace the token (never two)
            return details
        metadata, timeout = await self.source.authorized_async(details.metadata, details.timeout)
        return grpc.aio.ClientCallDetails(
            details.method, timeout, grpc.aio.Metadata(*metadata), details.credentials, details.wait_for_ready
        )


class _UnaryUnary(_Authorizing, grpc.aio.UnaryUnaryClientInterceptor):
    async def intercept_unary_unary(self, continuation: Any, client_call_details: Any, request: Any) -> Any:
        return await continuation(await self._authorized(client_call_details), request)


class _UnaryStream(_Authorizing, grpc.aio.UnaryStreamClientInterceptor):
    async def intercept_unary_stream(self, continuation: Any, client_call_details: Any, request: Any) -> Any:
        return await continuation(await self._authorized(client_call_details), request)


class _StreamUnary(_Authorizing, grpc.aio.StreamUnaryClientInterceptor):
    async def intercept_stream_unary(
        self, continuation: Any, client_call_details: Any, request_iterator: RequestIterator
    ) -> Any:
        return await continuation(await self._authorized(client_call_details), request_iterator)


class _StreamStream(_Authorizing, grpc.aio.StreamStreamClientInterceptor):
    async def intercept_stream_stream(
        self, continuation: Any, client_call_details: Any, request_iterator: RequestIterator
    ) -> Any:
        return await continuation(await self._authorized(client_call_details), request_iterator)


def id_token_interceptors(
    audience: str, credentials: Credentials | None = None, *, header: str = AUTHORIZATION
) -> list[grpc.aio.ClientInterceptor]:
    """The four interceptors (grpc.aio files each under one kind of RPC) adding an ID token for
    ``audience``: ``grpc.aio.secure_channel(target, creds, interceptors=[*yours,
    *id_token_interceptors(AUD)])``. Put them LAST: grpc.aio runs interceptors in list order, and
    any interceptor after these sees the token. Give them a TLS or local channel: they add the
    token to whatever channel they are on, over ``grpc.aio.insecure_channel`` in plaintext (the
    channel helpers build only TLS or local ones)."""
    return _interceptors(TokenSource(audience, credentials, header))


def _interceptors(source: TokenSource) -> list[grpc.aio.ClientInterceptor]:
    return [_UnaryUnary(source), _UnaryStream(source), _StreamUnary(source), _StreamStream(source)]


def cloud_run_channel(
    host: str,
    credentials: Credentials | None = None,
    *,
    audience: str | None = None,
    header: str = AUTHORIZATION,
    root_certificates: bytes | None = None,
    options: ChannelOptions = (),
    compression: grpc.Compression | None = None,
    interceptors: Sequence[grpc.aio.ClientInterceptor] = (),
) -> grpc.aio.Channel:
    """As gcptoken.integrations.grpc.cloud_run_channel, for grpc.aio (create it inside the loop that
    uses it); ``interceptors`` run before the token is added (a logging one never sees it)."""
    target, audience = dial_target(host, audience, "https", "host")
    source = TokenSource(audience, credentials, header)
    channel_credentials = grpc.ssl_channel_credentials(root_certificates)
    return _channel(target, channel_credentials, options, compression, interceptors, source)


def local_channel(
    target: str,
    credentials: Credentials | None = None,
    *,
    audience: str | None = None,
    header: str = AUTHORIZATION,
    options: ChannelOptions = (),
    compression: grpc.Compression | None = None,
    interceptors: Sequence[grpc.aio.ClientInterceptor] = (),
) -> grpc.aio.Channel:
    """As gcptoken.integrations.grpc.local_channel, for grpc.aio."""
    target, audience = dial_target(target, audience, "http")
    source = TokenSource(audience, credentials, header)
    return _channel(target, local_credentials(target), options, compression, interceptors, source)


def _channel(
    target: str,
    channel_credentials: grpc.ChannelCredentials,
    options: ChannelOptions,
    compression: grpc.Compression | None,
    interceptors: Sequence[grpc.aio.ClientInterceptor],
    source: TokenSource,
) -> grpc.aio.Channel:
    every = [*interceptors, *_interceptors(source)]  # the caller's first, gcptoken's last
    return grpc.aio.secure_channel(target, channel_credentials, options, compression, every)
