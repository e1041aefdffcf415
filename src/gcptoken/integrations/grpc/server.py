"""Verifying the ID tokens gRPC calls carry, on the receiving side: ``IdTokenServerInterceptor``
for ``grpc.server(..., interceptors=[...])`` and ``AioIdTokenServerInterceptor`` for
``grpc.aio.server``. A call without a token the verifier accepts ends with UNAUTHENTICATED and a
one-line reason (never the token); when the issuer's keys cannot be fetched, UNAVAILABLE. Handlers
read the verified claims with ``verified_claims()``."""

from __future__ import annotations

import contextvars
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import grpc
import grpc.aio

from gcptoken.errors import TransportError, VerificationError
from gcptoken.integrations.bearer import token_from
from gcptoken.verify.audience import refuse_in_a_service
from gcptoken.verify.verifier import Verifier

__all__ = ["AioIdTokenServerInterceptor", "IdTokenServerInterceptor", "verified_claims"]

log = logging.getLogger("gcptoken.integrations")
_claims: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar("gcptoken_grpc_claims", default=None)
_KINDS = ("unary_unary", "unary_stream", "stream_unary", "stream_stream")
Handler = Any  # grpc.RpcMethodHandler: generic only in the stubs


def verified_claims() -> dict[str, Any]:
    """The verified claims of the call being handled (inside a handler behind these interceptors)."""
    claims = _claims.get()
    if claims is None:
        raise LookupError("no verified call is being handled here (is the handler behind the interceptor?)")
    return claims


def _rebuilt(handler: Handler, wrap: Callable[[Callable[..., Any], bool], Callable[..., Any]]) -> Handler:
    """``handler`` of the same kind with its behaviour wrapped (``wrap(behaviour, response_streaming)``)."""
    for kind in _KINDS:
        behaviour = getattr(handler, kind)
        if behaviour is not None:
            make = getattr(grpc, f"{kind}_rpc_method_handler")
            return make(
                wrap(behaviour, handler.response_streaming),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
    return handler


class _Checking:
    def __init__(self, verifier: Verifier, header: str | None, name: str) -> None:
        refuse_in_a_service(verifier.any_audience, name)
        self.verifier = verifier
        self.header = (header or verifier.token_header).lower()

    def _token(self, details: grpc.HandlerCallDetails) -> str:
        value = dict(details.invocation_metadata or ()).get(self.header)
        # "Bearer <token>" in any header, as gcptoken's clients send it
        return token_from(value if isinstance(value, str) else None, "authorization")


def _status(error: VerificationError | TransportError) -> tuple[grpc.StatusCode, str]:
    if isinstance(error, TransportError):
        log.error("cannot verify tokens: %s", error)
        return grpc.StatusCode.UNAVAILABLE, "gcptoken: cannot verify tokens now"
    return grpc.StatusCode.UNAUTHENTICATED, f"gcptoken: {str(error).splitlines()[0] if str(error) else error.reason}"


class IdTokenServerInterceptor(_Checking, grpc.ServerInterceptor):
    """For a sync ``grpc.server``: every call needs a token ``verifier`` accepts, in the verifier's
    token header (``authorization``) unless ``header`` says otherwise."""

    def __init__(self, verifier: Verifier, *, header: str | None = None) -> None:
        super().__init__(verifier, header, "IdTokenServerInterceptor")

    def intercept_service(
        self, continuation: Callable[[grpc.HandlerCallDetails], Handler | None], handler_call_details: Any
    ) -> Handler | None:
        handler = continuation(handler_call_details)
        if handler is None:
            return None
        try:
            claims = self.verifier.verify(self._token(handler_call_details))
        except (VerificationError, TransportError) as error:
            code, text = _status(error)

            def refuse(request: Any, context: grpc.ServicerContext) -> Any:
                context.abort(code, text)

            return _rebuilt(handler, lambda _, streaming: refuse)
        return _rebuilt(handler, lambda behaviour, streaming: _sync_with(claims, behaviour, streaming))


def _sync_with(claims: dict[str, Any], behaviour: Callable[..., Any], streaming: bool) -> Callable[..., Any]:
    def call(request: Any, context: grpc.ServicerContext) -> Any:
        token = _claims.set(claims)
        try:
            return behaviour(request, context)
        finally:
            _claims.reset(token)

    def stream(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        token = _claims.set(claims)
        try:
            yield from behaviour(request, context)
        finally:
            _claims.reset(token)

    return stream if streaming else call


class AioIdTokenServerInterceptor(_Checking, grpc.aio.ServerInterceptor):
    """As IdTokenServerInterceptor, for ``grpc.aio.server`` (async handlers); tokens are verified
    without blocking the event loop (``Verifier.verify_async``)."""

    def __init__(self, verifier: Verifier, *, header: str | None = None) -> None:
        super().__init__(verifier, header, "AioIdTokenServerInterceptor")

    async def intercept_service(self, continuation: Any, handler_call_details: Any) -> Handler | None:
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        try:
            claims = await self.verifier.verify_async(self._token(handler_call_details))
        except (VerificationError, TransportError) as error:
            code, text = _status(error)

            async def refuse(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
                await context.abort(code, text)

            return _rebuilt(handler, lambda _, streaming: refuse)
        return _rebuilt(handler, lambda behaviour, streaming: _aio_with(claims, behaviour, streaming))


def _aio_with(claims: dict[str, Any], behaviour: Callable[..., Any], streaming: bool) -> Callable[..., Any]:
    async def call(request: Any, context: Any) -> Any:
        token = _claims.set(claims)
        try:
            return await behaviour(request, context)
        finally:
            _claims.reset(token)

    async def stream(request: Any, context: Any) -> AsyncIterator[Any]:
        token = _claims.set(claims)
        try:
            async for answer in behaviour(request, context):
                yield answer
        finally:
            _claims.reset(token)

    return stream if streaming else call
