"""A sync channel whose every RPC carries ``authorization: Bearer <ID token>``:
``authorized_channel(channel, audience)`` wraps any ``grpc.Channel`` (the helpers' own, or one built
with other channel credentials) and puts the token in each call's metadata as the call is made.

Why a wrapper, not call credentials or interceptors: grpcio runs a Python metadata plugin in a new
thread for every RPC (grpc/grpc, src/python/grpcio/grpc/_cython/_cygrpc/credentials.pyx.pxi,
``_spawn_callback_in_thread``), about two thirds of a loopback unary RPC's rate, and its core
turns any plugin failure into UNAVAILABLE (src/core/credentials/call/plugin/plugin_credentials.cc);
grpc.intercept_channel's machinery costs a few percent more per RPC. Here a cached token costs a few
microseconds, and a fetch that fails ends the RPC with the status gRFC A83 gives (see failures), raised or
returned where grpc's own failed calls are. The wrapper adds the token on whatever channel it wraps:
give it a TLS or local one, as the helpers do (call credentials refuse insecure channels themselves).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc

from gcptoken.credentials import Credentials
from gcptoken.integrations.audience import AUTHORIZATION
from gcptoken.integrations.grpc.deferred import DeferredCall
from gcptoken.integrations.grpc.failures import FailedCall
from gcptoken.integrations.grpc.source import Metadata, TokenSource

__all__ = ["AuthorizedChannel", "authorized_channel"]


class _Callable:
    """What the four kinds of multi-callable share: the wrapped one, and the token source. Their
    methods take grpc's arguments as grpc's do: ``(request, timeout, metadata, credentials,
    wait_for_ready, compression)``, positionally or by name."""

    def __init__(self, inner: Any, source: TokenSource) -> None:
        self._inner, self._source = inner, source

    def _call(
        self,
        method: Callable[..., Any],
        request: Any,
        timeout: float | None = None,
        metadata: Metadata | None = None,
        credentials: grpc.CallCredentials | None = None,
        wait_for_ready: bool | None = None,
        compression: grpc.Compression | None = None,
    ) -> Any:
        if credentials is None:  # a call's own call credentials replace the channel's token (never two)
            metadata, timeout = self._source.authorized(metadata, timeout)
        return method(request, timeout, metadata, credentials, wait_for_ready, compression)

    def _started(self, method: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """For calls that hand back a call object (futures, response streams): a failed or late fetch
        is a failed call object, which raises when read, as grpc's own do."""
        try:
            return self._call(method, *args, **kwargs)
        except FailedCall as failed:
            return failed


class _UnaryResponse(_Callable):
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._call(self._inner, *args, **kwargs)

    def with_call(self, *args: Any, **kwargs: Any) -> Any:
        return self._call(self._inner.with_call, *args, **kwargs)

    def future(self, *args: Any, **kwargs: Any) -> Any:
        source = self._source
        if source.credentials.cached_id_token(source.audience) is not None:
            return self._started(self._inner.future, *args, **kwargs)
        # no token at hand: return at once, the call starts when the token comes (see deferred)
        deferred: DeferredCall

        def unless_cancelled(*call: Any) -> Any:
            return None if deferred.cancel_requested else self._inner.future(*call)

        deferred = DeferredCall(lambda: self._started(unless_cancelled, *args, **kwargs))
        return deferred


class _StreamResponse(_Callable):
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._started(self._inner, *args, **kwargs)


class _UnaryUnary(_UnaryResponse, grpc.UnaryUnaryMultiCallable):  # type: ignore[type-arg]
    pass


class _StreamUnary(_UnaryResponse, grpc.StreamUnaryMultiCallable):  # type: ignore[type-arg]
    pass


class _UnaryStream(_StreamResponse, grpc.UnaryStreamMultiCallable):  # type: ignore[type-arg]
    pass


class _StreamStream(_StreamResponse, grpc.StreamStreamMultiCallable):  # type: ignore[type-arg]
    pass


class AuthorizedChannel(grpc.Channel):
    """``channel``, its calls carrying ID tokens from ``source``; closing it closes ``channel``."""

    def __init__(self, channel: grpc.Channel, source: TokenSource) -> None:
        self.channel, self.source = channel, source

    def subscribe(self, callback: Callable[[grpc.ChannelConnectivity], None], try_to_connect: bool = False) -> None:
        self.channel.subscribe(callback, try_to_connect)

    def unsubscribe(self, callback: Callable[[grpc.ChannelConnectivity], None]) -> None:
        self.channel.unsubscribe(callback)

    # Serializers, and grpcio's private _registered_method (generated stubs and intercept_channel pass
    # it), go on to the wrapped channel as given.
    def unary_unary(self, method: str, *args: Any, **kwargs: Any) -> grpc.UnaryUnaryMultiCallable[Any, Any]:
        return _UnaryUnary(self.channel.unary_unary(method, *args, **kwargs), self.source)

    def unary_stream(self, method: str, *args: Any, **kwargs: Any) -> grpc.UnaryStreamMultiCallable[Any, Any]:
        return _UnaryStream(self.channel.unary_stream(method, *args, **kwargs), self.source)

    def stream_unary(self, method: str, *args: Any, **kwargs: Any) -> grpc.StreamUnaryMultiCallable[Any, Any]:
        return _StreamUnary(self.channel.stream_unary(method, *args, **kwargs), self.source)

    def stream_stream(self, method: str, *args: Any, **kwargs: Any) -> grpc.StreamStreamMultiCallable[Any, Any]:
        return _StreamStream(self.channel.stream_stream(method, *args, **kwargs), self.source)

    def close(self) -> None:
        self.channel.close()

    def __enter__(self) -> AuthorizedChannel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def authorized_channel(
    channel: grpc.Channel, audience: str, credentials: Credentials | None = None, *, header: str = AUTHORIZATION
) -> AuthorizedChannel:
    """``channel`` with an ID token for ``audience`` on every RPC, from ``credentials`` (default:
    Application Default Credentials) through gcptoken's cache: one fetch for any number of concurrent
    RPCs, refreshed ahead of expiry. A fetch that fails ends the RPC with UNAUTHENTICATED, or
    UNAVAILABLE for network trouble; the channel stays usable.

    The token goes on whatever ``channel`` is: over ``grpc.insecure_channel`` it crosses the network
    in plaintext, where anyone on the path can replay it until it expires (grpc's channels do not
    say how they were built, so this cannot check). Give it a TLS channel, or local credentials for
    loopback; the helpers (cloud_run_channel, local_channel) build only those."""
    return AuthorizedChannel(channel, TokenSource(audience, credentials, header))
