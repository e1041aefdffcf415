"""Where things live on disk: gcloud's configuration and ADC file, and the CLI's token cache.
Standard library only (no pathlib), so the CLI's cached path can use it for free."""

from __future__ import annotations

import os
import sys

__all__ = ["ADC_FILE", "adc_file", "gcloud_config_dir", "token_cache_dir"]

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


def token_cache_dir() -> str:
    """``$XDG_CACHE_HOME/gcptoken``, else ``~/.cache/gcptoken``."""
    return os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "gcptoken")
