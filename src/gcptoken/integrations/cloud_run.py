"""The identity Cloud Run's front door already checked, for an app that sits behind it: an
opt-in alternative to :class:`~gcptoken.verify.verifier.Verifier` for the ASGI/WSGI middlewares.

A private Cloud Run service (no ``allUsers`` invoker) admits a request only with a Google-signed
ID token for the service from a ``roles/run.invoker`` member, and forwards that token with its
signature replaced by ``SIGNATURE_REMOVED_BY_GOOGLE``
(https://cloud.google.com/run/docs/troubleshooting#signature-removed): the claims can be read,
never verified again. Reading them is safe **only** there. Anywhere else (a public service,
another platform, a port reachable around Cloud Run) anyone can write an unsigned token saying
anything, so this class refuses to exist unless it is told twice that it runs behind Cloud Run's
authentication:

- ``trust_cloud_run_authentication=True``, a keyword with no default (a forgotten argument is a
  TypeError, not a silently trusting app);
- and ``K_SERVICE`` in the environment, which Cloud Run sets in every service's container
  (https://cloud.google.com/run/docs/container-contract#env-vars), so the same code started on a
  VM, in GKE or in ``docker run -p`` refuses to start; ``k_service_required=False`` lifts this
  for a local front door (``gcptoken emulator --run``), whose app has no K_SERVICE. The values the
  emulator gives for its ``--platform cloud-run|functions`` (``emulated-service``,
  ``emulated-function``) are refused too: an app with them runs locally, reachable directly.

K_SERVICE proves the platform, not the setting: on a service that allows unauthenticated calls,
Cloud Run checks nothing and forwards whatever was sent. Keep ``allUsers`` off such a service.

What it still checks, as cheap defences: the token is taken from where Cloud Run took it
(``X-Serverless-Authorization`` when present, else ``Authorization``; reading ``Authorization``
while the other was the checked one would trust a header the caller wrote freely, and an
``Authorization`` carrying Cloud Run's marker beside it is refused as the forgery it is), its
signature must be exactly Cloud Run's marker (a real signature means it did not pass the front
door's check), and issuer, audience and expiry must hold.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from gcptoken import endpoints
from gcptoken.errors import InvalidArgumentError, VerificationError
from gcptoken.integrations.bearer import token_from
from gcptoken.jose.compact import json_segment, split
from gcptoken.verify.audience import accepted_audiences

__all__ = ["EMULATED_K_SERVICE", "REMOVED_SIGNATURE", "CloudRunIdentity"]

REMOVED_SIGNATURE = "SIGNATURE_REMOVED_BY_GOOGLE"
# K_SERVICE as gcptoken's emulated platforms give it (gcptoken.local.metadata_platforms' runtime_env).
EMULATED_K_SERVICE = frozenset({"emulated-service", "emulated-function"})
_SERVERLESS = "x-serverless-authorization"


class CloudRunIdentity:
    """The claims of the token Cloud Run's front door checked; pass it to ``IdTokenMiddleware``,
    ``IdTokenWSGIMiddleware`` or ``require_id_token`` in place of a Verifier. ``audience``: the
    service's URL(s) and custom audiences (Cloud Run already held ``aud`` to them)."""

    token_header = "authorization"  # the middlewares' default; this class reads both, in Cloud Run's order
    any_audience = False  # its audience is always the service's own

    def __init__(
        self,
        audience: str | Sequence[str],
        *,
        trust_cloud_run_authentication: bool,
        k_service_required: bool = True,
        clock_skew: float = 60.0,
        environ: Mapping[str, str] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if trust_cloud_run_authentication is not True:
            raise InvalidArgumentError(
                "CloudRunIdentity reads tokens whose signature Cloud Run removed: pass "
                "trust_cloud_run_authentication=True only behind a Cloud Run service that requires authentication"
            )
        k_service = (os.environ if environ is None else environ).get("K_SERVICE")
        if k_service_required and not k_service:
            raise InvalidArgumentError(
                "CloudRunIdentity: K_SERVICE is not set, so this is not a Cloud Run service and nothing removed "
                "forged tokens; use a Verifier (k_service_required=False only behind gcptoken emulator --run)"
            )
        # The values gcptoken's emulator tells apps to set (--platform cloud-run|functions, its env
        # file) for clients that detect the platform: such an app runs locally, its port reachable
        # around any front door, so they never count as Cloud Run's word. Behind `gcptoken emulator
        # --run` the opt-out is explicit (k_service_required=False), never implied by a sourced file.
        if k_service_required and k_service in EMULATED_K_SERVICE:
            raise InvalidArgumentError(
                f"CloudRunIdentity: K_SERVICE={k_service} is the emulator's, not Cloud Run's: this app runs locally "
                "and anyone can reach it with a forged token; use a Verifier (k_service_required=False only for an "
                "app reachable solely through gcptoken emulator --run)"
            )
        audiences = accepted_audiences(audience)
        if audiences is None:  # Cloud Run held aud to the service's own: so must its reader
            raise InvalidArgumentError(
                "CloudRunIdentity needs the service's URL(s) or custom audiences, not any audience"
            )
        if not (math.isfinite(clock_skew) and clock_skew >= 0):
            raise InvalidArgumentError("clock_skew must be a finite number of seconds, not negative")
        self.audiences = audiences
        self.clock_skew, self.clock = float(clock_skew), clock

    def claims_from(self, header: Callable[[str], str | None]) -> dict[str, Any]:
        """The claims, given a request's headers by (lower-case) name; VerificationError if none fit."""
        serverless = header(_SERVERLESS)
        name = _SERVERLESS if serverless is not None else "authorization"
        value = serverless if serverless is not None else header("authorization")
        # Beside the checked X-Serverless-Authorization, Cloud Run passes Authorization on as the
        # caller wrote it: one carrying the marker only Cloud Run writes is a forgery aimed at
        # code that reads Authorization (this app's other parts, a front door that lost the
        # checked header): refused rather than left for them.
        if serverless is not None and REMOVED_SIGNATURE in (header("authorization") or ""):
            raise VerificationError(
                "signature", "an Authorization with Cloud Run's removed-signature marker it did not check"
            )
        scheme, _, token = (value or "").strip().partition(" ")
        if value and scheme.lower() != "bearer":
            raise VerificationError("missing", f"{name} header is not 'Bearer <token>'")
        return self.claims(token_from(f"Bearer {token.strip()}" if value else None, "authorization"))

    def claims(self, token: str) -> dict[str, Any]:
        header_b64, claims_b64, signature = split(token)
        if signature != REMOVED_SIGNATURE:
            raise VerificationError(
                "signature", "the token's signature was not removed by Cloud Run: it did not pass its front door"
            )
        json_segment(header_b64, "header")
        claims = json_segment(claims_b64, "payload")
        if claims.get("iss") not in endpoints.GOOGLE_ISSUERS:
            raise VerificationError("issuer", "the token is not Google's")
        audience = claims.get("aud")
        if not isinstance(audience, str) or audience not in self.audiences:
            raise VerificationError("audience", "the token is for another audience")
        expiry = claims.get("exp")
        if not isinstance(expiry, int | float) or expiry + self.clock_skew < self.clock():
            raise VerificationError("expired", "the token has expired")
        return claims
