"""Credential sources: one module each; they build flows and do no I/O themselves."""
