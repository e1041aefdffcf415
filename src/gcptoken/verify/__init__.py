"""The verifying wing: the Verifier (``verifier``), the presets of Google's issuers
(``presets``), the caller's rules (``policy``), key sets fetched and cached (``certs``,
``key_cache``, ``discovery``) and verified results (``results``)."""

from gcptoken.verify.verifier import REASONS, Verifier

__all__ = ["REASONS", "Verifier"]
