"""Receiving Google's calls in Starlette / FastAPI: dependencies that verify the caller's token
(401 / 503 as ``gcptoken.integrations.asgi`` answers) and then read the call.

``call: GoogleCall = Depends(GoogleCaller(verifier))`` gives the claims with Cloud Tasks' and
Cloud Scheduler's headers; ``push: PushDelivery = Depends(PubSubPush(verifier))`` a Pub/Sub push,
whose envelope, if not one, gets 400. In Starlette: ``await GoogleCaller(verifier)(request)``.
"""

from __future__ import annotations

from gcptoken.extras import require

require("asgi", "gcptoken.receive.asgi")  # before any import of its modules: one clear line if missing

from starlette.exceptions import HTTPException
from starlette.requests import Request

from gcptoken.integrations.asgi import VerifiedClaims
from gcptoken.receive.products import GoogleCall, PushDelivery, google_call
from gcptoken.receive.pubsub import MAX_PUSH_BYTES, InvalidPushError, parse_push, parse_unwrapped, whole_number
from gcptoken.verify.audience import refuse_in_a_service
from gcptoken.verify.verifier import Verifier

__all__ = ["GoogleCaller", "PubSubPush"]


class GoogleCaller:
    """A dependency: the verified call, as a ``GoogleCall``."""

    def __init__(self, verifier: Verifier, *, header: str | None = None) -> None:
        refuse_in_a_service(verifier.any_audience, type(self).__name__)
        self._claims = VerifiedClaims(verifier, header=header)

    async def __call__(self, request: Request) -> GoogleCall:
        return google_call(await self._claims(request), request.headers)


class PubSubPush:
    """A dependency: the verified push, as a ``PushDelivery``. ``unwrapped``: the subscription
    sets ``noWrapper`` (``write_metadata``: and ``writeMetadata``)."""

    def __init__(
        self, verifier: Verifier, *, unwrapped: bool = False, write_metadata: bool = False, header: str | None = None
    ) -> None:
        refuse_in_a_service(verifier.any_audience, "PubSubPush")
        self._caller = GoogleCaller(verifier, header=header)
        self.unwrapped = unwrapped
        self.write_metadata = write_metadata

    async def __call__(self, request: Request) -> PushDelivery:
        call = await self._caller(request)  # the token first: nothing is read for a stranger
        body = await _capped_body(request)
        try:
            if self.unwrapped:
                message = parse_unwrapped(body, request.headers, write_metadata=self.write_metadata)
            else:
                message = parse_push(body)
        except InvalidPushError as error:
            raise HTTPException(400, detail=str(error)) from None
        return PushDelivery(call, message)


async def _capped_body(request: Request) -> bytes:
    """The body, read no further than MAX_PUSH_BYTES: 413 beyond (no push is that large)."""
    declared = request.headers.get("content-length")
    if declared is not None and (len(declared) > 18 or (whole_number(declared) or 0) > MAX_PUSH_BYTES):
        raise HTTPException(413, detail=_TOO_LARGE)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_PUSH_BYTES:
            raise HTTPException(413, detail=_TOO_LARGE)
        chunks.append(chunk)
    return b"".join(chunks)


_TOO_LARGE = f"the body is larger than any Pub/Sub push ({MAX_PUSH_BYTES} bytes)"
