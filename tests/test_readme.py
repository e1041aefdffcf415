"""The README's Quick start is what CI runs, and stays two command lines."""

from __future__ import annotations

import importlib
import pkgutil
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def quick_start_lines() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Quick start", 1)[1]
    block = re.search(r"```[a-z]*\n(.*?)```", section, re.DOTALL)
    assert block is not None
    return [line for line in block.group(1).splitlines() if line.strip() and not line.lstrip().startswith("#")]


def test_quick_start_has_the_demo_line_then_the_test_line() -> None:
    demo, tests = quick_start_lines()
    assert demo.endswith("gcptoken demo")
    assert "pytest" in tests


def test_ci_runs_the_readme_test_line() -> None:
    _, tests = quick_start_lines()
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert tests in ci


def _public_error_classes() -> set[str]:
    """Every public GcpTokenError class, wherever in the package it is defined (an error a caller
    can meet is public even when defined outside gcptoken.errors, as gcptoken.extras.MissingExtra)."""
    import gcptoken
    from gcptoken.errors import GcpTokenError

    names = set()
    for found in pkgutil.walk_packages(gcptoken.__path__, "gcptoken."):
        if found.name.rsplit(".", 1)[-1] == "__main__":
            continue  # importing it runs the CLI
        module = importlib.import_module(found.name)
        names |= {
            name
            for name, value in vars(module).items()
            if isinstance(value, type)
            and issubclass(value, GcpTokenError)
            and value.__module__ == module.__name__
            and not name.startswith("_")
        }
    return names


def test_the_readme_names_every_public_error_class() -> None:
    """Every public error class of gcptoken (what it exports, and every GcpTokenError defined
    anywhere in the package) is named in the README's paragraph on errors, so none is found only
    by reading the code."""
    import gcptoken
    import gcptoken.errors

    exported = {
        name
        for module in (gcptoken, gcptoken.errors)
        for name in module.__all__
        if isinstance(getattr(module, name), type) and issubclass(getattr(module, name), BaseException)
    } | _public_error_classes()
    assert {"GcpTokenError", "RefusedError", "MissingExtra"} <= exported
    text = (ROOT / "README.md").read_text()
    paragraph = text[text.index("Errors share one root") :].split("\n\n", 1)[0]
    assert sorted(name for name in exported if not re.search(rf"\b{name}\b", paragraph)) == []
