"""Regional access boundaries, the client side: a credential's allowed locations, looked up at IAM
Credentials with its own access token and sent with each API call as ``x-allowed-locations``.

Off unless GOOGLE_SDK_EXPERIMENTAL_PYTHON_REGIONAL_ACCESS_BOUNDARY_LOOKUP_ENABLED is true, the
switch google-auth reads (on every call, as here). The rules are google-auth 2.63's
(google/auth/_regional_access_boundary_utils.py, google/auth/credentials.py,
google/oauth2/_client.py):

- who looks up what: a service account (key file, impersonation target, the metadata server's
  account when its email is one) at ``…/v1/projects/-/serviceAccounts/EMAIL/allowedLocations``; a
  workload identity pool's federated identity at ``…/v1/projects/NUMBER/locations/global/
  workloadIdentityPools/POOL/allowedLocations``; a workforce pool's at ``…/v1/locations/global/
  workforcePools/POOL/allowedLocations`` (pools read from the audience); user credentials and other
  universes than googleapis.com never;
- ``GET`` with ``Authorization: Bearer <the credential's access token>``; the answer's
  ``encodedLocations`` (which must be there) is the header's value, ``"0x0"`` included;
- a boundary lives 6 h and is looked up again in its last hour; a failed lookup sends nothing new and
  waits 15 min before the next, doubling up to 6 h, while a boundary not yet expired is still sent;
- a call to a regional endpoint (``*.rep.googleapis.com``) starts no lookup.

Unlike google-auth's default (a background thread, so the first calls go without the header) the
lookup is made before the call that needs it, with google-auth's blocking-mode limits (3 s, no
retry; gcloud's mode, ``_set_blocking_regional_access_boundary_lookup``): the first call already
carries the header. A lookup never fails the call: it goes without the header, and the failure is
logged without the token. The header a caller set on a request is left as it is.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import replace
from urllib.parse import urlsplit

from gcptoken import endpoints
from gcptoken.credentials.base import Credentials
from gcptoken.credentials.external_account import FederatedCredentials
from gcptoken.credentials.impersonated import ImpersonatedCredentials
from gcptoken.credentials.metadata import MetadataCredentials, email_flow
from gcptoken.credentials.oauth2 import raise_for_refusal
from gcptoken.credentials.service_account import ServiceAccountCredentials
from gcptoken.credentials.workforce_user import WorkforceUserCredentials
from gcptoken.errors import GcpTokenError, TokenRequestError
from gcptoken.http.flows import Flow, HttpRequest, HttpResponse, json_body, presenting, run_async, run_sync
from gcptoken.untrusted import is_token_text

__all__ = [
    "ENABLE_ENV",
    "HEADER",
    "Boundary",
    "allowed_locations",
    "allowed_locations_async",
    "lookup_enabled",
]

log = logging.getLogger("gcptoken.credentials")

ENABLE_ENV = "GOOGLE_SDK_EXPERIMENTAL_PYTHON_REGIONAL_ACCESS_BOUNDARY_LOOKUP_ENABLED"
HEADER = "x-allowed-locations"
_TRUTHY = ("y", "yes", "t", "true", "on", "1")  # google-auth's, case and surrounding blanks ignored
TTL = 6 * 3600.0
REFRESH_BEFORE = 3600.0
COOLDOWN = 15 * 60.0
MAX_COOLDOWN = 6 * 3600.0
LOOKUP_TIMEOUT = 3.0  # google-auth's fail-fast lookup (oauth2/_client.py)
_LOOKUP_DEADLINE = 2 * LOOKUP_TIMEOUT  # the metadata server's email, then the lookup
_MAX_VALUE = 1024
_IAM = "https://iamcredentials.googleapis.com/v1/"
_IAM_MTLS = "https://iamcredentials.mtls.googleapis.com/v1/"
_REGIONAL = (
    ".rep.googleapis.com",
    ".rep.sandbox.googleapis.com",
    ".rep.mtls.googleapis.com",
    ".rep.mtls.sandbox.googleapis.com",
)
_WORKLOAD_POOL = re.compile(r"projects/([^/]+)/locations/global/workloadIdentityPools/([^/]+)")
_WORKFORCE_POOL = re.compile(r"locations/[^/]+/workforcePools/([^/]+)")


def lookup_enabled() -> bool:
    return os.environ.get(ENABLE_ENV, "").strip().lower() in _TRUTHY


def regional_endpoint(url: str) -> bool:
    try:
        host = urlsplit(url).hostname or ""
    except ValueError:
        return False
    return host.endswith(_REGIONAL)


class Boundary:
    """One credential's boundary and when to look it up again; thread-safe, and one lookup at a
    time (``claim`` hands it to one caller; the others go on with what is known)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self.encoded: str | None = None
        self.expiry = 0.0
        self.retry_at = 0.0
        self.cooldown = COOLDOWN
        self.looking_up = False
        self.never = False  # the credential has no boundary to look up (a metadata account that is not one)

    def header(self) -> str | None:
        """The value to send now: a boundary that has not expired."""
        with self._lock:
            return self.encoded if self.encoded is not None and self._clock() < self.expiry else None

    def claim(self) -> bool:
        """Whether the caller should look up now (then it must call ``found``, ``failed`` or ``none``)."""
        with self._lock:
            now = self._clock()
            fresh = self.encoded is not None and now < self.expiry - REFRESH_BEFORE
            if self.never or self.looking_up or fresh or now < self.retry_at:
                return False
            self.looking_up = True
            return True

    def found(self, encoded: str) -> None:
        with self._lock:
            self.encoded, self.expiry = encoded, self._clock() + TTL
            self.retry_at, self.cooldown, self.looking_up = 0.0, COOLDOWN, False

    def failed(self) -> float:
        """Wait before the next lookup (the cooldown doubles, up to MAX_COOLDOWN); returns the wait."""
        with self._lock:
            wait = self.cooldown
            self.retry_at = self._clock() + wait
            self.cooldown = min(wait * 2, MAX_COOLDOWN)
            self.looking_up = False
            return wait

    def release(self) -> None:
        """Give up a claim without an outcome (the call was cancelled or interrupted)."""
        with self._lock:
            self.looking_up = False

    def none(self) -> None:
        with self._lock:
            self.never, self.looking_up = True, False


