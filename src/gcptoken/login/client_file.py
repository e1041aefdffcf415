"""The desktop OAuth client a person signs in through, as Google's console downloads it:
``{"installed": {client_id, client_secret, auth_uri, token_uri, redirect_uris, …}}``."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import gcptoken.credentials.fields as fields
from gcptoken import endpoints
from gcptoken.errors import CredentialsError
from gcptoken.private_files import UnreadableFile, file_error, read_small_file
from gcptoken.untrusted import UnreadableJson, json_object, one_line

__all__ = ["AUTH_URI", "HOW_TO_CREATE", "DesktopClient"]

AUTH_URI = "https://accounts.google.com/o/oauth2/auth"
HOW_TO_CREATE = (
    "gcptoken ships no OAuth client of its own: create one in the Google Cloud console (APIs & Services → "
    "Credentials → Create credentials → OAuth client ID → Desktop app), download its JSON, and pass "
    "--client-id-file FILE"
)


@dataclass(frozen=True)
class DesktopClient:
    client_id: str
    client_secret: str = field(repr=False)
    auth_uri: str = AUTH_URI
    token_uri: str = endpoints.TOKEN_URI
    project_id: str | None = None

    @classmethod
    def from_file(cls, path: str) -> DesktopClient:
        shown = one_line(path)
        try:
            info = json_object(read_small_file(path))
        except FileNotFoundError:
            raise CredentialsError(f"client file {shown} does not exist. {HOW_TO_CREATE}") from None
        except UnreadableFile as exc:
            raise CredentialsError(f"client file {shown} {exc}") from None
        except UnreadableJson as exc:
            raise CredentialsError(f"client file {shown} {exc}") from None
        except OSError as exc:
            raise file_error(path, "client file", exc) from None
        if "web" in info:
            raise CredentialsError(
                f"client file {shown} is a web application's client; signing in from here needs a "
                "Desktop app client (its redirect is this machine's loopback)"
            )
        installed = info.get("installed")
        if not isinstance(installed, dict):
            raise CredentialsError(f'client file {shown} has no "installed" object. {HOW_TO_CREATE}')
        where = f"client file {Path(path).name}"
        return cls(
            client_id=fields.text(installed, "client_id", where) or "",
            client_secret=fields.text(installed, "client_secret", where) or "",
            auth_uri=fields.url(installed, "auth_uri", where) or AUTH_URI,
            token_uri=fields.url(installed, "token_uri", where) or endpoints.TOKEN_URI,
            project_id=fields.text(installed, "project_id", where, required=False),
        )

    def endpoint(self, path: str) -> str:
        """Another of Google's OAuth endpoints (``/device/code``, ``/revoke``) beside ``token_uri``."""
        base = self.token_uri.rsplit("/", 1)[0]
        return f"{base}{path}"
