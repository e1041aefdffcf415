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
