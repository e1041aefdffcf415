"""The gcloud CLI as a credential source: ``gcloud auth print-identity-token`` / ``print-access-token``.

The one source that runs a program instead of speaking HTTP. gcloud never prompts (no stdin,
prompts disabled) and its own environment (``CLOUDSDK_CONFIG``, endpoint overrides) is respected."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from gcptoken.credentials.base import DEFAULT_SCOPES, Credentials, T
from gcptoken.credentials.oauth2 import id_token_from
from gcptoken.errors import CredentialsError, InvalidArgumentError, TokenRequestError
from gcptoken.http.flows import Flow
from gcptoken.keys.reference import without_pins
from gcptoken.tokens import Token, utc_from_epoch
from gcptoken.untrusted import is_token_text, one_line

if TYPE_CHECKING:
    from gcptoken.credentials.signing import Signature

__all__ = ["GcloudCredentials", "run_gcloud"]

GCLOUD_TIMEOUT = 120.0
# gcloud does not say when an access token expires; it refreshes its own a few minutes before they
# do, so this much is always left.
ACCESS_TOKEN_ASSUMED_LIFETIME = 300


# gcloud's own words when there is no account to use: NoActiveAccountException and
# NoCredentialsForAccountException (googlecloudsdk/core/credentials/exceptions.py and store.py in
# the Google Cloud SDK). Its "Please run: gcloud auth login" hint is no diagnosis: every failed
# refresh (an endpoint it cannot reach included) ends with it.
_NO_ACCOUNT = ("do not currently have an active account", "does not have any valid credentials")
# What could be a secret in a line gcloud wrote: tokens (access, ID, refresh), OAuth client
# secrets, a PEM block, and the values of the form fields that carry them.
_SECRET = re.compile(
    r"(?P<field>\b(?:access_token|refresh_token|id_token|client_secret|assertion|subject_token|code)=)[^&\s\"']+"
    r"|ya29\.[\w.-]+|eyJ[\w-]*\.[\w-]+\.[\w-]*|1//[\w-]+|GOCSPX-[\w-]+|-----BEGIN.*"
)


def _redacted(found: re.Match[str]) -> str:
    return f"{found.group('field') or ''}<redacted>"  # a form field keeps its name


def _last_error_line(stderr: str) -> str:
    """gcloud's last ``ERROR:`` line (else its last line), whole: only what could be a secret is
    replaced, and characters a terminal would obey are escaped."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("ERROR:")]
    last = (errors or lines or ["no error message"])[-1].removeprefix("ERROR:").strip()
    return one_line(_SECRET.sub(_redacted, last), None)


