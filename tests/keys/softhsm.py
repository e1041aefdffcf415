"""A private SoftHSM2 token for a test: its own ``SOFTHSM2_CONF`` with ``directories.tokendir``
in a temporary directory, initialised with ``softhsm2-util`` (the real Debian ``softhsm2``).

SoftHSM2 reads ``SOFTHSM2_CONF`` when the module is first initialised, so a process keeps one
configuration (``SoftHsm``) and makes as many tokens as it likes in its directory.
Test PINs only.
"""

from __future__ import annotations

import importlib.util
import itertools
import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gcptoken.keys.pkcs11_uri import Pkcs11Uri, parse_uri

# Where Debian's softhsm2 (and other distributions') put the module.
MODULE_CANDIDATES = (
    "/usr/lib/softhsm/libsofthsm2.so",
    "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/lib64/softhsm/libsofthsm2.so",
    "/usr/local/lib/softhsm/libsofthsm2.so",
)
SO_PIN = "so-pin-5820"
USER_PIN = "user-pin-4931"  # distinctive: tests assert it never shows in an error


def softhsm_module() -> str | None:
    return next((path for path in MODULE_CANDIDATES if os.path.isfile(path)), None)


def missing() -> str | None:
    """Why SoftHSM2 tests cannot run here, or None."""
    if softhsm_module() is None or shutil.which("softhsm2-util") is None:
        return "SoftHSM2 is not installed (Debian: apt-get install softhsm2)"
    if importlib.util.find_spec("pkcs11") is None:
        return "python-pkcs11 is not installed (pip install 'gcptoken[pkcs11]')"
    return None


@dataclass(frozen=True)
class Token:
    """One initialised token: its label, PINs and the URI naming it (with the module's path)."""

    label: str
    module: str
    conf: Path
    pin: str = USER_PIN
    so_pin: str = SO_PIN

    def uri(self, **attributes: str) -> Pkcs11Uri:
        """``pkcs11:token=LABEL;…?module-path=MODULE`` with ``attributes`` added."""
        base = parse_uri("pkcs11:").with_attributes(token=self.label, module_path=self.module)
        return base.with_attributes(**attributes)

    def env(self) -> dict[str, str]:
        """The environment a subprocess needs to see this token."""
        return {"SOFTHSM2_CONF": str(self.conf)}


class SoftHsm:
    """A SoftHSM2 configuration in ``directory``; ``token()`` initialises a new token there."""

    _labels = itertools.count(1)

    def __init__(self, directory: Path) -> None:
        module = softhsm_module()
        assert module is not None, missing()
        self.module = module
        self.directory = directory
        tokens = directory / "tokens"
        tokens.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.conf = directory / "softhsm2.conf"
        self.conf.write_text(f"directories.tokendir = {tokens}\nobjectstore.backend = file\nlog.level = ERROR\n")

    def activate(self) -> None:
        """Point this process's SoftHSM2 at this configuration (before the module is first loaded)."""
        os.environ["SOFTHSM2_CONF"] = str(self.conf)

    def token(self, label: str | None = None) -> Token:
        label = label or f"gcptoken-test-{os.getpid()}-{next(self._labels)}"
        subprocess.run(
            ["softhsm2-util", "--init-token", "--free", "--label", label, "--so-pin", SO_PIN, "--pin", USER_PIN],
            env={**os.environ, "SOFTHSM2_CONF": str(self.conf)},
            check=True,
            capture_output=True,
            timeout=60,
        )
        self._rescan()
        return Token(label, self.module, self.conf)

    def _rescan(self) -> None:
        """SoftHSM2 lists the tokens it found when initialised: re-initialise this process's
        module (the one python-pkcs11 object gcptoken also holds) so it sees the new token.
        Keys a test left open are invalidated, so tests close theirs."""
        from gcptoken.keys.pkcs11 import load_module

        load_module(self.module).reinitialize()


@contextmanager
def logged_in_session(token: Token) -> Iterator[Any]:
    """The test's own logged-in R/W session (python-pkcs11 directly), for what gcptoken never does."""
    from gcptoken.keys.pkcs11 import load_module

    library = load_module(token.module)  # gcptoken's own: a module is initialised once
    with library.get_token(token_label=token.label).open(rw=True, user_pin=token.pin) as session:
        yield session
