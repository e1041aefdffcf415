"""Google's signing certificates in either published format, and fetching them."""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from typing import Any

from gcptoken import endpoints
from gcptoken.endpoints import safe_url
from gcptoken.errors import CredentialsError, TransportError
from gcptoken.http.flows import Flow, get_json_flow
from gcptoken.jose import jws
from gcptoken.private_files import read_json_file

__all__ = ["DEFAULT_MAX_AGE", "KeySet", "fetch_flow", "keys_from_document", "keys_from_file", "max_age_of"]

KeySet = dict[str, jws.VerifyingKey]

# Used when a certs response carries no usable Cache-Control.
DEFAULT_MAX_AGE = 300.0
# However long a server says keys may be kept, they are fetched again after this: a hostile
# ``max-age=1e20`` must not pin a key set for ever (Google's own is about 6 hours).
MAX_MAX_AGE = 86400.0
log = logging.getLogger("gcptoken.verify.verifier")
_MAX_AGE = re.compile(r"(?:^|[,\s])max-age\s*=\s*(\d+)", re.IGNORECASE)


def keys_from_document(document: Any, where: str) -> KeySet:
    """Keys by kid from a v3 JWKS (``{"keys": [...]}``) or a v1 map of kid → PEM certificate."""
    if not isinstance(document, Mapping):
        raise CredentialsError(f"{where}: certs are not a JSON object")
    keys: KeySet = {}
    if "keys" in document:
        entries = document["keys"]
        if not isinstance(entries, list):
            raise CredentialsError(f"{where}: 'keys' is not a list")
        for jwk in entries:
            if isinstance(jwk, Mapping) and isinstance(jwk.get("kid"), str) and jwk.get("use", "sig") == "sig":
                try:
                    keys[jwk["kid"]] = jws.public_key_from_jwk(jwk)
                except CredentialsError as exc:  # a token naming it gets unknown_kid
                    log.warning("%s: skipping key %r: %s", where, jwk["kid"][:64], exc)
    else:
        for kid, pem in document.items():
            if isinstance(kid, str) and isinstance(pem, str):
                try:
                    keys[kid] = jws.public_key_from_pem(pem)
                except CredentialsError as exc:
                    log.warning("%s: skipping key %r: %s", where, kid[:64], exc)
    if not keys:
        raise CredentialsError(f"{where}: no usable RS256/ES256 keys")
    return keys


def keys_from_file(path: str | os.PathLike[str]) -> KeySet:
    return keys_from_document(read_json_file(path, "certs file"), f"certs file {path}")


def max_age_of(headers: Mapping[str, str]) -> float:
    match = _MAX_AGE.search(headers.get("cache-control", ""))
    return min(float(match.group(1)), MAX_MAX_AGE) if match else DEFAULT_MAX_AGE


def fetch_flow(url: str) -> Flow[tuple[KeySet, float]]:
    """GET the certs at ``url``: the keys and how long they may be cached (seconds)."""
    where = f"certs endpoint {safe_url(url)}"
    document, response = yield from get_json_flow(endpoints.resolve(url), where)
    try:
        keys = keys_from_document(document, where)
    except CredentialsError as exc:
        raise TransportError(str(exc)) from None
    return keys, max_age_of(response.headers)
