"""What accounts.google.com keeps while people sign in: OAuth clients (desktop apps, IAP's web
clients), authorization codes (single-use, short-lived, PKCE-bound), device codes waiting for a
person's approval, and the users who must reauthenticate."""

from __future__ import annotations

import secrets
import string
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["AUTH_CODE_LIFETIME", "DEVICE_CODE_LIFETIME", "AuthCode", "DeviceGrant", "OAuthClient", "SignIn"]

AUTH_CODE_LIFETIME = 600
DEVICE_CODE_LIFETIME = 1800
DEVICE_INTERVAL = 5
_USER_CODE = string.ascii_uppercase.replace("O", "").replace("I", "")


@dataclass(frozen=True)
class OAuthClient:
    client_id: str
    client_secret: str = field(repr=False)
    kind: str  # "desktop" (installed app) or "web" (an IAP app's client)
    project_number: str
    name: str

    def installed_file(self, base_url: str, project_id: str) -> dict[str, object]:
        """The desktop client JSON as Google's console downloads it, endpoints at the emulator."""
        return {
            "installed": {
                "client_id": self.client_id,
                "project_id": project_id,
                "auth_uri": f"{base_url}/o/oauth2/auth",
                "token_uri": f"{base_url}/token",
                "auth_provider_x509_cert_url": f"{base_url}/oauth2/v1/certs",
                "client_secret": self.client_secret,
                "redirect_uris": ["http://localhost"],
            }
        }


@dataclass(frozen=True)
class AuthCode:
    client_id: str
    redirect_uri: str
    email: str
    scopes: tuple[str, ...]
    code_challenge: str | None
    expires_at: float


@dataclass
class DeviceGrant:
    client_id: str
    user_code: str
    scopes: tuple[str, ...]
    expires_at: float
    interval: int = DEVICE_INTERVAL
    status: str = "pending"  # pending, approved, denied, used
    email: str = ""
    last_poll: float = 0.0


@dataclass
class SignIn:
    clock: Callable[[], float] = time.time
    clients: dict[str, OAuthClient] = field(default_factory=dict)
    codes: dict[str, AuthCode] = field(default_factory=dict)
    devices: dict[str, DeviceGrant] = field(default_factory=dict)  # device_code → grant
    reauth_required: set[str] = field(default_factory=set)  # emails whose refresh grants need a RAPT
    device_interval: int = DEVICE_INTERVAL  # seconds between polls (tests shorten it)
    # What the sign-in pages are showing: page id → the checked request (or device user code).
    pending_consents: dict[str, Any] = field(default_factory=dict)
    pending_devices: dict[str, str] = field(default_factory=dict)

    def register(self, kind: str, project_number: str, name: str, client_id: str | None = None) -> OAuthClient:
        suffix = "desktop" if kind == "desktop" else "iap"
        client = OAuthClient(
            client_id or f"{project_number}-{suffix}{secrets.token_hex(6)}.apps.googleusercontent.com",
            "GOCSPX-" + secrets.token_urlsafe(21),
            kind,
            project_number,
            name,
        )
        self.clients[client.client_id] = client
        return client

    def add(self, client: OAuthClient) -> None:
        self.clients[client.client_id] = client

    def issue_code(self, code: AuthCode) -> str:
        value = "4/0" + secrets.token_urlsafe(48)
        self.codes[value] = code
        return value

    def take_code(self, value: str) -> AuthCode | None:
        """The code's grant, once: a second use finds nothing, as Google's codes are single-use."""
        code = self.codes.pop(value, None)
        if code is None or code.expires_at < self.clock():
            return None
        return code

    def start_device(self, client_id: str, scopes: tuple[str, ...]) -> tuple[str, DeviceGrant]:
        user_code = "-".join("".join(secrets.choice(_USER_CODE) for _ in range(4)) for _ in range(3))
        grant = DeviceGrant(client_id, user_code, scopes, self.clock() + DEVICE_CODE_LIFETIME, self.device_interval)
        device_code = "AH-1" + secrets.token_urlsafe(40)
        self.devices[device_code] = grant
        return device_code, grant

    def device_by_user_code(self, user_code: str) -> DeviceGrant | None:
        wanted = user_code.strip().upper().replace(" ", "")
        for grant in self.devices.values():
            if grant.user_code == wanted and grant.status == "pending" and grant.expires_at > self.clock():
                return grant
        return None
