"""``gcptoken keyring check URL``'s findings: whether pip and uv would get an access token from
gcptoken's keyring backend for an index URL. Each check is one line (ok or not, and why); the
token itself is never part of a line."""

from __future__ import annotations

import importlib.metadata
import os
import shutil
import subprocess
import sys
import time
from typing import NamedTuple

__all__ = ["Finding", "keyring_here", "keyring_on_path", "token_for", "url_finding"]

OUR_CLASS = "gcptoken.helpers.keyring_backend.GcptokenKeyring"
INSTALL_HERE = "pip install 'gcptoken[keyring]'"
INSTALL_TOOL = "uv tool install keyring --with 'gcptoken[keyring]'"
# keyring's CLI imports every backend; a hung one (a locked D-Bus) must not hang the check.
LIST_TIMEOUT = 20.0


class Finding(NamedTuple):
    """One line of the checklist; ``ok`` None for a note that decides nothing."""

    ok: bool | None
    text: str


def url_finding(url: str) -> Finding:
    """Whether the backend answers for ``url`` as pip and uv ask it (the index URL itself)."""
    from gcptoken.helpers.hosts import HOSTS_ENV, answers_for, host_of
    from gcptoken.untrusted import one_line

    scheme, found, _ = url.strip().partition("://")
    host = one_line(host_of(url), 100)
    if answers_for(url, url_only=True):
        return Finding(True, f"{host} is a host gcptoken answers for (https only)")
    if not found:
        return Finding(False, "not a URL: write the index as https://HOST/… (a bare host is never answered)")
    if scheme.lower() != "https":
        return Finding(False, f"{one_line(scheme, 20)}://: a token goes over https:// only (write https://{host}/…)")
    if not host:
        return Finding(False, "the URL names no host")
    return Finding(
        False, f"{host} is not a Google host (*.pkg.dev, gcr.io, *.gcr.io) and not in {HOSTS_ENV} (host or host:port)"
    )


def user_finding(url: str) -> Finding | None:
    """A user name in the URL: pip's subprocess provider and uv need ``oauth2accesstoken@``;
    any other is refused by the backend; a password in the URL means keyring is never asked."""
    from urllib.parse import urlsplit

    if "://" not in url:
        return None
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return None
    if parts.password is not None:
        return Finding(False, "the URL carries a password: pip and uv use it and never ask keyring")
    # pip's subprocess provider asks `keyring get` only with a user name
    # (pip/_internal/network/auth.py, KeyRingCliProvider); uv without one needs `authenticate = "always"`.
    if parts.username is None:
        return Finding(
            None, "no user name in the URL: pip's subprocess provider needs https://oauth2accesstoken@HOST/…"
        )
    if parts.username != "oauth2accesstoken":
        return Finding(False, "the URL's user name is not oauth2accesstoken: the backend answers only that one")
    return None


def keyring_here() -> list[Finding]:
    """pip's ``import`` provider: keyring in this Python, our entry point, who keyring asks first."""
    where = sys.executable
    try:
        import keyring
    except ImportError:
        return [Finding(False, f"keyring is not importable in {where} (pip's import provider): {INSTALL_HERE}")]
    points = importlib.metadata.entry_points(group="keyring.backends")
    if not any(point.name == "gcptoken" for point in points):
        return [Finding(False, f"keyring in {where} has no gcptoken backend entry point: {INSTALL_HERE}")]
    from keyring.backends.chainer import ChainerBackend

    chosen = keyring.get_keyring()  # honours PYTHON_KEYRING_BACKEND and keyringrc.cfg, as pip's keyring does
    rings = list(chosen.backends) if isinstance(chosen, ChainerBackend) else [chosen]
    names = [f"{type(ring).__module__}.{type(ring).__name__}" for ring in rings]
    if OUR_CLASS not in names:
        return [Finding(False, f"keyring in {where} uses {', '.join(names) or 'no backend'} only: not gcptoken's")]
    first = names[0]
    position = "first" if first == OUR_CLASS else f"after {first} (priority {rings[0].priority})"
    return [Finding(True, f"keyring in {where} asks gcptoken's backend {position}")]


def keyring_on_path() -> Finding:
    """uv's and pip's ``subprocess`` provider: the ``keyring`` command on PATH lists our backend."""
    program = shutil.which("keyring")
    if program is None:
        return Finding(False, f"no keyring command on PATH (uv, pip's subprocess provider): {INSTALL_TOOL}")
    try:
        done = subprocess.run(
            [program, "--list-backends"], capture_output=True, text=True, timeout=LIST_TIMEOUT, check=False
        )
    except subprocess.TimeoutExpired:
        return Finding(False, f"{program} --list-backends did not answer in {LIST_TIMEOUT:.0f} s")
    except OSError as error:
        return Finding(False, f"{program} cannot run: {error.strerror or type(error).__name__}")
    if OUR_CLASS not in done.stdout:
        return Finding(False, f"{program} does not list gcptoken's backend: {INSTALL_TOOL}")
    # --list-backends lists every backend installed; this variable makes keyring use that one only
    # (keyring/core.py, load_env).
    forced = os.environ.get("PYTHON_KEYRING_BACKEND", "").strip()
    if forced and forced != OUR_CLASS:
        return Finding(
            False, f"{program} lists gcptoken's backend, but PYTHON_KEYRING_BACKEND makes it ask another only"
        )
    return Finding(True, f"{program} lists gcptoken's backend")


def token_for(timeout: float) -> Finding:
    """Whether the backend can get a token now (ADC; from the disk cache when fresh), by kind,
    account and seconds left; never the value."""
    from gcptoken.errors import GcpTokenError
    from gcptoken.helpers.tokens import helper_token
    from gcptoken.untrusted import one_line

    try:
        token = helper_token("access_token", timeout=timeout)
        account = _account()
    except GcpTokenError as error:
        return Finding(False, f"no access token: {one_line(str(error))}")
    left = max(0, int(token.expires_at - time.time()))
    return Finding(True, f"an access token for {account}, {left} s left")


def _account() -> str:
    from gcptoken.credentials.adc import find_credentials

    return find_credentials().credentials.description
