"""The README's Quick start is what CI runs, and stays two command lines."""

from __future__ import annotations

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
