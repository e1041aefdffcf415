"""What ``python -m bench`` needs beyond gcptoken's emulator extra: the libraries it measures
against (the test extra), checked before anything runs so a missing one is one line, not a
traceback halfway through; and the closed loopback address every client is pointed at (defined
here so bench never imports gcptoken.testing, which needs pytest)."""

from __future__ import annotations

import importlib.util

# Port 9 (discard) on loopback: nothing listens, so a client that strays fails fast and locally.
CLOSED_LOOPBACK = "127.0.0.1:9"

# module → the distribution that provides it (all in gcptoken's "test" extra)
CONTENDERS = {
    "jwt": "pyjwt",
    "authlib": "authlib",
    "google.auth": "google-auth",
    "requests": "requests",
    "matplotlib": "matplotlib",
    "starlette": "starlette",
    "uvicorn": "uvicorn",
    "websockets": "websockets",
    "grpc": "grpcio",
    "keyring": "keyring",
    "keyrings.gauth": "keyrings.google-artifactregistry-auth",
    "uv": "uv",
}


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # "google.auth" without "google"
        return False


def missing_line() -> str | None:
    """The one line to print when a library the benchmarks need is absent, else None."""
    missing = [package for module, package in CONTENDERS.items() if not _installed(module)]
    if not missing:
        return None
    return f"python -m bench needs the 'test' extra ({', '.join(missing)} not installed): pip install -e '.[test]'"
