"""Tests of the emulated IAM Credentials: tokens, signatures, delegation, allowedLocations."""
