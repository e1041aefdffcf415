"""``httpx2.Auth`` classes for clients built on httpx2, the successor of httpx (the MCP Python SDK
2.x is one): ``IdTokenAuth`` and ``AccessTokenAuth``, the same as
:mod:`gcptoken.integrations.httpx_auth`'s. httpx2 takes only its own ``Auth`` subclasses (an
``httpx.Auth`` is a TypeError there), and both libraries drive an auth flow the same way, so these
classes are those, made ``httpx2.Auth`` too."""

from __future__ import annotations

from gcptoken.extras import require

require("httpx2", "gcptoken.integrations.httpx2_auth")  # before any import of it: one clear line if missing

import httpx2

from gcptoken.integrations import httpx_auth

__all__ = ["AccessTokenAuth", "IdTokenAuth"]


class IdTokenAuth(httpx_auth.IdTokenAuth, httpx2.Auth):  # type: ignore[misc]
    __doc__ = httpx_auth.IdTokenAuth.__doc__


class AccessTokenAuth(httpx_auth.AccessTokenAuth, httpx2.Auth):  # type: ignore[misc]
    __doc__ = httpx_auth.AccessTokenAuth.__doc__
