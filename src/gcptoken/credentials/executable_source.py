"""Executable-sourced subject tokens (Google's "pluggable" credentials): opt-in with
``GOOGLE_EXTERNAL_ACCOUNT_ALLOW_EXECUTABLES=1``, run without a shell, bounded in time, cached in
the executable's ``output_file``, answered in Google's version-1 response format."""

from __future__ import annotations

import os
import shlex
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import gcptoken.credentials.fields as fields
from gcptoken.errors import CredentialsError
from gcptoken.keys.reference import without_pins
from gcptoken.private_files import UnreadableFile, file_error, read_small_file
from gcptoken.untrusted import UnreadableJson, json_object, one_line

__all__ = ["ALLOW_EXECUTABLES", "subject_token"]

ALLOW_EXECUTABLES = "GOOGLE_EXTERNAL_ACCOUNT_ALLOW_EXECUTABLES"
EXECUTABLE_TIMEOUT_MS = 30_000
# What each token_type's token is called in the executable's response.
RESPONSE_FIELDS = {
    "urn:ietf:params:oauth:token-type:jwt": "id_token",
    "urn:ietf:params:oauth:token-type:id_token": "id_token",
    "urn:ietf:params:oauth:token-type:saml2": "saml_response",
}


def subject_token(
    source: Mapping[str, Any], audience: str, token_type: str, impersonated_email: str | None, where: str
) -> str:
    """Google's executable-sourced credentials: opt-in, bounded, cached in output_file. ``audience``
    and ``token_type`` are the external account's, told to the executable in its environment."""
    spec = source["executable"]
    if os.environ.get(ALLOW_EXECUTABLES) != "1":
        raise CredentialsError(f"{where}: executable credential sources run only with {ALLOW_EXECUTABLES}=1")
    command = spec.get("command") if isinstance(spec, Mapping) else None
    if not isinstance(command, str) or not command.strip():
        raise CredentialsError(f"{where}: executable credential source has no 'command'")
    timeout_ms = spec.get("timeout_millis", EXECUTABLE_TIMEOUT_MS)
    if not isinstance(timeout_ms, int) or not 5_000 <= timeout_ms <= 120_000:
        raise CredentialsError(f"{where}: timeout_millis must be 5000 to 120000")
    output_file = spec.get("output_file")
    if isinstance(output_file, str) and output_file:
        cached = _executable_response(where, Path(output_file), allow_expired_failure=True)
        if cached is not None:
            return cached
    env = {
        **without_pins(),
        "GOOGLE_EXTERNAL_ACCOUNT_AUDIENCE": audience,
        "GOOGLE_EXTERNAL_ACCOUNT_TOKEN_TYPE": token_type,
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
            timeout=timeout_ms / 1000,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        raise CredentialsError(f"{where}: the executable did not finish within {timeout_ms} ms") from None
    except (OSError, ValueError) as exc:
        raise CredentialsError(f"{where}: the executable could not be run ({type(exc).__name__})") from None
    if completed.returncode != 0:
        raise CredentialsError(f"{where}: the executable failed (exit {completed.returncode})")
    token = _parse_executable(where, completed.stdout, "the executable's output", needs_expiry=bool(output_file))
    if token is None:
        raise CredentialsError(f"{where}: the executable returned an expired token")
    return token


def _executable_response(where: str, path: Path, allow_expired_failure: bool) -> str | None:
    """A still-valid token cached by the executable in its output file, else None. A FIFO, a
    device or a directory there is a CredentialsError (the executable is not run for it)."""
    try:
        data = read_small_file(path)
    except FileNotFoundError:
        return None  # not written yet
    except (OSError, UnreadableFile) as exc:
        raise file_error(path, f"{where}: the executable's output file", exc) from None
    if not data.strip():
        return None
    try:
        return _parse_executable(where, data, f"output file {path}", needs_expiry=True)
    except CredentialsError:
        if allow_expired_failure:
            return None
        raise


def _parse_executable(where: str, data: bytes, origin: str, needs_expiry: bool) -> str | None:
    try:
        response = json_object(data)
    except UnreadableJson as exc:
        raise CredentialsError(f"{where}: {origin} {exc}") from None
    if response.get("version") != 1:
        raise CredentialsError(f"{where}: {origin} is not a version 1 executable response")
    if response.get("success") is not True:
        code, message = response.get("code"), response.get("message")
        code = one_line(str(code), 40) if isinstance(code, str | int) else "?"
        message = one_line(message, 200) if isinstance(message, str) else ""
        raise CredentialsError(f"{where}: the executable reported failure {code}: {message}")
    expiry = response.get("expiration_time")
    if needs_expiry and not isinstance(expiry, int):
        raise CredentialsError(f"{where}: {origin} has no expiration_time (required with output_file)")
    if isinstance(expiry, int) and expiry <= time.time():
        return None
    field_name = RESPONSE_FIELDS.get(str(response.get("token_type")), "")
    token = response.get(field_name) if field_name else None
    if not isinstance(token, str) or not token:
        raise CredentialsError(
            f"{where}: {origin} has no token for token_type {fields.identifier(response.get('token_type'))}"
        )
    return token