_boundaries: weakref.WeakKeyDictionary[Credentials, Boundary] = weakref.WeakKeyDictionary()
_boundaries_lock = threading.Lock()


def _boundary(credentials: Credentials) -> Boundary | None:
    """The credential's Boundary, or None when its kind or universe has none."""
    if not _applies(credentials):
        return None
    with _boundaries_lock:
        found = _boundaries.get(credentials)
        if found is None:
            found = _boundaries[credentials] = Boundary()
        return found


def _applies(credentials: Credentials) -> bool:
    universe = credentials.source.universe_domain if isinstance(credentials, ImpersonatedCredentials) else None
    if (universe or credentials.universe_domain) != "googleapis.com":
        return False  # google-auth: "Skip for non-default universe domains"
    kinds = (
        ServiceAccountCredentials,
        ImpersonatedCredentials,
        MetadataCredentials,
        FederatedCredentials,
        WorkforceUserCredentials,
    )
    return isinstance(credentials, kinds)


def _pool_url(audience: str, base: str) -> str | None:
    """The lookup URL of the pool an STS audience names (google-auth's external_account.py regexes)."""
    workload = _WORKLOAD_POOL.search(audience)
    if workload is not None:
        number, pool = workload.groups()
        return f"{base}projects/{number}/locations/global/workloadIdentityPools/{pool}/allowedLocations"
    workforce = _WORKFORCE_POOL.search(audience)
    if workforce is not None:
        return f"{base}locations/global/workforcePools/{workforce.group(1)}/allowedLocations"
    return None


def _lookup_url(credentials: Credentials) -> Flow[str | None]:
    if isinstance(credentials, ServiceAccountCredentials):
        return f"{_IAM}projects/-/serviceAccounts/{credentials.key.client_email}/allowedLocations"
    if isinstance(credentials, ImpersonatedCredentials):
        return f"{credentials.iam_base}{credentials.target}/allowedLocations"  # iam_base ends …/serviceAccounts/
    if isinstance(credentials, FederatedCredentials):
        # A certificate-bound token is looked up over mutual TLS (google-auth's _get_domain()).
        base = _IAM if credentials.client_certificate() is None else _IAM_MTLS
        return _pool_url(credentials.config.audience, base)
    if isinstance(credentials, WorkforceUserCredentials):
        return _pool_url(credentials.key.audience, _IAM)
    if isinstance(credentials, MetadataCredentials):
        email = yield from email_flow(credentials.host)
        # GKE's workload identity names PROJECT.svc.id.goog: no service account, no boundary
        # (google-auth: compute_engine/credentials.py, _metadata._is_service_account_email).
        return f"{_IAM}projects/-/serviceAccounts/{email}/allowedLocations" if "@" in email else None
    return None


