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
from gcptoken.login.scopes import DEVICE_ALLOWED, shown
from gcptoken.untrusted import one_line

__all__ = ["DEVICE_GRANT", "DeviceCode", "checked_scopes", "poll", "start_flow"]

DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"


@dataclass(frozen=True)
class DeviceCode:
    device_code: str = field(repr=False)
    user_code: str
    verification_url: str
    expires_at: float
    interval: int


def checked_scopes(scopes: Sequence[str]) -> tuple[str, ...]:
    """``scopes``, or InvalidArgumentError naming every one the device flow cannot grant (each is
    said, by its own name: the person may have asked for several)."""
    bad = list(dict.fromkeys(scope for scope in scopes if scope not in DEVICE_ALLOWED))
    if bad:
        raise InvalidArgumentError(
            f"--device allows only the scopes Google allows for devices (openid, email, profile; no Google Cloud "
            f"scope), not {one_line(shown(bad), 200)}: for {'it' if len(bad) == 1 else 'them'}, sign in in a "
            "browser (leave out --device; add --no-browser where no browser runs)"
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
    wait: float | None = None,
) -> dict[str, Any]:
    """Poll until the person approves (the tokens), denies, the code expires, or ``wait`` seconds
    are over (RefusedError)."""
    interval = code.interval
    give_up = code.expires_at if wait is None else min(code.expires_at, time.time() + wait)
    while True:
        left = give_up - time.time()
        if left <= 0:
            if give_up < code.expires_at:
                raise RefusedError(
                    f"the code was not approved within {wait:g} s (--wait); run gcptoken login --device again"
                )
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
