"""The subject token in a file or URL answer, by the source's ``format``: the whole text, or one
field of a JSON object. Standard library only: the CLI's cached path reads file sources too."""

from __future__ import annotations

from gcptoken.untrusted import UnreadableJson, json_object

TYPE_CHECKING = False  # not typing's: the cached path must not import it
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

__all__ = ["subject_token_in"]


def subject_token_in(raw: str, form: Mapping[str, Any]) -> str | None:
    """The token, or None when ``raw`` holds none in that format (``untrusted.json_object`` says
    why a JSON answer holds none)."""
    if form.get("type", "text") == "json":
        name = form.get("subject_token_field_name")
        try:
            document = json_object(raw)
        except UnreadableJson:
            return None
        value = document.get(name) if isinstance(name, str) else None
        return value if isinstance(value, str) and value else None
    return raw.strip() or None
