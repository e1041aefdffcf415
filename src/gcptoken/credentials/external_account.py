"""Workload identity federation (``external_account``): a subject token from outside Google,
exchanged at STS for a federated access token.

Subject tokens come from a file (text, or JSON with ``subject_token_field_name``), a URL (with
headers and the same formats), or an executable (only with
``GOOGLE_EXTERNAL_ACCOUNT_ALLOW_EXECUTABLES=1``, Google's response format and output-file cache)."""

from __future__ import annotations

import json
import os
import secrets
import shlex
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gcptoken.credentials.fields as fields
from gcptoken import endpoints
from gcptoken.cache.rules import (
    external_identity,
    subject_token_proof,
)
from gcptoken.credentials.base import Credentials
from gcptoken.credentials.oauth2 import access_token_from, post_form
from gcptoken.endpoints import safe_url
from gcptoken.errors import CredentialsError, RefusedError, TokenRequestError
from gcptoken.http.flows import Flow, HttpRequest
from gcptoken.private_files import UnreadableFile, read_small_file
from gcptoken.subject_token import subject_token_in
from gcptoken.tokens import Token

__all__ = [
    "STS_URL",
    "ExternalAccountConfig",
    "FederatedCredentials",
    "access_token_flow",
    "subject_token_flow",
    "subject_token_from_file",
]

STS_URL = "https://sts.googleapis.com/v1/token"
TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"
ALLOW_EXECUTABLES = "GOOGLE_EXTERNAL_ACCOUNT_ALLOW_EXECUTABLES"
EXECUTABLE_TIMEOUT_MS = 30_000
SUBJECT_TYPES = {
    "urn:ietf:params:oauth:token-type:jwt": "id_token",
    "urn:ietf:params:oauth:token-type:id_token": "id_token",
    "urn:ietf:params:oauth:token-type:saml2": "saml_response",
}


@dataclass(frozen=True)
class ExternalAccountConfig:
    audience: str
    subject_token_type: str
    token_url: str
    credential_source: Mapping[str, Any] = field(repr=False)
    impersonation_url: str | None = None
    token_lifetime: int = 3600
    where: str = "external_account"

    @classmethod
    def from_info(cls, info: Mapping[str, Any], where: str) -> ExternalAccountConfig:
        def text(name: str) -> str:
            return fields.text(info, name, f"{where}: external_account") or ""

        source = info.get("credential_source")
        if not isinstance(source, Mapping):
            raise CredentialsError(f"{where}: external_account has no 'credential_source' object")
        if str(source.get("environment_id", "")).startswith("aws"):
            raise CredentialsError(
                f"{where}: AWS credential sources are not supported yet; use a file, url or executable source"
            )
        if not any(kind in source for kind in ("file", "url", "executable")):
            raise CredentialsError(f"{where}: credential_source needs 'file', 'url' or 'executable'")
        _check_source(source, f"{where}: credential_source")
        subject_type = text("subject_token_type")
        if subject_type not in SUBJECT_TYPES:
            raise CredentialsError(f"{where}: unsupported subject_token_type {fields.identifier(subject_type)}")
        impersonation = info.get("service_account_impersonation_url")
        options = info.get("service_account_impersonation") or {}
        if not isinstance(options, Mapping):
            raise CredentialsError(f"{where}: 'service_account_impersonation' is not an object")
        lifetime = options.get("token_lifetime_seconds", 3600)
        if type(lifetime) is not int or not 600 <= lifetime <= 43200:
            raise CredentialsError(f"{where}: token_lifetime_seconds must be 600 to 43200")
        return cls(
            audience=text("audience"),
            subject_token_type=subject_type,
            token_url=fields.url(info, "token_url", f"{where}: external_account") or STS_URL,
            credential_source=source,
            impersonation_url=impersonation if isinstance(impersonation, str) and impersonation else None,
            token_lifetime=lifetime,
            where=where,
        )


def _check_source(source: Mapping[str, Any], where: str) -> None:
    """The shapes a credential source's fields must have, checked at load (not mid-flow)."""
    if "file" in source:
        fields.text(source, "file", where)
    if "url" in source:
        fields.url(source, "url", where, required=True)
        headers = source.get("headers") or {}
        if not isinstance(headers, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) and k.isascii() and v.isascii() and v.isprintable()
            for k, v in headers.items()
        ):
            raise CredentialsError(f"{where}: 'headers' must be an object of ASCII strings")
    if "executable" in source and not isinstance(source["executable"], Mapping):
        raise CredentialsError(f"{where}: 'executable' is not an object")
    form = source.get("format") or {}
    if not isinstance(form, Mapping) or form.get("type", "text") not in ("text", "json"):
        raise CredentialsError(f'{where}: \'format\' must be {{"type": "text"}} or {{"type": "json", …}}')


