"""The real tools the helpers' tests drive, found or skipped with the reason."""

from __future__ import annotations

import pytest


def uv_binary() -> str:
    """uv from PyPI (the [test] extra installs it); the test skips, saying so, where it is absent."""
    try:
        from uv import find_uv_bin
    except ImportError:
        pytest.skip("uv is not installed (pip install 'gcptoken[test]')")
    return str(find_uv_bin())
