"""Verifying ID tokens in WSGI services: a middleware for any WSGI app, and a Flask decorator.

Handlers get the verified claims: ``environ["gcptoken.claims"]`` behind the middleware, or a
``claims`` keyword argument with the decorator. Missing and invalid tokens get 401 with an
RFC 6750 challenge; when the issuer's keys cannot be fetched at all, 503.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Collection, Iterable
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, TypeVar

from gcptoken.errors import TransportError, VerificationError
from gcptoken.integrations.bearer import Refusal, refusal, token_from
from gcptoken.integrations.cloud_run import CloudRunIdentity
from gcptoken.verify.audience import refuse_in_a_service
from gcptoken.verify.verifier import Verifier

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

__all__ = ["CLAIMS_KEY", "IdTokenWSGIMiddleware", "require_id_token"]

log = logging.getLogger("gcptoken.integrations")

CLAIMS_KEY = "gcptoken.claims"

View = TypeVar("View", bound=Callable[..., Any])


def _environ_key(header: str) -> str:
    return "HTTP_" + header.upper().replace("-", "_")


def _check(
    verifier: Verifier | CloudRunIdentity, lookup: Callable[[str], str | None], header: str
) -> dict[str, Any] | Refusal:
    try:
        if isinstance(verifier, CloudRunIdentity):  # opt-in: Cloud Run's front door checked it
            return verifier.claims_from(lookup)
        return verifier.verify(token_from(lookup(header), header))
    except (VerificationError, TransportError) as error:
        if isinstance(error, TransportError):
            log.error("cannot verify tokens: %s", error)
        return refusal(error)


class IdTokenWSGIMiddleware:
    """Lets through only requests carrying a token ``verifier`` accepts (in the verifier's
    ``token_header``, unless ``header`` says otherwise); ``exempt_paths`` pass unchecked."""

    def __init__(
        self,
        app: WSGIApplication,
        verifier: Verifier | CloudRunIdentity,
        *,
        header: str | None = None,
        exempt_paths: Collection[str] = (),
    ) -> None:
        refuse_in_a_service(verifier.any_audience, "IdTokenWSGIMiddleware")
        self.app = app
        self.verifier = verifier
        self.header = (header or verifier.token_header).lower()
        self._environ_key = _environ_key(self.header)
        self.exempt_paths = frozenset(exempt_paths)

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO", "") in self.exempt_paths:
            return self.app(environ, start_response)
        result = _check(self.verifier, lambda name: environ.get(_environ_key(name)), self.header)
        if isinstance(result, Refusal):
            headers = [*result.headers, ("content-length", str(len(result.body)))]
            start_response(f"{result.status} {HTTPStatus(result.status).phrase}", headers)
            return [result.body]
        environ[CLAIMS_KEY] = result
        return self.app(environ, start_response)


def require_id_token(verifier: Verifier | CloudRunIdentity, *, header: str | None = None) -> Callable[[View], View]:
    """A Flask view decorator: the view runs only for a request with a token ``verifier``
    accepts, and gets its claims as the keyword argument ``claims``."""
    refuse_in_a_service(verifier.any_audience, "require_id_token")
    name = (header or verifier.token_header).lower()

    def decorate(view: View) -> View:
        @functools.wraps(view)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            from flask import Response, request  # Flask is the caller's dependency, not ours

            result = _check(verifier, request.headers.get, name)
            if isinstance(result, Refusal):
                return Response(result.body, status=result.status, headers=result.headers)
            return view(*args, claims=result, **kwargs)

        return guarded  # type: ignore[return-value]

    return decorate
