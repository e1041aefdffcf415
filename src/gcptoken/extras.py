"""Optional parts and the extras that install them. The core (tokens and verification) needs only
cryptography and httpx; servers and integrations with other libraries come with an extra, and
using one without it says which ``pip install`` to run instead of raising ModuleNotFoundError."""

from __future__ import annotations

import importlib
import sys

from gcptoken.errors import GcpTokenError

__all__ = ["EXTRAS", "MissingExtra", "require"]

# extra → the modules it provides
EXTRAS = {
    "emulator": ("starlette", "uvicorn", "websockets", "h2"),
    "asgi": ("starlette",),
    "requests": ("requests",),
    "grpc": ("grpc",),
    "httpx2": ("httpx2",),
    "keyring": ("keyring",),
    "pkcs11": ("pkcs11",),
    "tpm": ("tpm2_pytss",),
}
# Where the package a user installs is not named as the module it provides.
_PACKAGES = {"grpc": "grpcio", "pkcs11": "python-pkcs11", "tpm2_pytss": "tpm2-pytss"}
# Extras whose packages need a newer Python (pyproject's markers): installed on an older one, they
# install nothing, so the line says so instead of naming the install.
NEEDS_PYTHON = {"httpx2": (3, 11)}
PYTHON = sys.version_info[:2]


class MissingExtra(ImportError, GcpTokenError):
    """A feature whose extra is not installed; ``str()`` is the one line to show."""


def require(extra: str, feature: str) -> None:
    """Import ``extra``'s modules, or raise MissingExtra naming the install command.

    ``feature`` is what the user ran or imported ("gcptoken emulator", "gcptoken.testing"): each
    command asks for its extra itself, so the line names the command actually run."""
    for module in EXTRAS[extra]:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name is not None and exc.name.split(".")[0] != module:
                raise  # something else is missing: not ours to explain
            package = _PACKAGES.get(module, module)
            needed = NEEDS_PYTHON.get(extra)
            if needed is not None and needed > PYTHON:  # (this Python is older)
                raise MissingExtra(
                    f"{feature} needs {package}, which needs Python {needed[0]}.{needed[1]}+ "
                    f"(this is Python {PYTHON[0]}.{PYTHON[1]})"
                ) from None
            raise MissingExtra(
                f"{feature} needs the '{extra}' extra ({package} is not installed): pip install 'gcptoken[{extra}]'"
            ) from None
