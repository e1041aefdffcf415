"""Fixtures for the TPM tests: a fresh swtpm per test, skipped with the reason when swtpm or
tpm2-pytss is missing. tests/keys/conftest.py brings them in."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.keys.tpm_sim import Swtpm, start_swtpm, swtpm_missing

__all__ = ["swtpm", "tpm_tcti"]


def _tpm2_pytss_missing() -> str | None:
    try:
        found = importlib.util.find_spec("tpm2_pytss") is not None
    except ValueError:  # blocked in sys.modules
        found = False
    if not found:
        return "tpm2-pytss is not installed (pip install 'gcptoken[tpm]'; needs libtss2-dev)"
    return None


@pytest.fixture
def swtpm(tmp_path: Path) -> Iterator[Swtpm]:
    """A running swtpm of this test alone."""
    if (reason := swtpm_missing()) is not None:
        pytest.skip(reason)
    with start_swtpm(tmp_path / "swtpm-state") as tpm:
        yield tpm


@pytest.fixture
def tpm_tcti(swtpm: Swtpm) -> str:
    """The TCTI of a fresh swtpm, for tests that drive it through tpm2-pytss."""
    if (reason := _tpm2_pytss_missing()) is not None:
        pytest.skip(reason)
    return swtpm.tcti
