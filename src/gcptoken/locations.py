"""Where things live on disk: gcloud's configuration and ADC file, and the CLI's token cache.
Standard library only (no pathlib), so the CLI's cached path can use it for free."""

from __future__ import annotations

import os
import sys

__all__ = ["ADC_FILE", "adc_file", "gcloud_config_dir", "token_cache_dir", "xdg_home"]

ADC_FILE = "application_default_credentials.json"


def gcloud_config_dir() -> str:
    configured = os.environ.get("CLOUDSDK_CONFIG")
    if configured:
        return configured
    if sys.platform == "win32":  # pragma: no cover - exercised on Windows only
        return os.path.join(os.environ.get("APPDATA", os.path.expanduser("~")), "gcloud")
    return os.path.join(os.path.expanduser("~"), ".config", "gcloud")


def adc_file() -> str:
    """Where ``gcloud auth application-default login`` writes its credentials."""
    return os.path.join(gcloud_config_dir(), ADC_FILE)


def xdg_home(variable: str, default: str) -> str:
    """``$variable`` (``XDG_CACHE_HOME``, …), else ``~/default``. Unset, empty or relative, it is
    not used: "All paths set in these environment variables must be absolute. If an implementation
    encounters a relative path in any of these variables it should consider the path invalid and
    ignore it." (https://specifications.freedesktop.org/basedir-spec/latest/)"""
    value = os.environ.get(variable, "")
    return value if os.path.isabs(value) else os.path.join(os.path.expanduser("~"), default)


def token_cache_dir() -> str:
    """``$XDG_CACHE_HOME/gcptoken`` when that is an absolute path, else ``~/.cache/gcptoken``."""
    return os.path.join(xdg_home("XDG_CACHE_HOME", ".cache"), "gcptoken")
