"""``gcptoken demo``'s table: a row that cannot run here shows as skipped, never as passed.
(The whole demo runs in tests/cli/test_cli.py.)"""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from gcptoken.demo import showcase


def test_a_skipped_row_shows_as_skipped_not_passed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no gcloud here
    demo = showcase.Demo.__new__(showcase.Demo)  # the gcloud row looks no further than PATH
    demo.rows = [showcase.Row("service-account key", True, "1", "3 ms", "✓", "200 Hello")]
    showcase._gcloud_row(demo, tmp_path / "key.json", lambda token: (0, ""))
    out = io.StringIO()
    showcase._report(out, "http://emulator", "http://service", ("http://iap", "http://front"), demo.rows)
    table = out.getvalue().split("The same against real Google")[0].splitlines()
    gcloud = next(line for line in table if "gcloud" in line)
    assert gcloud.startswith("  - gcloud") and "✓" not in gcloud
    assert gcloud.split()[-5:] == ["skipped", "gcloud", "is", "not", "installed"]
    assert "  (-: skipped, could not run on this machine)" in table
    assert demo.rows[-1].ok  # a skipped row does not fail the demo


def test_every_line_fits_100_columns_whatever_the_answers() -> None:
    """Full service-account addresses, a long error and a long command for real Google: nothing is
    wider than 100 columns, and nothing is lost but the project (the same on every row)."""
    invoker = "demo-invoker@emulated-project.iam.gserviceaccount.com"
    command = (
        "gcptoken id https://SERVICE-HASH.a.run.app --impersonate-service-account "
        "demo-runner@PROJECT.iam.gserviceaccount.com   # after gcloud auth login --login-config=… and a long reason"
    )
    failure = "failed: " + " ".join(["the metadata server answered something unexpected"] * 3)
    rows = [
        showcase.Row("workforce person, impersonating", True, "2", "21 ms", "✓", f"200 Hello, {invoker}", command),
        showcase.Row("google-auth via metadata-server", False, "", "587 ms", "✗", failure, command),
        showcase.Row("refused: a user's own token", True, "0", answer="x" * 200),
    ]
    out = io.StringIO()
    showcase._report(out, "http://127.0.0.1:65535", "http://127.0.0.1:65534", ("http://a", "http://b"), rows)
    lines = out.getvalue().splitlines()
    assert [line for line in lines if len(line) > 100] == []
    assert any(line.endswith("200 Hello, demo-invoker@…") for line in lines)
    said = " ".join(line.strip() for line in lines)
    assert failure in said  # a long answer continues on the next line, whole
    assert "xxx…" in said  # one word longer than its column: cut, and the cut marked
    shown = out.getvalue().split("row by row:\n")[1].split("\n\n")[0]
    pasted = shown.replace(" \\\n", " ").split("\n")  # continued with a backslash: one command when pasted
    assert any(line.split() == command.split("   # ")[0].split() for line in pasted)
