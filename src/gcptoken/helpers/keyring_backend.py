"""A keyring backend (entry point ``keyring.backends``, name ``gcptoken``) that pip and uv ask for
Artifact Registry credentials: ``oauth2accesstoken`` and an access token, for ``*.pkg.dev`` and the
hosts in ``$GCPTOKEN_HELPER_HOSTS`` only, and only asked with a full ``https://`` URL; for every
other service it answers None, so the next backend (or none) does. Never for a bare host: pip and
uv ask for the URL first and for its host only when the URL got nothing, which for an
``http://`` index would hand a token to a plain-HTTP server. The token comes from the on-disk cache when fresh, so uv's
``keyring get URL USERNAME``, one process per request, costs a Python start, not a refresh.

Failures answer None with one ``gcptoken:`` line on stderr: keyring's CLI prints a traceback for a
backend's exception (and pip's ``import`` provider turns keyring off for the rest of the run),
while None is what both tools take as "no credential here" (pip then reports the 401, uv too).

Importing this module loads keyring's own base classes only: keyring's CLI imports every
backend's entry point on each call, and gcptoken's token code loads only when asked for a host it
answers for."""

from __future__ import annotations

import os
import sys

from gcptoken.extras import require

require("keyring", "gcptoken's keyring backend (gcptoken.helpers.keyring_backend)")  # before keyring's imports

from keyring.backend import KeyringBackend
from keyring.credentials import SimpleCredential
from keyring.errors import PasswordDeleteError, PasswordSetError

__all__ = ["TIMEOUT_ENV", "USERNAME", "GcptokenKeyring"]

# Artifact Registry takes an access token as the password of this user name (and no other for a
# token): https://cloud.google.com/artifact-registry/docs/python/authentication
USERNAME = "oauth2accesstoken"

# Seconds one lookup may spend getting a token, retries included. gcptoken's usual (10 s a
# request, 30 s a token call) would hold pip or uv that long per lookup on a hung token endpoint,
# and uv runs one lookup per request; Google's token endpoints answer in well under a second.
TIMEOUT_ENV = "GCPTOKEN_KEYRING_TIMEOUT"
DEFAULT_TIMEOUT = 9.0
# A token call's requests and retries end within this many per-request timeouts
# (gcptoken.credentials.base.DEADLINE_TIMEOUTS; not imported: it loads httpx).
_TIMEOUTS_PER_CALL = 3


class _NotOurs(PasswordSetError, PasswordDeleteError, NotImplementedError):
    """A store or delete for a service we do not answer for: keyring's chainer passes a
    NotImplementedError on to the next backend (and only that), so the user's own keyring keeps
    working; used alone, keyring's callers see a PasswordSetError/PasswordDeleteError."""


class GcptokenKeyring(KeyringBackend):
    """Answers ``get_password``/``get_credential`` with a Google access token for the ``https://``
    URLs of the hosts :func:`gcptoken.helpers.hosts.answers_for` names; stores and deletes nothing."""

    # keyring asks backends in priority order (its chainer, priority 10, sorts the rest highest
    # first): above Google's own keyrings.gauth (9) so ours answers first for the same hosts, and
    # above the system keyrings (SecretService 5, macOS 5, Windows 5) that never hold these tokens.
    priority = 9.5

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]  # keyring's own __init__ is untyped

    def get_password(self, service: str, username: str | None) -> str | None:
        if username not in (None, USERNAME):
            return None  # Artifact Registry refuses a token under any other user name
        return _token_for(service)

    def get_credential(self, service: str, username: str | None) -> SimpleCredential | None:
        password = self.get_password(service, username)
        return None if password is None else SimpleCredential(USERNAME, password)

    def set_password(self, service: str, username: str, password: str) -> None:
        raise _refusal(service, "store")

    def delete_password(self, service: str, username: str) -> None:
        raise _refusal(service, "delete")


def _refusal(service: str, verb: str) -> Exception:
    from gcptoken.helpers.hosts import answers_for

    if not answers_for(service):
        return _NotOurs(f"gcptoken's keyring backend does not {verb} passwords")
    message = f"gcptoken makes a fresh access token for this host on each request: nothing to {verb}"
    return PasswordSetError(message) if verb == "store" else PasswordDeleteError(message)


# A failure already told in this process (pip's ``import`` provider asks again on every 401, for
# each page): said once, not retried, so pip's output carries one gcptoken line.
_failed: list[str] = []


def _quiet_http_logs() -> None:
    """pip logs at INFO in its own process (the ``import`` provider): httpx's per-request INFO
    line would land in pip's output. Left alone where the host application chose a level."""
    import logging

    for name in ("httpx", "httpcore"):
        logger = logging.getLogger(name)
        if logger.level == logging.NOTSET:
            logger.setLevel(logging.WARNING)


def _timeout() -> float:
    """The per-request timeout that makes a whole token call end within ``$GCPTOKEN_KEYRING_TIMEOUT``."""
    text = os.environ.get(TIMEOUT_ENV, "").strip()
    total = DEFAULT_TIMEOUT
    if text:
        try:
            total = float(text)
        except ValueError:
            total = -1.0
        if not 0 < total <= 600:
            shown = text.encode("ascii", "backslashreplace").decode()[:40]
            print(f"gcptoken: ignoring {TIMEOUT_ENV}={shown!r}: not seconds in (0, 600]", file=sys.stderr)
            total = DEFAULT_TIMEOUT
    return total / _TIMEOUTS_PER_CALL


def _token_for(service: str) -> str | None:
    from gcptoken.helpers.hosts import answers_for, host_of

    if not answers_for(service, url_only=True) or _failed:
        return None
    from gcptoken.errors import GcpTokenError
    from gcptoken.helpers.tokens import helper_token
    from gcptoken.untrusted import one_line

    _quiet_http_logs()
    try:
        return helper_token("access_token", timeout=_timeout()).value
    except GcpTokenError as error:
        problem = one_line(str(error))
    except Exception as error:  # a bug of ours must not become a traceback in pip's or uv's output
        problem = f"unexpected {type(error).__name__}"
    _failed.append(problem)
    print(f"gcptoken: no access token for {one_line(host_of(service), 100)}: {problem}", file=sys.stderr)
    return None
