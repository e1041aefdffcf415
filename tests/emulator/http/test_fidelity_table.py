"""The README's fidelity table stays whole: every path the emulator serves for Google (or AWS) is in
its "at the emulator" column, and every path written there is one the emulator serves."""

from __future__ import annotations

import re
from pathlib import Path

from starlette.routing import Route

from gcptoken.emulator.http.app import routes

README = Path(__file__).resolve().parents[3] / "README.md"
SECTION = "### Fidelity: each endpoint, who was seen calling it, what differs"


def table_paths() -> list[str]:
    """The paths of the table's second column, each made concrete (``{x}`` and ``…`` → ``x``)."""
    text = README.read_text()
    assert SECTION in text, "the README lost its fidelity table"
    section = text.split(SECTION, 1)[1].split("\n### ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| ") and not line.startswith("| Google")]
    paths = []
    for row in rows:
        cells = [cell.strip() for cell in re.split(r"(?<!\\)\|", row)[1:-1]]
        assert len(cells) == 4, row
        for code in re.findall(r"`([^`]+)`", cells[1]):
            path = code.split(" ")[-1]
            if path.startswith("/"):
                paths.append(re.sub(r"\{[^}]*\}|…", "x", path))
    return paths


def google_routes() -> list[Route]:
    return [route for route in routes() if not route.path.startswith("/emulator/")]


def test_every_path_the_emulator_serves_is_in_the_table() -> None:
    written = table_paths()
    missing = [route.path for route in google_routes() if not any(route.path_regex.match(p) for p in written)]
    assert not missing, f"add these to the README's fidelity table: {missing}"


def test_every_path_in_the_table_is_served() -> None:
    served = google_routes()
    stale = [path for path in table_paths() if not any(route.path_regex.match(path) for route in served)]
    assert not stale, f"the README's fidelity table names paths the emulator does not serve: {stale}"


def test_the_table_check_can_fail() -> None:
    # An unlisted route would be caught: the check is not vacuous.
    unlisted = Route("/v2/somethingNew/{name}", lambda request: None)
    assert not any(unlisted.path_regex.match(p) for p in table_paths())
    assert len(table_paths()) > 30
