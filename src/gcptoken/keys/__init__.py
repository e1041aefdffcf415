"""Private keys that never leave hardware: PKCS#11 tokens and TPM 2.0 chips that sign for a
service account (``hardware`` is the seam, ``pkcs11`` and ``tpm`` the two kinds)."""
