"""Tests of the emulated STS and federation: OIDC issuer, providers, token exchange."""
