"""Universe domains: Google Cloud outside ``googleapis.com`` (sovereign clouds, test universes).

A credential's ``universe_domain`` moves every Google endpoint it talks to: ``sts.googleapis.com``
becomes ``sts.UNIVERSE``, and so on. The emulator serves a second universe so this is tested.
"""

from __future__ import annotations

import re

from gcptoken.errors import CredentialsError

__all__ = ["DEFAULT", "checked", "in_universe", "is_default"]

DEFAULT = "googleapis.com"
_DOMAIN = re.compile(r"(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}")


def checked(domain: str, where: str) -> str:
    """``domain`` when it is a plain DNS name (it ends up in URLs we call), else CredentialsError."""
    if not _DOMAIN.fullmatch(domain):
        raise CredentialsError(f"{where} is not a domain name")
    return domain


def is_default(domain: str) -> bool:
    return domain == DEFAULT


def in_universe(url: str, domain: str) -> str:
    """A ``googleapis.com`` URL moved into ``domain`` (unchanged in the default universe)."""
    if is_default(domain):
        return url
    return url.replace(".googleapis.com", f".{domain}", 1)
