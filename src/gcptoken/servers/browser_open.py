"""Opening a local server's page in the browser without its address on any command line.

``webbrowser.open(url)`` starts the browser with ``url`` in its argv, which every local user can
read (``/proc/PID/cmdline``). Instead, as Jupyter does, the browser is opened on a file readable
by this user only (0600, in a fresh 0700 directory) that sends it on to ``url``: other users see
the file's name, never the address inside it.
"""

from __future__ import annotations

import html
import os
import shutil
import tempfile
import webbrowser
from pathlib import Path
from types import TracebackType

__all__ = ["PrivateOpener"]


class PrivateOpener:
    """``with PrivateOpener(url, "inspect") as opener: opener.open()``; the file goes at exit."""

    def __init__(self, url: str, purpose: str) -> None:
        self.url, self.purpose = url, purpose
        self.directory: str | None = None

    def open(self) -> bool:
        """Whether a browser was started (False: none known; tell the person the URL instead)."""
        self.directory = tempfile.mkdtemp(prefix=f"gcptoken-{self.purpose}-")  # 0700, ours
        path = Path(self.directory) / "open.html"
        target = html.escape(self.url, quote=True)
        page = (
            '<!doctype html><meta charset="utf-8"><meta name="referrer" content="no-referrer">'
            f'<meta http-equiv="refresh" content="0;url={target}"><title>gcptoken</title>'
            f'<p><a href="{target}">Continue to gcptoken</a></p>'
        )
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            file.write(page)
        return webbrowser.open(path.as_uri())

    def close(self) -> None:
        if self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)
            self.directory = None

    def __enter__(self) -> PrivateOpener:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
