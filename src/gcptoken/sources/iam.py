"""IAM Credentials: tokens and signatures for a service account the caller may act as.

Every call is authorised with the *source* credential's access token. Delegates are the chain of
service accounts between the caller and the target, each allowed to act as the next.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from gcptoken import endpoints
from gcptoken.errors import TokenRequestError
from gcptoken.flows import Flow, HttpRequest, json_body
from gcptoken.sources.oauth2 import id_token_from, raise_for_refusal
from gcptoken.tokens import Token

__all__ = [
    "IAM_BASE",
    "MAX_LIFETIME",
    "delegate_names",
    "generate_access_token_flow",
    "generate_id_token_flow",
    "parse_impersonation_url",
    "sign_blob_flow",
    "sign_jwt_flow",
]

IAM_BASE = "https://iamcredentials.googleapis.com/v1/projects/-/serviceAccounts/"
# generateAccessToken allows up to 12 hours where the org policy permits more than one.
MAX_LIFETIME = 43200


def delegate_names(delegates: Sequence[str]) -> list[str]:
    """Delegates as IAM wants them: ``projects/-/serviceAccounts/EMAIL``."""
    return [d if d.startswith("projects/") else f"projects/-/serviceAccounts/{d}" for d in delegates]


def _call(
    access_token: str, target: str, method: str, body: dict[str, Any], base: str = IAM_BASE
) -> Flow[dict[str, Any]]:
    url = endpoints.resolve(f"{base}{target}:{method}")
    headers = {"Authorization": f"Bearer {access_token}", "Content-Type": "application/json"}
    describe = {"iam": method, "target": target, "delegates": ",".join(body.get("delegates", [])) or "-"}
    response = yield HttpRequest("POST", url, headers, json.dumps(body).encode("utf-8"), describe=describe)
    where = f"IAM Credentials {method} for {target}"
    answer = json_body(response, where)
    raise_for_refusal(response.status, answer, where)
    return answer


def generate_id_token_flow(
    access_token: str,
    target: str,
    audience: str,
    delegates: Sequence[str] = (),
    include_email: bool = False,
    base: str = IAM_BASE,
) -> Flow[Token]:
    body = {"audience": audience, "includeEmail": include_email, "delegates": delegate_names(delegates)}
    answer = yield from _call(access_token, target, "generateIdToken", body, base)
    return id_token_from({"id_token": answer.get("token")}, f"IAM Credentials generateIdToken for {target}")


def generate_access_token_flow(
    access_token: str,
    target: str,
    scopes: Sequence[str],
    lifetime: int = 3600,
    delegates: Sequence[str] = (),
    base: str = IAM_BASE,
) -> Flow[Token]:
    body = {"scope": list(scopes), "lifetime": f"{lifetime}s", "delegates": delegate_names(delegates)}
    answer = yield from _call(access_token, target, "generateAccessToken", body, base)
    where = f"IAM Credentials generateAccessToken for {target}"
    value, expire = answer.get("accessToken"), answer.get("expireTime")
    if not isinstance(value, str) or not value or not isinstance(expire, str):
        raise TokenRequestError(f"{where} answered without accessToken / expireTime")
    try:
        expires_at = datetime.fromisoformat(expire.replace("Z", "+00:00"))
    except ValueError:
        raise TokenRequestError(f"{where} answered an unreadable expireTime") from None
    return Token(value, expires_at, "access_token")


def sign_jwt_flow(
    access_token: str, target: str, claims: dict[str, Any], delegates: Sequence[str] = (), base: str = IAM_BASE
) -> Flow[str]:
    body = {"payload": json.dumps(claims), "delegates": delegate_names(delegates)}
    answer = yield from _call(access_token, target, "signJwt", body, base)
    signed = answer.get("signedJwt")
    if not isinstance(signed, str):
        raise TokenRequestError(f"IAM Credentials signJwt for {target} answered without signedJwt")
    return signed


def sign_blob_flow(
    access_token: str, target: str, blob: bytes, delegates: Sequence[str] = (), base: str = IAM_BASE
) -> Flow[bytes]:
    body = {"payload": base64.b64encode(blob).decode("ascii"), "delegates": delegate_names(delegates)}
    answer = yield from _call(access_token, target, "signBlob", body, base)
    try:
        return base64.b64decode(answer["signedBlob"], validate=True)
    except (KeyError, TypeError, ValueError):
        raise TokenRequestError(f"IAM Credentials signBlob for {target} answered without a signedBlob") from None


def parse_impersonation_url(url: str) -> tuple[str, str]:
    """``(base, target)`` from ``…/serviceAccounts/EMAIL:generateAccessToken``."""
    match = re.fullmatch(r"(.+/serviceAccounts/)([^/:]+):generateAccessToken", url)
    if match is None:
        raise ValueError(url)
    return match.group(1), match.group(2)
