"""The verifying wing: the Verifier (``verifier``), the presets of Google's issuers
(``presets``; ``callers`` for Google's products and Compute Engine VMs; ``constructors``, the
Verifier's named ones), the audience rule (``audience``), the caller's rules (``policy``), key sets
fetched and cached (``certs``, ``key_cache``, ``discovery``) and verified results (``results``).

``Verifier``, ``REASONS`` and ``ANY_AUDIENCE_INSECURE`` load on first use (PEP 562): importing
``gcptoken.verify.presets`` (as ``gcptoken decode`` does) must not pay for cryptography."""

from __future__ import annotations

import importlib as _importlib

TYPE_CHECKING = False  # not typing's: importing typing costs light commands (mypy reads it alike)
if TYPE_CHECKING:
    from typing import Any

    from gcptoken.verify.audience import ANY_AUDIENCE_INSECURE
    from gcptoken.verify.verifier import REASONS, Verifier
del TYPE_CHECKING

__all__ = ["ANY_AUDIENCE_INSECURE", "REASONS", "Verifier"]
_HOMES = {"ANY_AUDIENCE_INSECURE": "gcptoken.verify.audience"}


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module 'gcptoken.verify' has no attribute {name!r}")
    value = getattr(_importlib.import_module(_HOMES.get(name, "gcptoken.verify.verifier")), name)
    globals()[name] = value
    return value
