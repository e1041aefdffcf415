"""The benchmark suite runs end to end (in its quick mode: the numbers mean little there) and
writes every row it promises, the JSON and the chart: to a temporary directory it names, never
over the tracked bench/results/."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TRACKED = ROOT / "bench" / "results"


def _tracked() -> dict[str, str]:
    return {path.name: hashlib.sha256(path.read_bytes()).hexdigest() for path in TRACKED.glob("latest.*")}


def test_the_benchmarks_run_and_write_json_and_a_chart() -> None:
    before = _tracked()
    result = subprocess.run(
        [sys.executable, "-m", "bench", "--quick"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    said = result.stdout.splitlines()[0]
    assert said.startswith("--quick: results go to ") and said.endswith(", not to bench/results"), said
    out = Path(said.removeprefix("--quick: results go to ").removesuffix(", not to bench/results"))
    try:
        assert out.parent == Path(tempfile.gettempdir()) and out.name.startswith("gcptoken-bench-quick-")
        assert _tracked() == before  # the committed results are untouched
        _check_results(out, result.stdout)
    finally:
        shutil.rmtree(out, ignore_errors=True)


def test_quick_numbers_are_refused_over_the_tracked_results() -> None:
    before = _tracked()
    result = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--out", "bench/results"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    assert result.returncode == 2 and "not written over bench/results" in result.stderr, result.stderr
    assert result.stdout == "" and _tracked() == before


def _check_results(tmp_path: Path, stdout: str) -> None:
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
        "docker-credential-gcptoken get, cached",
        "service-account key → ID token",
        "federation → impersonation → ID token",
        "unary RPCs/s, gcptoken channel",
        "unary RPCs/s, gcptoken aio channel",
        "unary RPCs/s, gcptoken call credentials",
        "gRPC unary RPCs/s through gcptoken proxy, 4 clients",
        "keyring get, gcptoken backend (cached)",
        "keyring get, keyrings.google-artifactregistry-auth",
        "uv pip install 3 packages, gcptoken keyring backend",
        "gcptoken kube-credential alone, cached",
    ):
        assert expected in names, expected
    from bench.google_names import unavailable
    from bench.pkcs11_rows import SOFTHSM_NAME, softhsm_unavailable

    # Signing in a SoftHSM2 token is measured wherever SoftHSM2 and python-pkcs11 are installed.
    assert (SOFTHSM_NAME in names) == (softhsm_unavailable() is None), softhsm_unavailable()

    # Google's backend installs only at a *.pkg.dev name: where the mount namespace can give one.
    googles = "uv pip install 3 packages, keyrings.google-artifactregistry-auth"
    assert (googles in names) == (unavailable() is None), unavailable()
    from bench import tpm_rows

    # The TPM row runs where swtpm and tpm2-pytss are (the [tpm] extra), as the TPM tests do.
    assert (tpm_rows.IN_TPM in names) == (tpm_rows.unavailable() is None), tpm_rows.unavailable()
    groups = {row["group"] for row in document["rows"]}
    assert groups == {
        "verify",
        "bridges",
        "sign",
        "in-process",
        "cli",
        "cli cached",
        "docker",
        "cli cold",
        "import",
        "round trips",
        "emulator",
        "single flight",
        "grpc",
        "keyring",
        "kubectl",
    }
    by_name = {row["name"]: row for row in document["rows"]}
    assert by_name["ID tokens/s, 16 concurrent clients"]["notes"]["errors"] == 0
    assert by_name["gcptoken, 200 concurrent cold callers"]["value"] == 1
    assert by_name["gRPC unary RPCs/s through gcptoken proxy, 4 clients"]["notes"]["errors"] == 0
    assert (tmp_path / "latest.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "goals missed" in stdout and f"written to {tmp_path}/latest.json" in stdout


def _without(modules: list[str], then: str) -> subprocess.CompletedProcess[str]:
    """Runs ``then`` in a fresh Python where ``modules`` cannot be imported (as after Quick start's
    first line, which installs only the emulator extra)."""
    hide = "".join(f"sys.modules[{name!r}] = None; " for name in modules)
    return subprocess.run(
        [sys.executable, "-c", f"import sys; {hide}{then}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_bench_never_needs_pytest() -> None:
    result = _without(["pytest", "_pytest"], "import bench.suite")
    assert result.returncode == 0, result.stderr[-2000:]


def test_bench_without_the_test_extra_says_which_extra_in_one_line() -> None:
    before = _tracked()
    result = _without(
        ["pytest", "_pytest", "authlib", "matplotlib", "jwt"],
        "from bench.__main__ import main; sys.exit(main(['--quick']))",
    )
    assert result.returncode == 1 and result.stdout == "", result.stderr[-2000:]
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr, result.stderr
    line = result.stderr.strip()
    assert line.startswith("python -m bench needs the 'test' extra") and "pip install -e '.[test]'" in line
    assert "pyjwt" in line and "authlib" in line and "matplotlib" in line and "google-auth" not in line
    assert _tracked() == before


def test_the_grpc_section_fails_with_its_own_error_when_a_channel_cannot_open(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Its cleanup closes only the channels that were opened (no AttributeError on None over the cause)."""
    from bench.grpc_auth_rows import grpc_auth_rows

    from gcptoken.emulator import EmulatorServer
    from gcptoken.integrations.grpc import aio

    def refused(*args: object, **kwargs: object) -> None:
        raise RuntimeError("no aio channel today")

    monkeypatch.setattr(aio, "local_channel", refused)
    with EmulatorServer() as emulator, pytest.raises(RuntimeError, match="no aio channel today"):
        grpc_auth_rows(emulator, 1, 1)
