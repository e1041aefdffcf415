"""Fixtures for hardware keys: ``softhsm_token``, a freshly initialised SoftHSM2 token (skipped,
with the reason, where SoftHSM2 or python-pkcs11 is absent); ``swtpm`` and ``tpm_tcti`` (from
conftest_tpm.py)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.keys.conftest_tpm import swtpm, tpm_tcti
from tests.keys.softhsm import SoftHsm, Token, missing

__all__ = ["module_dir", "softhsm", "softhsm_token", "swtpm", "tpm_tcti"]


@pytest.fixture(scope="session")
def softhsm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SoftHsm]:
    """One SoftHSM2 configuration per test process (SoftHSM2 reads it once, when loaded)."""
    if (reason := missing()) is not None:
        pytest.skip(reason)
    hsm = SoftHsm(tmp_path_factory.mktemp("softhsm"))
    before = os.environ.get("SOFTHSM2_CONF")
    hsm.activate()
    yield hsm
    if before is None:
        os.environ.pop("SOFTHSM2_CONF", None)
    else:
        os.environ["SOFTHSM2_CONF"] = before


@pytest.fixture
def softhsm_token(softhsm: SoftHsm) -> Token:
    """A new, empty token (user PIN ``Token.pin``) in this process's SoftHSM2."""
    return softhsm.token()


@pytest.fixture
def module_dir(tmp_path: Path) -> Path:
    """A private directory (0700, ours) to put module files in."""
    directory = tmp_path / "modules"
    directory.mkdir(mode=0o700)
    return directory
