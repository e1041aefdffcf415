"""AWS Signature Version 4, as much of it as workload identity federation needs: signing a request
(the client's AWS subject token) and checking one (the emulator's STS). Standard library only.

The canonical request follows AWS's published specification and test suite; the headers a signed
request carries, and their order, follow google-auth, whose serialized requests Google's STS reads.
"""

from __future__ import annotations

import hashlib
import hmac
import posixpath
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, quote, urlsplit

__all__ = [
    "ALGORITHM",
    "AwsKeys",
    "ParsedAuthorization",
    "amz_date",
    "canonical_query",
    "parse_authorization",
    "sign",
    "signature",
    "signing_key",
]

ALGORITHM = "AWS4-HMAC-SHA256"
_AUTHORIZATION = re.compile(
    r"AWS4-HMAC-SHA256 Credential=([^/,\s]+)/(\d{8})/([a-z0-9-]+)/([a-z0-9-]+)/aws4_request, "
    r"SignedHeaders=([a-z0-9;-]+), Signature=([0-9a-f]{64})"
)


@dataclass(frozen=True)
class AwsKeys:
    """An AWS access key; the secret and the session token never show in a repr."""

    access_key_id: str
    secret_access_key: str = field(repr=False)
    session_token: str | None = field(default=None, repr=False)


def amz_date(now: float | None = None) -> str:
    """``YYYYMMDDTHHMMSSZ`` in UTC."""
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(time.time() if now is None else now))


def canonical_query(query: str) -> str:
    """Parameters sorted by encoded name, then value; names and values percent-encoded (RFC 3986)."""
    pairs = [(quote(k, safe="-_.~"), quote(v, safe="-_.~")) for k, v in parse_qsl(query, keep_blank_values=True)]
    return "&".join(f"{k}={v}" for k, v in sorted(pairs))


def _canonical_path(path: str) -> str:
    normalized = posixpath.normpath(path) if path else "/"
    if path.endswith("/") and normalized != "/":
        normalized += "/"
    return normalized if normalized != "." else "/"


def signing_key(secret_access_key: str, date_stamp: str, region: str, service: str) -> bytes:
    key = ("AWS4" + secret_access_key).encode("utf-8")
    for part in (date_stamp, region, service, "aws4_request"):
        key = hmac.new(key, part.encode("utf-8"), hashlib.sha256).digest()
    return key


def signature(
    secret_access_key: str,
    method: str,
    url: str,
    headers: Mapping[str, str],
    signed_headers: list[str],
    date: str,
    region: str,
    service: str,
    payload: bytes = b"",
) -> str:
    """The hex signature of a request: ``headers`` are keyed in lower case and must hold every
    name in ``signed_headers`` (already sorted)."""
    parts = urlsplit(url)
    canonical_headers = "".join(f"{name}:{' '.join(headers[name].split())}\n" for name in signed_headers)
    canonical_request = "\n".join(
        (
            method,
            _canonical_path(parts.path),
            canonical_query(parts.query),
            canonical_headers,
            ";".join(signed_headers),
            hashlib.sha256(payload).hexdigest(),
        )
    )
    scope = f"{date[:8]}/{region}/{service}/aws4_request"
    string_to_sign = "\n".join((ALGORITHM, date, scope, hashlib.sha256(canonical_request.encode("utf-8")).hexdigest()))
    key = signing_key(secret_access_key, date[:8], region, service)
    return hmac.new(key, string_to_sign.encode("utf-8"), hashlib.sha256).hexdigest()


def service_of(host: str) -> str:
    """``sts.us-east-2.amazonaws.com`` → ``sts`` (and ``sts-fips`` → ``sts``), as AWS names services."""
    return host.split(".", 1)[0].removesuffix("-fips")


def sign(method: str, url: str, keys: AwsKeys, region: str, now: float | None = None) -> dict[str, str]:
    """The headers of a signed request with an empty body, in the order google-auth sends them:
    ``Authorization``, ``host``, ``x-amz-date``, then ``x-amz-security-token`` when there is one."""
    host = urlsplit(url).hostname or ""
    date = amz_date(now)
    service = service_of(host)
    canonical: dict[str, str] = {"host": host, "x-amz-date": date}
    if keys.session_token is not None:
        canonical["x-amz-security-token"] = keys.session_token
    names = sorted(canonical)
    signed = signature(keys.secret_access_key, method, url, canonical, names, date, region, service)
    headers = {
        "Authorization": (
            f"{ALGORITHM} Credential={keys.access_key_id}/{date[:8]}/{region}/{service}/aws4_request, "
            f"SignedHeaders={';'.join(names)}, Signature={signed}"
        ),
        "host": host,
        "x-amz-date": date,
    }
    if keys.session_token is not None:
        headers["x-amz-security-token"] = keys.session_token
    return headers


@dataclass(frozen=True)
class ParsedAuthorization:
    access_key_id: str
    date_stamp: str
    region: str
    service: str
    signed_headers: list[str]
    signature: str = field(repr=False)


def parse_authorization(value: str) -> ParsedAuthorization | None:
    """The parts of a SigV4 ``Authorization`` header, or None when it is not one."""
    match = _AUTHORIZATION.fullmatch(value)
    if match is None:
        return None
    key_id, date_stamp, region, service, names, signed = match.groups()
    return ParsedAuthorization(key_id, date_stamp, region, service, names.split(";"), signed)
