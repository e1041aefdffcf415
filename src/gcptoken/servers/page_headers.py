"""The headers of gcptoken's own pages (the token inspector, the emulator console): their script and
style from their own origin only, nothing else loaded, no framing, no referrer, no caching."""

from __future__ import annotations

__all__ = ["PAGE_HEADERS"]

PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; "
        "form-action 'none'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
