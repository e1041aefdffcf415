"""Receiving Google's calls in Flask: view decorators that verify the caller's token (401 / 503 as
``gcptoken.integrations.wsgi.require_id_token`` answers) and then read the call.

``@google_caller(verifier)`` passes ``call`` (a ``GoogleCall``: claims with Cloud Tasks' and Cloud
Scheduler's headers); ``@pubsub_push(verifier)`` passes ``push`` (a ``PushDelivery``), and answers
400 to a body that is not a push envelope.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from typing import Any, TypeVar

from gcptoken.integrations.wsgi import require_id_token
from gcptoken.receive.products import PushDelivery, google_call
from gcptoken.receive.pubsub import MAX_PUSH_BYTES, InvalidPushError, parse_push, parse_unwrapped
from gcptoken.verify.audience import refuse_in_a_service
from gcptoken.verify.verifier import Verifier

__all__ = ["google_caller", "pubsub_push"]

View = TypeVar("View", bound=Callable[..., Any])


def google_caller(verifier: Verifier, *, header: str | None = None) -> Callable[[View], View]:
    """The view runs only for a verified call, and gets it as the keyword argument ``call``."""
    refuse_in_a_service(verifier.any_audience, "google_caller")

    def decorate(view: View) -> View:
        @functools.wraps(view)
        def with_call(*args: Any, claims: dict[str, Any], **kwargs: Any) -> Any:
            from flask import request  # Flask is the caller's dependency, not ours

            return view(*args, call=google_call(claims, dict(request.headers.items())), **kwargs)

        return require_id_token(verifier, header=header)(with_call)  # type: ignore[return-value]

    return decorate


def pubsub_push(
    verifier: Verifier, *, unwrapped: bool = False, write_metadata: bool = False, header: str | None = None
) -> Callable[[View], View]:
    """The view runs only for a verified push, and gets it as the keyword argument ``push``.
    ``unwrapped``: the subscription sets ``noWrapper`` (``write_metadata``: and ``writeMetadata``)."""
    refuse_in_a_service(verifier.any_audience, "pubsub_push")

    def decorate(view: View) -> View:
        @functools.wraps(view)
        def with_push(*args: Any, claims: dict[str, Any], **kwargs: Any) -> Any:
            from flask import request

            body = _capped_body(request)
            if body is None:
                return _answer(413, f"the body is larger than any Pub/Sub push ({MAX_PUSH_BYTES} bytes)")
            try:
                if unwrapped:
                    message = parse_unwrapped(body, dict(request.headers.items()), write_metadata=write_metadata)
                else:
                    message = parse_push(body)
            except InvalidPushError as error:
                return _answer(400, str(error))
            push = PushDelivery(google_call(claims, dict(request.headers.items())), message)
            return view(*args, push=push, **kwargs)

        return require_id_token(verifier, header=header)(with_push)  # type: ignore[return-value]

    return decorate


def _capped_body(request: Any) -> bytes | None:
    """The body, read no further than MAX_PUSH_BYTES; None beyond (no push is that large)."""
    if request.content_length is not None and request.content_length > MAX_PUSH_BYTES:
        return None
    chunks: list[bytes] = []
    size = 0
    while chunk := request.stream.read(min(65536, MAX_PUSH_BYTES + 1 - size)):
        chunks.append(chunk)
        size += len(chunk)
        if size > MAX_PUSH_BYTES:
            return None
    return b"".join(chunks)


def _answer(status: int, detail: str) -> Any:
    from flask import Response

    return Response(
        json.dumps({"detail": detail}, separators=(",", ":")), status=status, content_type="application/json"
    )