def _lookup_flow(credentials: Credentials, access_token: str) -> Flow[str | None]:
    """The credential's ``encodedLocations``; None when it has nothing to look up."""
    url = yield from _lookup_url(credentials)
    if url is None:
        return None
    source = credentials.source if isinstance(credentials, ImpersonatedCredentials) else credentials
    where = f"regional access boundary lookup at {endpoints.safe_url(url)}"
    request = HttpRequest(
        "GET",
        endpoints.resolve(url),
        {"Authorization": f"Bearer {access_token}"},
        describe={"lookup": "allowedLocations"},
        retries=0,
        timeout=LOOKUP_TIMEOUT,
    )
    response = yield from presenting(_one(request), source.client_certificate())
    body = json_body(_without(response, access_token), where)
    raise_for_refusal(response.status, body, where)
    value = body.get("encodedLocations")
    if not (isinstance(value, str) and is_token_text(value) and len(value) <= _MAX_VALUE):
        raise TokenRequestError(f"{where} answered without a usable encodedLocations", status=response.status)
    return value


def _without(response: HttpResponse, token: str) -> HttpResponse:
    """The answer with the token taken out: some front ends repeat the request's Authorization in
    their error text, and a refusal's words are logged. Before they are read, so the 300-character
    cap cannot leave a piece of it that no later search would find."""
    if not token:
        return response
    return replace(response, body=response.body.replace(token.encode(), b"<token>"))


def _one(request: HttpRequest) -> Flow[HttpResponse]:
    response = yield request
    return response


def _settle(boundary: Boundary, credentials: Credentials, outcome: str | Exception | None) -> None:
    if isinstance(outcome, Exception):
        wait = boundary.failed()
        # Our errors never carry tokens; of anything else only its kind is told.
        reason = str(outcome) if isinstance(outcome, GcpTokenError) else type(outcome).__name__
        log.warning(
            "%s: regional access boundary lookup failed (%s); calls go without a new %s for %d min",
            credentials.description,
            reason,
            HEADER,
            wait // 60,
        )
    elif outcome is None:
        boundary.none()
    else:
        boundary.found(outcome)


def allowed_locations(credentials: Credentials, access_token: str, url: str) -> str | None:
    """The ``x-allowed-locations`` value for a call to ``url`` with ``access_token`` (the
    credential's own), looking the boundary up first when it is due; None: send no header."""
    if not lookup_enabled():
        return None
    boundary = _boundary(credentials)
    if boundary is None:
        return None
    if not regional_endpoint(url) and boundary.claim():
        from gcptoken.http.light_transport import sync_transport

        outcome: str | Exception | None
        try:
            flow = _lookup_flow(credentials, access_token)
            outcome = run_sync(flow, sync_transport(LOOKUP_TIMEOUT), time.monotonic() + _LOOKUP_DEADLINE)
        except Exception as exc:  # a lookup never fails the call it is made for
            outcome = exc
        except BaseException:
            boundary.release()
            raise
        _settle(boundary, credentials, outcome)
    return boundary.header()


async def allowed_locations_async(credentials: Credentials, access_token: str, url: str) -> str | None:
    """``allowed_locations`` on the running event loop."""
    if not lookup_enabled():
        return None
    boundary = _boundary(credentials)
    if boundary is None:
        return None
    if not regional_endpoint(url) and boundary.claim():
        from gcptoken.http.transport import AsyncHttpxTransport

        outcome: str | Exception | None
        transport = AsyncHttpxTransport(LOOKUP_TIMEOUT)
        try:
            flow = _lookup_flow(credentials, access_token)
            outcome = await run_async(flow, transport, time.monotonic() + _LOOKUP_DEADLINE)
        except Exception as exc:  # a lookup never fails the call it is made for
            outcome = exc
        except BaseException:  # cancelled: the next call looks up
            boundary.release()
            raise
        finally:
            await transport.aclose()
        _settle(boundary, credentials, outcome)
    return boundary.header()
