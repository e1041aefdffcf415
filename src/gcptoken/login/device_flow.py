"""The device authorization flow (RFC 8628) for machines without a browser: a user code to enter
at the verification URL on any device, then polling that honours ``interval`` and ``slow_down``."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from gcptoken import endpoints
from gcptoken.credentials.oauth2 import post_form
from gcptoken.errors import InvalidArgumentError, RefusedError, TokenRequestError
from gcptoken.http.flows import Flow
from gcptoken.login.client_file import DesktopClient

__all__ = ["DEVICE_GRANT", "DEVICE_SCOPES", "DeviceCode", "poll", "start_flow"]

DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
DEVICE_SCOPES = ("openid", "email", "profile")
ALLOWED = frozenset(
    {
        *DEVICE_SCOPES,
        "https://www.googleapis.com/auth/userinfo.email",
        "https://www.googleapis.com/auth/userinfo.profile",
    }
)


@dataclass(frozen=True)
class DeviceCode:
    device_code: str = field(repr=False)
    user_code: str
    verification_url: str
    expires_at: float
    interval: int


def checked_scopes(scopes: Sequence[str]) -> tuple[str, ...]:
    bad = [scope for scope in scopes if scope not in ALLOWED]
    if bad:
        raise InvalidArgumentError(
            f"--device allows only the scopes Google allows for devices (openid, email, profile), not {bad[0]}"
        )
    return tuple(scopes)


def start_flow(client: DesktopClient, scopes: Sequence[str]) -> Flow[DeviceCode]:
    url = endpoints.resolve(client.endpoint("/device/code"))
    form = {"client_id": client.client_id, "scope": " ".join(scopes)}
    body = yield from post_form(url, form, {"grant": "device_code", "client_id": client.client_id})
    try:
        interval = int(body.get("interval", 5))
        return DeviceCode(
            str(body["device_code"]),
            str(body["user_code"]),
            str(body.get("verification_url") or body.get("verification_uri")),
            time.time() + int(body["expires_in"]),
            max(interval, 1),
        )
    except (KeyError, TypeError, ValueError):
        raise TokenRequestError(
            "the device code endpoint answered without device_code, user_code or expires_in"
        ) from None


def _token_flow(client: DesktopClient, code: DeviceCode) -> Flow[dict[str, Any]]:
    form = {
        "grant_type": DEVICE_GRANT,
        "device_code": code.device_code,
        "client_id": client.client_id,
        "client_secret": client.client_secret,
    }
    describe = {"grant": "device_code", "client_id": client.client_id}
    return (yield from post_form(endpoints.resolve(client.token_uri), form, describe))


def poll(
    client: DesktopClient,
    code: DeviceCode,
    run: Callable[[Flow[dict[str, Any]]], dict[str, Any]],
    progress: Callable[[float], None],
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    """Poll until the person approves (the tokens), denies, or the code expires (RefusedError)."""
    interval = code.interval
    while True:
        left = code.expires_at - time.time()
        if left <= 0:
            raise RefusedError("the device code expired before it was approved; run gcptoken login --device again")
        progress(left)
        sleep(min(interval, max(left, 0.0)))
        try:
            return run(_token_flow(client, code))
        except TokenRequestError as exc:
            if exc.error == "authorization_pending":
                continue
            if exc.error == "slow_down":
                interval += 5  # RFC 8628 3.5
                continue
            if exc.error == "access_denied":
                raise RefusedError("access was denied on the verification page; nothing was written") from None
            if exc.error == "expired_token":
                raise RefusedError(
                    "the device code expired before it was approved; run gcptoken login --device again"
                ) from None
            raise
