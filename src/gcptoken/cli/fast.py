"""The cached path of ``gcptoken id`` and ``gcptoken access``: when an earlier run left a fresh
token in the on-disk cache, answer from it before argparse, logging or any credential code is
loaded, so a cached call costs little more than Python's own start.

Only the plain forms are answered here: a key file or user credential named by ``--credentials``,
``$GOOGLE_APPLICATION_CREDENTIALS`` or gcloud's ADC file, and the options ``--audience``,
``--scopes``, ``--format token|json|header`` and ``--timeout``. Anything else, any doubt, and any
miss return None, and the full command line runs (and writes the cache for next time).
"""

from __future__ import annotations

import json
import os
import sys
import time

from gcptoken import endpoints, locations
from gcptoken.cache.disk import fresh_entry, read_tokens
from gcptoken.cache.pepper import cache_pepper
from gcptoken.cache.rules import (
    cache_key,
    external_identity,
    hardware_pin_proof,
    impersonated_identity,
    metadata_identity,
    private_key_proof,
    service_account_identity,
    subject_token_proof,
    user_identity,
)
from gcptoken.cli.interrupts import Terminated, drop_stdout, stopped, unwind_on_sigterm
from gcptoken.errors import HardwareKeyError
from gcptoken.jose.pem import rsa_private_key_problem
from gcptoken.keys.reference import MAX_PIN, hardware_kind, pin_env_name
from gcptoken.private_files import NotPrivateError, PrivateDir, UnreadableFile, read_small_file
from gcptoken.untrusted import UnreadableJson, is_token_text, json_object

TYPE_CHECKING = False  # not typing's: importing typing would cost this path ~10 ms
if TYPE_CHECKING:
    from typing import Any

__all__ = ["answer_from_cache", "cached_token"]

_CREDENTIALS_ENV = "GOOGLE_APPLICATION_CREDENTIALS"
# As credentials.external_account and credentials.metadata say (not imported: they load httpx's world).
STS_URL = "https://sts.googleapis.com/v1/token"
DEFAULT_METADATA_HOST = "metadata.google.internal"
_IAM_BASE = "https://iamcredentials.googleapis.com/v1/projects/-/serviceAccounts/"  # credentials.impersonated's
_OPTIONS = {
    "id": ("--audience", "--credentials", "--format", "--timeout"),
    "access": ("--scopes", "--credentials", "--format", "--timeout"),
}
_FORMATS = ("token", "json", "header")


def _parse(argv: list[str]) -> tuple[str, list[str], dict[str, str]] | None:
    """(command, positionals, options) for the plain forms; None for anything else."""
    if not argv or argv[0] not in _OPTIONS:
        return None
    command, allowed = argv[0], _OPTIONS[argv[0]]
    positionals: list[str] = []
    options: dict[str, str] = {}
    rest = iter(argv[1:])
    for arg in rest:
        if not arg.startswith("-"):
            positionals.append(arg)
            continue
        name, equals, value = arg.partition("=")
        if name not in allowed or name in options:
            return None
        if not equals:
            value = next(rest, "")
        if not value or value.startswith("-"):
            return None
        options[name] = value
    return command, positionals, options


def _credential_file(options: dict[str, str]) -> str | None:
    if "--credentials" in options:  # given blank, it is a usage error the full command line reports
        return options["--credentials"].strip() or None
    named = os.environ.get(_CREDENTIALS_ENV, "").strip()
    if named:
        return named
    adc = locations.adc_file()
    return adc if os.path.exists(adc) else None


def _text(info: dict[str, Any], name: str) -> str:
    value = info.get(name)
    return value if isinstance(value, str) else ""


def _identity_and_default_audience(path: str) -> tuple[str, str | None] | None:
    try:
        info = json_object(read_small_file(path))  # never a FIFO or /dev/zero: no stall here
    except (OSError, UnreadableJson, UnreadableFile):
        return None  # the full command line says what is wrong, in one line
    return _identity_of(info, nested=False)