def _extract(config: ExternalAccountConfig, raw: str, origin: str) -> str:
    """The subject token from ``raw`` in the source's format (text, or JSON with a field)."""
    form = config.credential_source.get("format") or {}
    token = subject_token_in(raw, form)
    if token is not None:
        return token
    if form.get("type", "text") == "json":
        name = form.get("subject_token_field_name")
        raise CredentialsError(f"{config.where}: {origin} has no JSON field {name!r} with the subject token")
    raise CredentialsError(f"{config.where}: {origin} is empty")


def subject_token_from_file(config: ExternalAccountConfig) -> str:
    path = Path(str(config.credential_source["file"]))
    try:
        return _extract(config, read_small_file(path).decode("utf-8"), f"subject token file {path}")
    except FileNotFoundError:
        raise CredentialsError(f"{config.where}: subject token file {path} does not exist") from None
    except UnreadableFile as exc:
        raise CredentialsError(f"{config.where}: subject token file {path} {exc}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CredentialsError(
            f"{config.where}: subject token file {path} cannot be read ({type(exc).__name__})"
        ) from None


def _from_executable(config: ExternalAccountConfig, impersonated_email: str | None) -> str:
    """Google's executable-sourced credentials: opt-in, bounded, cached in output_file."""
    spec = config.credential_source["executable"]
    if os.environ.get(ALLOW_EXECUTABLES) != "1":
        raise CredentialsError(f"{config.where}: executable credential sources run only with {ALLOW_EXECUTABLES}=1")
    command = spec.get("command") if isinstance(spec, Mapping) else None
    if not isinstance(command, str) or not command.strip():
        raise CredentialsError(f"{config.where}: executable credential source has no 'command'")
    timeout_ms = spec.get("timeout_millis", EXECUTABLE_TIMEOUT_MS)
    if not isinstance(timeout_ms, int) or not 5_000 <= timeout_ms <= 120_000:
        raise CredentialsError(f"{config.where}: timeout_millis must be 5000 to 120000")
    output_file = spec.get("output_file")
    if isinstance(output_file, str) and output_file:
        cached = _executable_response(config, Path(output_file), allow_expired_failure=True)
        if cached is not None:
            return cached
    env = {
        **os.environ,
        "GOOGLE_EXTERNAL_ACCOUNT_AUDIENCE": config.audience,
        "GOOGLE_EXTERNAL_ACCOUNT_TOKEN_TYPE": config.subject_token_type,
        "GOOGLE_EXTERNAL_ACCOUNT_INTERACTIVE": "0",
    }
    if impersonated_email:
        env["GOOGLE_EXTERNAL_ACCOUNT_IMPERSONATED_EMAIL"] = impersonated_email
    if isinstance(output_file, str) and output_file:
        env["GOOGLE_EXTERNAL_ACCOUNT_OUTPUT_FILE"] = output_file
    try:
        completed = subprocess.run(
            shlex.split(command),  # as Google's libraries: split into words, never a shell
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout_ms / 1000,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        raise CredentialsError(f"{config.where}: the executable did not finish within {timeout_ms} ms") from None
    except (OSError, ValueError) as exc:
        raise CredentialsError(f"{config.where}: the executable could not be run ({type(exc).__name__})") from None
    if completed.returncode != 0:
        raise CredentialsError(f"{config.where}: the executable failed (exit {completed.returncode})")
    token = _parse_executable(config, completed.stdout, "the executable's output", needs_expiry=bool(output_file))
    if token is None:
        raise CredentialsError(f"{config.where}: the executable returned an expired token")
    return token


def _executable_response(config: ExternalAccountConfig, path: Path, allow_expired_failure: bool) -> str | None:
    """A still-valid token cached by the executable in its output file, else None."""
    try:
        text = read_small_file(path).decode("utf-8")
    except (OSError, UnreadableFile, UnicodeDecodeError):
        return None
    if not text.strip():
        return None
    try:
        return _parse_executable(config, text, f"output file {path}", needs_expiry=True)
    except CredentialsError:
        if allow_expired_failure:
            return None
        raise


def _parse_executable(config: ExternalAccountConfig, text: str, origin: str, needs_expiry: bool) -> str | None:
    try:
        response = json.loads(text)
    except ValueError:
        raise CredentialsError(f"{config.where}: {origin} is not JSON") from None
    if not isinstance(response, dict) or response.get("version") != 1:
        raise CredentialsError(f"{config.where}: {origin} is not a version 1 executable response")
    if response.get("success") is not True:
        code, message = response.get("code", "?"), response.get("message", "")
        raise CredentialsError(f"{config.where}: the executable reported failure {code}: {str(message)[:200]}")
    expiry = response.get("expiration_time")
    if needs_expiry and not isinstance(expiry, int):
        raise CredentialsError(f"{config.where}: {origin} has no expiration_time (required with output_file)")
    if isinstance(expiry, int) and expiry <= time.time():
        return None
    field_name = SUBJECT_TYPES.get(str(response.get("token_type")), "")
    token = response.get(field_name) if field_name else None
    if not isinstance(token, str) or not token:
        raise CredentialsError(
            f"{config.where}: {origin} has no token for token_type {fields.identifier(response.get('token_type'))}"
        )
    return token


def subject_token_flow(config: ExternalAccountConfig, impersonated_email: str | None = None) -> Flow[str]:
    source = config.credential_source
    if "file" in source:
        return subject_token_from_file(config)
    if "executable" in source:
        return _from_executable(config, impersonated_email)
    url = str(source["url"])
    headers = {str(k): str(v) for k, v in (source.get("headers") or {}).items()}
    response = yield HttpRequest("GET", url, headers, describe={"subject_token": "url"}, retries=2)
    if response.status != 200:
        raise TokenRequestError(
            f"subject token URL {safe_url(url)} answered HTTP {response.status}", status=response.status
        )
    return _extract(config, response.body.decode("utf-8", "replace"), f"subject token URL {safe_url(url)}")


def access_token_flow(
    config: ExternalAccountConfig, scopes: Sequence[str], impersonated_email: str | None = None
) -> Flow[Token]:
    """STS token exchange: the subject token for a federated access token."""
    subject_token = yield from subject_token_flow(config, impersonated_email)
    form = {
        "grant_type": TOKEN_EXCHANGE,
        "audience": config.audience,
        "scope": " ".join(scopes),
        "requested_token_type": ACCESS_TOKEN_TYPE,
        "subject_token": subject_token,
        "subject_token_type": config.subject_token_type,
    }
    url = endpoints.resolve(config.token_url)
    body = yield from post_form(url, form, {"grant": "token-exchange", "audience": config.audience}, what="STS")
    return access_token_from(body, f"STS {safe_url(config.token_url)}")


class FederatedCredentials(Credentials):
    """An outside identity through workload identity federation: its access tokens come from STS.

    Federated principals cannot hold ID tokens; an ``external_account`` file with a
    ``service_account_impersonation_url`` becomes ImpersonatedCredentials over this one.
    """

    binding_role = "Workload Identity User (roles/iam.workloadIdentityUser)"

    def __init__(self, config: ExternalAccountConfig, impersonated_email: str | None = None):
        self.config = config
        self.impersonated_email = impersonated_email
        self._object_scope = secrets.token_hex(16)
        self.description = f"workload identity federation ({config.audience.rsplit('/providers/', 1)[-1]} provider)"

    def identity(self) -> str | None:
        # A file's subject token is read (cheap, local) and its digest is the proof of holding it.
        # A URL or an executable would have to be fetched or run to learn the token: their tokens
        # are cached for this very object only.
        config = self.config
        if "file" in config.credential_source:
            proof = subject_token_proof(subject_token_from_file(config))
        else:
            proof = f"object:{self._object_scope}"
        return external_identity(config.audience, endpoints.resolve(config.token_url), proof)

    def shared_identity(self) -> str | None:
        return self.identity() if "file" in self.config.credential_source else None

    def id_token_flow(self, audience: str) -> Flow[Token]:
        raise RefusedError(
            f"{self.config.where}: a federated identity gets ID tokens only by impersonating a service account; "
            "add service_account_impersonation_url (gcloud iam workload-identity-pools create-cred-config "
            "--service-account=SA) or pass --impersonate-service-account SA"
        )

    def access_token_flow(self, scopes: Sequence[str]) -> Flow[Token]:
        return access_token_flow(self.config, scopes, self.impersonated_email)
