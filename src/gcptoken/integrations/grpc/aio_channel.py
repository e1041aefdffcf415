"""A ``grpc.aio`` channel that puts a cached token in a call's metadata itself, and leaves the rest
to gcptoken's interceptors.

grpc.aio's interceptor machinery (a task and a wrapped call per RPC) costs some 3-5 % of a loopback
unary RPC's rate (bench/grpc_auth_rows.py). A call object is made before anything is awaited, so
only a token already at hand can go in without it: ``Credentials.cached_id_token`` says whether
there is one without waiting. With one, the call goes to a channel without gcptoken's interceptors;
without one (the first call, the first after the token is due for refresh), to a twin channel with
them, which awaits the fetch. The twin has a connection of its own (grpcio shares none between
channels), opened only when such a call comes, and idle between refreshes.
"""

from __future__ import annotations

from typing import Any

import grpc
import grpc.aio

from gcptoken.integrations.grpc.source import Metadata, TokenSource

__all__ = ["AuthorizedAioChannel"]


class _Callable:
    def __init__(self, direct: Any, intercepted: Any, source: TokenSource) -> None:
        self._direct, self._intercepted, self._source = direct, intercepted, source

    def _route(self, metadata: Metadata | None) -> tuple[Any, Metadata | None]:
        token = self._source.credentials.cached_id_token(self._source.audience)
        if token is None:
            return self._intercepted, metadata
        return self._direct, self._source.metadata(metadata, token.value)


class _UnaryRequest(_Callable):
    def __call__(self, request: Any, *, metadata: Metadata | None = None, **kwargs: Any) -> Any:
        call, metadata = self._route(metadata)
        return call(request, metadata=metadata, **kwargs)


class _StreamRequest(_Callable):
    def __call__(
        self,
        request_iterator: Any = None,
        timeout: float | None = None,
        metadata: Metadata | None = None,
        **kwargs: Any,
    ) -> Any:
        call, metadata = self._route(metadata)
        return call(request_iterator, timeout=timeout, metadata=metadata, **kwargs)


class AuthorizedAioChannel(grpc.aio.Channel):
    """``direct`` and ``intercepted`` (the same channel plus gcptoken's interceptors) as one."""

    def __init__(self, direct: grpc.aio.Channel, intercepted: grpc.aio.Channel, source: TokenSource) -> None:
        self.direct, self.intercepted, self.source = direct, intercepted, source

    async def __aenter__(self) -> AuthorizedAioChannel:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self, grace: float | None = None) -> None:
        await self.intercepted.close(grace)
        await self.direct.close(grace)

    def get_state(self, try_to_connect: bool = False) -> grpc.ChannelConnectivity:
        return self.direct.get_state(try_to_connect)

    async def wait_for_state_change(self, last_observed_state: grpc.ChannelConnectivity) -> None:
        await self.direct.wait_for_state_change(last_observed_state)

    async def channel_ready(self) -> None:
        await self.direct.channel_ready()

    # Serializers and grpcio's private _registered_method go on to both channels as given.
    def unary_unary(self, method: str, *args: Any, **kwargs: Any) -> Any:
        pair = (self.direct.unary_unary(method, *args, **kwargs), self.intercepted.unary_unary(method, *args, **kwargs))
        return _UnaryRequest(*pair, self.source)

    def unary_stream(self, method: str, *args: Any, **kwargs: Any) -> Any:
        pair = (
            self.direct.unary_stream(method, *args, **kwargs),
            self.intercepted.unary_stream(method, *args, **kwargs),
        )
        return _UnaryRequest(*pair, self.source)

    def stream_unary(self, method: str, *args: Any, **kwargs: Any) -> Any:
        pair = (
            self.direct.stream_unary(method, *args, **kwargs),
            self.intercepted.stream_unary(method, *args, **kwargs),
        )
        return _StreamRequest(*pair, self.source)

    def stream_stream(self, method: str, *args: Any, **kwargs: Any) -> Any:
        pair = (
            self.direct.stream_stream(method, *args, **kwargs),
            self.intercepted.stream_stream(method, *args, **kwargs),
        )
        return _StreamRequest(*pair, self.source)
