"""Keys held in hardware: PKCS#11 tokens (SoftHSM2) and TPMs (swtpm)."""
