"""Calling services with ID tokens: httpx and requests authentication."""