def run_gcloud(arguments: Sequence[str], timeout: float = GCLOUD_TIMEOUT) -> str:
    """gcloud's stdout, or CredentialsError with gcloud's own reason (never its prompts)."""
    import shutil  # here: a one-shot CLI run on a key file loads this module but never runs gcloud
    import subprocess

    executable = shutil.which("gcloud")
    if executable is None:
        raise CredentialsError(
            "gcloud is not installed (not on PATH): install the Google Cloud CLI or use another --source"
        )
    env = {**without_pins(), "CLOUDSDK_CORE_DISABLE_PROMPTS": "1"}
    try:
        completed = subprocess.run(
            [executable, *arguments, "--quiet", "--verbosity=error"],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            errors="replace",  # bytes that are not text become U+FFFD, never a UnicodeDecodeError
            timeout=timeout,
            env=env,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise CredentialsError(f"gcloud did not answer within {timeout:.0f} s") from None
    except OSError as exc:
        raise CredentialsError(f"gcloud could not be run: {exc.strerror}") from None
    if completed.returncode != 0:
        reason = _last_error_line(completed.stderr)
        if any(words in reason for words in _NO_ACCOUNT):
            raise CredentialsError(
                f"gcloud has no account to use (run 'gcloud auth login' or 'gcloud auth activate-service-account'): "
                f"{reason}"
            )
        raise TokenRequestError(f"gcloud failed (exit {completed.returncode}): {reason}")
    return completed.stdout.strip()


def _impersonation(chain: str | None) -> list[str]:
    return [f"--impersonate-service-account={chain}"] if chain else []


def id_token(audience: str | None, chain: str | None = None, include_email: bool = False) -> Token:
    arguments = ["auth", "print-identity-token", *_impersonation(chain)]
    if audience:
        arguments.append(f"--audiences={audience}")
    if include_email:
        arguments.append("--include-email")
    return id_token_from({"identity token": run_gcloud(arguments)}, "gcloud", "identity token")


def access_token(chain: str | None = None, lifetime: int | None = None) -> Token:
    arguments = ["auth", "print-access-token", *_impersonation(chain)]
    if lifetime is not None:
        arguments.append(f"--lifetime={lifetime}")
    value = run_gcloud(arguments)
    if not is_token_text(value):
        raise TokenRequestError("gcloud printed something that is not an access token")
    return Token(value, utc_from_epoch(int(time.time()) + ACCESS_TOKEN_ASSUMED_LIFETIME), "access_token")


def _no_io(produce: Callable[[], T]) -> Flow[T]:
    """A flow that makes no HTTP request: for sources that run a program instead."""
    return produce()
    yield  # pragma: no cover - makes this a generator, so both drivers can run it


class GcloudCredentials(Credentials):
    """Whatever gcloud is logged in as, through ``gcloud auth print-*-token`` (gcloud does the
    impersonation itself when ``impersonate`` names a chain)."""

    def __init__(self, impersonate: str | None = None, *, include_email: bool = False, lifetime: int | None = None):
        self.impersonate = impersonate
        self.include_email = include_email
        self.lifetime = lifetime
        self.description = "gcloud's active account" + (f", impersonating {impersonate}" if impersonate else "")

    def runs_programs(self) -> bool:
        return True

    def signer(self, sign_as: str | None = None) -> Credentials:
        """The account gcloud acts as, signing through IAM Credentials with gcloud's access token:
        an explicit chain's target (this object's impersonation: the gcloud account calls IAM for
        it), else gcloud's own ``auth/impersonate_service_account`` (gcloud's token is already that
        account's), else the active account when it is a service account. A user must sign as a
        service account (``sign_as``)."""
        chain = sign_as or self.impersonate
        if chain:
            plain: GcloudCredentials = self.__dict__.setdefault("_plain", GcloudCredentials())
            return Credentials.signer(plain, chain)
        found: Credentials | None = self.__dict__.get("_own_signer")
        if found is None:
            found = self.__dict__.setdefault("_own_signer", self._configured_signer())
        return found

    def signer_email_flow(self) -> Flow[str]:
        return self.signer().signer_email_flow()

    def sign_blob_flow(self, data: bytes) -> Flow[Signature]:
        return self.signer().sign_blob_flow(data)

    def sign_jwt_flow(self, claims: dict[str, Any]) -> Flow[Token]:
        return self.signer().sign_jwt_flow(claims)

    def _configured_signer(self) -> Credentials:
        import json

        from gcptoken.credentials.impersonated import ImpersonatedCredentials
        from gcptoken.credentials.signing import signing_needs_a_service_account

        try:  # `gcloud config list` shows the properties in force (environment variables included)
            config = json.loads(run_gcloud(["config", "list", "--format=json"]))
            account = config.get("core", {}).get("account")
            impersonated = config.get("auth", {}).get("impersonate_service_account")
        except (ValueError, AttributeError):
            raise CredentialsError("gcloud config list printed something that is not its JSON") from None
        if isinstance(impersonated, str) and impersonated.strip():
            return ImpersonatedCredentials(self, impersonated.split(",")[-1].strip())
        if not isinstance(account, str) or not account:
            raise CredentialsError(
                "gcloud has no active account (run 'gcloud auth login' or 'gcloud config set account')"
            )
        if not account.endswith(".gserviceaccount.com"):
            raise signing_needs_a_service_account(f"gcloud's account {one_line(account, 100)}")
        return ImpersonatedCredentials(self, account)

    def id_token_flow(self, audience: str) -> Flow[Token]:
        return _no_io(lambda: id_token(audience, self.impersonate, self.include_email))

    def access_token_flow(self, scopes: Sequence[str]) -> Flow[Token]:
        if tuple(scopes) != DEFAULT_SCOPES:
            raise InvalidArgumentError(
                "gcloud prints access tokens for its own scopes; --scopes cannot be used with it"
            )
        return _no_io(lambda: access_token(self.impersonate, self.lifetime))
