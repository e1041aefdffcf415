"""Credential helpers for the tools people already use: kubectl's exec plugin, docker's credential
helper and a keyring backend for pip and uv. Each answers from the on-disk token cache first, so a
process started per request costs milliseconds, and fetches (and caches) only on a miss."""