def _identity_of(info: dict[str, Any], nested: bool) -> tuple[str, str | None] | None:
    """The same identity the full command line computes (cache_rules builds both), or None for
    anything this path does not fully understand: the full command line then decides."""
    kind = info.get("type")
    if info.get("universe_domain", "googleapis.com") != "googleapis.com":
        return None  # another universe's flows: the full command line
    if kind == "service_account":
        email, key_id, pem = _text(info, "client_email"), _text(info, "private_key_id"), _text(info, "private_key")
        if not (email and key_id and pem):
            return None  # the full command line says what is wrong
        proof = _hardware_proof(info, pem) if hardware_kind(pem) else None
        if proof is None and (hardware_kind(pem) or rsa_private_key_problem(pem) is not None):
            return None
        return service_account_identity(email, key_id, _url(info, "token_uri"), proof or private_key_proof(pem)), None
    if kind == "authorized_user":
        client_id, secret, refresh = (_text(info, n) for n in ("client_id", "client_secret", "refresh_token"))
        if client_id and secret and refresh:
            return f"{user_identity(client_id, refresh)}|{_url(info, 'token_uri')}", client_id
        return None
    if nested:
        return None
    if kind == "impersonated_service_account":
        return _impersonated(info)
    if kind == "external_account":
        return _external(info)
    return None


def _hardware_proof(info: dict[str, Any], reference: str) -> str | None:
    """A hardware key's proof from its PIN's variable, as keys.opened computes it; None (the full
    command line) without one: it asks for the PIN, or proves possession in the device."""
    pin_env = info.get("pin_env")
    try:
        variable = pin_env_name(pin_env if isinstance(pin_env, str) else None)
    except HardwareKeyError:
        return None
    pin = os.environ.get(variable, "")
    if not pin or len(pin) > MAX_PIN or "\x00" in pin:
        return None
    pepper = cache_pepper()
    if pepper is None:
        return None  # the full command line proves possession in the device
    # A TPM key file without a PIN (emptyAuth) proves possession by signing: its entries are never
    # under a PIN's proof, so this one simply misses.
    return hardware_pin_proof(reference.strip(), pin, pepper)


def _url(info: dict[str, Any], name: str, default: str = endpoints.TOKEN_URI) -> str:
    return endpoints.resolve(_text(info, name) or default)


def _impersonation(info: dict[str, Any]) -> tuple[str, str] | None:
    """(IAM base, target) of ``…/serviceAccounts/EMAIL:generateAccessToken``."""
    url = _text(info, "service_account_impersonation_url")
    base, marker, rest = url.rpartition("/serviceAccounts/")
    target, colon, method = rest.partition(":")
    if not (base and marker and target and colon) or method != "generateAccessToken" or "/" in target:
        return None
    return endpoints.resolve(base + marker), target


def _impersonated(info: dict[str, Any]) -> tuple[str, str | None] | None:
    source, found = info.get("source_credentials"), _impersonation(info)
    delegates = info.get("delegates") or []
    if not isinstance(source, dict) or found is None or not isinstance(delegates, list):
        return None
    if not all(isinstance(d, str) for d in delegates):
        return None
    inner = _identity_of(source, nested=True)
    if inner is None:
        return None
    chain = [d.removeprefix("projects/-/serviceAccounts/") for d in delegates] + [found[1]]
    return impersonated_identity(inner[0], chain, False, 3600, found[0]), None


def _external(info: dict[str, Any]) -> tuple[str, str | None] | None:
    """A file-sourced external account (the only kind whose tokens are shared beyond one process)."""
    source, audience = info.get("credential_source"), _text(info, "audience")
    if not isinstance(source, dict) or not isinstance(source.get("file"), str) or not audience:
        return None
    if info.get("workforce_pool_user_project") or info.get("client_id"):
        return None
    form = source.get("format") or {}
    if not isinstance(form, dict):
        return None
    from gcptoken.credentials.subject_token import subject_token_in  # only this kind reads a subject token

    try:
        token = subject_token_in(read_small_file(source["file"]).decode("utf-8"), form)
    except (OSError, UnicodeDecodeError, UnreadableFile):
        return None
    if token is None:
        return None
    federated = external_identity(audience, _url(info, "token_url", STS_URL), subject_token_proof(token))
    if "service_account_impersonation_url" not in info:
        return federated, None
    found = _impersonation(info)
    options = info.get("service_account_impersonation") or {}
    lifetime = options.get("token_lifetime_seconds", 3600) if isinstance(options, dict) else None
    if found is None or type(lifetime) is not int or not 600 <= lifetime <= 43200:
        return None
    return impersonated_identity(federated, [found[1]], False, lifetime, found[0]), None


