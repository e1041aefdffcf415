"""Every service account's public keys, where Google publishes them (www.googleapis.com).

Google serves the public half of each key an account has, user-managed (key files) and
Google-managed (the keys behind IAM Credentials' signJwt and signBlob), to anyone:

- ``/robot/v1/metadata/x509/EMAIL``: ``{kid: PEM certificate}``; what a key file's
  ``client_x509_cert_url`` names, and what Cloud Endpoints' docs set as ``x-google-jwks_uri``
  for ``x-google-issuer: SA_EMAIL`` (cloud.google.com/endpoints/docs/openapi/service-account-authentication);
- ``/service_accounts/v1/metadata/x509/EMAIL``, ``…/metadata/jwk/EMAIL`` (a JWK set) and
  ``…/metadata/raw/EMAIL`` (``{"keyvalues": [{algorithm, modulus, exponent, keyid}]}``): the three
  forms IAM Credentials' reference names for verifying signJwt / signBlob results
  (cloud.google.com/iam/docs/reference/credentials/rest/v1/projects.serviceAccounts/signJwt);
  the raw form is what Google's Cloud Endpoints frameworks read (go-endpoints' ``DefaultCertURI``);
- ``/robot/v1/metadata/jwk/EMAIL`` and ``/service_accounts/v1/jwk/EMAIL``: JWK sets, the URLs
  Firebase's verifiers use for securetoken's keys.

The email may come percent-encoded (``%40``, as key files write it). Besides the emulator's
service accounts, two of Google's own system accounts are served: ``securetoken@system…``
(Firebase Auth's keys, firebase.py) and ``federated-signon@system…`` (the keys of Google's ID
tokens, the same set as ``/oauth2/v1/certs``, as captured answers of both show).

Answers carry Google's headers (a captured answer of ``service_accounts/v1/metadata/raw/…``:
``Cache-Control: public, max-age=21600, must-revalidate, no-transform``, ``Expires``,
``Content-Type: application/json; charset=UTF-8``); an unknown account is a 404.
"""

from __future__ import annotations

import base64
import datetime
from collections.abc import Callable
from email.utils import formatdate
from typing import Any

from cryptography.hazmat.primitives.asymmetric import rsa
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gcptoken.emulator.http.responses import GoogleJSONResponse as JSONResponse
from gcptoken.emulator.http.responses import api_error
from gcptoken.emulator.keys import key_certificates
from gcptoken.emulator.keys.firebase import SECURETOKEN, firebase_key
from gcptoken.emulator.state.state import EmulatorState
from gcptoken.jose import jws

__all__ = ["FEDERATED_SIGNON", "MAX_AGE", "published_keys", "routes"]

FEDERATED_SIGNON = "federated-signon@system.gserviceaccount.com"
MAX_AGE = 21600

# kid → (public key, PEM certificate), in the order they are listed.
Published = dict[str, tuple[jws.VerifyingKey, str]]


def published_keys(state: EmulatorState, email: str) -> Published | None:
    """The keys Google publishes for ``email``, or None for an account it does not know. A service
    account always has its Google-managed key (Google rotates one in for every account), so it is
    made here if nothing has signed with it yet."""
    if email == SECURETOKEN:
        key = firebase_key(state)
        return {key.kid: (key.key.public, key.certificate_pem)}
    if email == FEDERATED_SIGNON:
        return {key.kid: (key.key.public, key.certificate_pem) for key in state.issuer_keys}
    with state.lock:
        account = state.service_accounts.get(email)
        if account is None:
            return None
        state.system_key(email)
        for kid in account.keys.keys() - account.certificates.keys():  # a key put there by hand, say
            when = datetime.datetime.fromtimestamp(state.clock(), datetime.timezone.utc)
            name = key_certificates.common_name(email)
            account.certificates[kid] = key_certificates.reissued(name, account.keys[kid], when)
        return {kid: (public, account.certificates[kid]) for kid, public in account.keys.items()}


def _x509(keys: Published) -> dict[str, Any]:
    return {kid: certificate for kid, (_, certificate) in keys.items()}


def _jwk(keys: Published) -> dict[str, Any]:
    return {"keys": [public.to_jwk(kid) for kid, (public, _) in keys.items()]}


def _unsigned_bytes(value: int) -> bytes:
    """Big-endian with a leading zero byte when the top bit is set (ASN.1 INTEGER, Java's
    BigInteger.toByteArray): Google's raw modulus starts ``AL…`` / ``AO…`` for that zero byte."""
    return value.to_bytes(value.bit_length() // 8 + 1, "big")


def _raw(keys: Published) -> dict[str, Any]:
    values = []
    for kid, (public, _) in keys.items():
        if not isinstance(public.key, rsa.RSAPublicKey):
            continue
        numbers = public.key.public_numbers()
        values.append(
            {
                "algorithm": "RSA",
                "modulus": base64.b64encode(_unsigned_bytes(numbers.n)).decode("ascii"),
                "exponent": base64.b64encode(_unsigned_bytes(numbers.e)).decode("ascii"),
                "keyid": kid,
            }
        )
    return {"keyvalues": values}


def _headers(state: EmulatorState, email: str) -> dict[str, str]:
    # Google's ID-token keys rotate on the emulator's timeline: their max-age runs to the switch.
    max_age = state.certs_cache_seconds() if email == FEDERATED_SIGNON else MAX_AGE
    return {
        "Cache-Control": f"public, max-age={max_age}, must-revalidate, no-transform",
        "Expires": formatdate(state.clock() + max_age, usegmt=True),
    }


def _endpoint(render: Callable[[Published], dict[str, Any]]) -> Callable[[Request], Any]:
    async def endpoint(request: Request) -> Response:
        state: EmulatorState = request.app.state.emulator
        account = request.path_params["account"]
        keys = published_keys(state, account)
        if keys is None:
            return api_error(404, "Not Found")
        return JSONResponse(render(keys), headers=_headers(state, account))

    return endpoint


routes = [
    Route("/robot/v1/metadata/x509/{account}", _endpoint(_x509), methods=["GET"]),
    Route("/robot/v1/metadata/jwk/{account}", _endpoint(_jwk), methods=["GET"]),
    Route("/service_accounts/v1/metadata/x509/{account}", _endpoint(_x509), methods=["GET"]),
    Route("/service_accounts/v1/metadata/jwk/{account}", _endpoint(_jwk), methods=["GET"]),
    Route("/service_accounts/v1/metadata/raw/{account}", _endpoint(_raw), methods=["GET"]),
    Route("/service_accounts/v1/jwk/{account}", _endpoint(_jwk), methods=["GET"]),
]
