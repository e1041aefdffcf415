"""Tests of keys held in hardware (PKCS#11 tokens, TPM 2.0), with SoftHSM2 and swtpm."""
