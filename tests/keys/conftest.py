"""Fixtures of the hardware-key tests (the TPM's come from conftest_tpm.py)."""

from tests.keys.conftest_tpm import swtpm, tpm_tcti

__all__ = ["swtpm", "tpm_tcti"]