def _metadata_identity() -> str | None:
    """With no credential file, ADC pings the metadata server; a token it issued before, still in
    the cache for the same host, needs no ping (whoever can reach the host can get one anyway)."""
    if os.environ.get("NO_GCE_CHECK", "").lower() in ("true", "1"):
        return None  # ADC would not use the metadata server
    host = DEFAULT_METADATA_HOST
    for variable in ("GCE_METADATA_HOST", "GCE_METADATA_ROOT"):
        value = os.environ.get(variable, "").strip()
        if value:
            host = endpoints.checked_host(value, variable)
            break
    return metadata_identity(host, "standard", False)


def _note_audience(audience: str) -> None:
    """The full command line's note on a URL audience with more than ``scheme://host``, said on a
    cache hit too; checks (and the urllib/re imports it costs) loads only for such an audience."""
    after_scheme = audience.partition("://")[2]
    if not after_scheme or not any(mark in after_scheme.rstrip("/") for mark in "/?#@"):
        return
    from gcptoken.checks import audience_note

    note = audience_note(audience)
    if note is not None:
        sys.stderr.write(f"gcptoken: note: {note}\n")


def cached_token(
    kind: str, subject: str | None, credentials: str | None = None, impersonate: str | None = None
) -> dict[str, Any] | None:
    """A fresh disk-cache entry (``value``, ``expires_at``, ``expires_at_iso``) for ``kind``
    (``id_token`` or ``access_token``) and ``subject`` (an audience, or space-separated scopes),
    from the credential ADC would use (or the file ``credentials``), through ``impersonate``
    (``A,B,C`` as gcloud reads it) when given; None on any miss or doubt. A None subject is the
    default: the user's client id for ``id_token``, cloud-platform for ``access_token``. The
    credential helpers answer from here before loading anything else."""
    options = {"--credentials": credentials} if credentials is not None else {}
    path = _credential_file(options)
    try:
        if path:
            found = _identity_and_default_audience(path)
        elif credentials is not None:
            found = None
        else:
            metadata = _metadata_identity()
            found = None if metadata is None else (metadata, None)
    except ValueError:  # a bad GCPTOKEN_EMULATOR_HOST, metadata host or token_uri: the full path says so
        return None
    if found is None:
        return None
    identity, default_audience = found
    if impersonate is not None:
        chain = [email.strip() for email in impersonate.split(",")]
        if not all(chain):
            return None  # the full command line says what is wrong
        # As ImpersonatedCredentials.from_chain(source, "A,B,C").shared_identity() computes it.
        try:
            iam_base = endpoints.resolve(_IAM_BASE)
        except ValueError:  # a bad GCPTOKEN_EMULATOR_HOST: the full path says so
            return None
        identity, default_audience = impersonated_identity(identity, chain, False, 3600, iam_base), None
    if subject is None:
        subject = default_audience if kind == "id_token" else endpoints.CLOUD_PLATFORM_SCOPE
    if not subject or not subject.strip():
        return None
    try:
        with PrivateDir(locations.token_cache_dir(), create=False) as directory:
            entry = read_tokens(directory).get(cache_key(identity, kind, subject))
    except NotPrivateError:
        return None  # the full command line warns and works without the disk cache
    fresh = fresh_entry(entry, time.time())
    if fresh is None or fresh["kind"] != kind or not is_token_text(fresh["value"]):
        return None  # a cached value that is no token is not used: the full path fetches one
    return fresh


