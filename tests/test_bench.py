"""The benchmark suite runs end to end (in its quick mode: the numbers mean little there) and
writes every row it promises, the JSON and the chart."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_benchmarks_run_and_write_json_and_a_chart(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--out", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    document = json.loads((tmp_path / "latest.json").read_text())
    assert document["quick"] is True and document["machine"]["cpus"]
    names = {row["name"] for row in document["rows"]}
    for expected in (
        "raw cryptography RSA verify",
        "gcptoken Verifier",
        "gcptoken Verifier, repeated token",
        "PyJWT jwt.decode",
        "authlib JsonWebToken.decode",
        "google-auth jwt.decode",
        "google-auth id_token.verify_token",
        "gcptoken jwt-bearer assertion",
        "emulator ID token issuance",
        "gcptoken id_token(), cached",
        "gcptoken id, cached",
        "gcptoken id, cold (one round trip)",
        "service-account key → ID token",
        "federation → impersonation → ID token",
    ):
        assert expected in names, expected
    groups = {row["group"] for row in document["rows"]}
    assert groups == {
        "verify",
        "bridges",
        "sign",
        "in-process",
        "cli",
        "cli cached",
        "cli cold",
        "import",
        "round trips",
        "emulator",
        "single flight",
    }
    by_name = {row["name"]: row for row in document["rows"]}
    assert by_name["ID tokens/s, 16 concurrent clients"]["notes"]["errors"] == 0
    assert by_name["gcptoken, 200 concurrent cold callers"]["value"] == 1
    assert (tmp_path / "latest.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "goals missed" in result.stdout