def answer_from_cache(argv: list[str]) -> int | None:
    """0 after printing a cached token, or None: the full command line must run."""
    parsed = _parse(argv)
    if parsed is None:
        return None
    command, positionals, options = parsed
    output = options.get("--format", "token")
    try:
        timeout = float(options.get("--timeout", "10"))
    except ValueError:
        return None  # the full command line says what is wrong
    if not 0 < timeout < float("inf"):
        return None
    if output not in _FORMATS or len(positionals) > (1 if command == "id" else 0):
        return None
    subject: str | None
    if command == "id":
        audiences = {*positionals, *([options["--audience"]] if "--audience" in options else [])}
        if len(audiences) > 1:
            return None
        subject = audiences.pop() if audiences else None
        kind, field = "id_token", "id_token"
    else:
        scopes = options.get("--scopes", endpoints.CLOUD_PLATFORM_SCOPE).replace(",", " ").split()
        subject, kind, field = " ".join(sorted(scopes)), "access_token", "access_token"
    fresh = cached_token(kind, subject, options.get("--credentials"))
    if fresh is None:
        return None
    if output == "token":
        text = fresh["value"]
    elif output == "header":
        text = f"Authorization: Bearer {fresh['value']}"
    else:
        text = json.dumps({field: fresh["value"], "expires_at": fresh["expires_at_iso"]}, indent=2)
    if kind == "id_token" and subject is not None:
        _note_audience(subject)  # as the full command line would have said (a miss goes there)
    sys.stdout.write(text + "\n")
    return 0


class OutputError(OSError):
    """stdout could not be written: a full disk (``>/dev/full``), a closed descriptor (``>&-``)."""


class _GuardedOutput:
    """sys.stdout (or its buffer) as the command line uses it: a failed write raises OutputError,
    which main() reports in one line, where a bare OSError could come from anything; a process
    started without stdout gets one that fails on the first write only (a command that prints
    nothing still works). A BrokenPipeError (the reader went away) stays what it is."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def write(self, data: Any) -> int:
        if self._stream is None:
            raise OutputError(9, "stdout is closed")  # EBADF, as a closed descriptor says
        try:
            return int(self._stream.write(data))
        except BrokenPipeError:
            raise
        except OSError as exc:
            raise OutputError(exc.errno, exc.strerror) from None

    def flush(self) -> None:
        if self._stream is None:
            return
        try:
            self._stream.flush()
        except BrokenPipeError:
            raise
        except OSError as exc:
            raise OutputError(exc.errno, exc.strerror) from None

    @property
    def buffer(self) -> _GuardedOutput:
        return _GuardedOutput(None if self._stream is None else self._stream.buffer)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def _output_failed(exc: OSError) -> int:
    """One line for output that could not be written (``>/dev/full``, a closed stdout; nothing for a
    reader that went away); the unwritten rest is dropped (fd 1 now goes to /dev/null), so the
    exit-time flush cannot print a traceback."""
    drop_stdout()
    if not isinstance(exc, BrokenPipeError):
        sys.stderr.write(f"gcptoken: error: cannot write to stdout: {exc.strerror or exc}\n")
    return 3


def main() -> int:
    """The ``gcptoken`` command: the cached path first, then the full command line."""
    unwind_on_sigterm()  # SIGTERM ends a one-shot command as Ctrl-C does: one line, exit 143
    sys.stdout = _GuardedOutput(sys.stdout)
    try:
        if sys.argv[1:2] == ["kube-credential"]:  # kubectl's plugin: its own cached answer
            from gcptoken.helpers.kube import answer_from_cache as kube_answer

            code = kube_answer(sys.argv[1:])
        else:
            code = answer_from_cache(sys.argv[1:])
        if code is None:
            from gcptoken.cli.main import main as full_command_line

            code = full_command_line()
    except (KeyboardInterrupt, Terminated) as exc:
        return stopped(exc)
    except BrokenPipeError:
        return 3
    except OutputError as exc:
        return _output_failed(exc)
    try:
        sys.stdout.flush()  # here, not at exit: what is left to write fails in one line too
    except (OutputError, BrokenPipeError) as exc:
        return _output_failed(exc)
    return code
