"""One wording everywhere: network failures in words (never a class name alone), Google's text
followed by ours with one full stop, "permission denied" wherever a file cannot be read, and an
unknown option pointing to its own subcommand's --help."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from gcptoken.cli.main import main
from gcptoken.testing import CLOSED_LOOPBACK, EmulatorClient, write_key_file

AUD = "https://svc-messages.a.run.app"


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    try:
        code = main(list(argv))
    except SystemExit as exit_:  # argparse's usage errors
        code = int(exit_.code or 0)
    return code, capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "unknown"),
    [
        (["id", AUD, "--bogus"], "--bogus"),
        (["id", AUD, "--bogus", "value"], "--bogus value"),
        (["access", "--nope"], "--nope"),
        (["verify", "-", "--audience", "a", "--x"], "--x"),
        (["cache", "clear", "--all"], "--all"),
        (["curl", AUD, "--bogus", "--", "-v"], "--bogus"),
    ],
)
def test_an_unknown_option_points_to_its_subcommand_s_help(
    capsys: pytest.CaptureFixture[str], argv: list[str], unknown: str
) -> None:
    code, err = _run(capsys, *argv)
    command = argv[0]
    assert (code, err) == (
        2,
        f"gcptoken {command}: error: unrecognized arguments: {unknown} (see 'gcptoken {command} --help')\n",
    )


def test_call_says_the_network_failure_in_words(
    emulator: EmulatorClient, key_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GCPTOKEN_EMULATOR_HOST", emulator.host_port)
    code, err = _run(capsys, "call", f"http://{CLOSED_LOOPBACK}/path", "--credentials", str(key_path))
    assert (code, err) == (
        3,
        f"gcptoken: error: GET http://{CLOSED_LOOPBACK}/path: cannot reach {CLOSED_LOOPBACK}: connection refused\n",
    )


def test_google_s_sentence_and_ours_have_one_full_stop_between_them(
    emulator: EmulatorClient,
    key_path: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Google's words end with a full stop of their own ("Token has been expired or revoked.",
    "… (or it may not exist)."); ours follow as a new sentence, not after "..."."""
    monkeypatch.setenv("GCPTOKEN_EMULATOR_HOST", emulator.host_port)
    user = emulator.state.issue_refresh_token("messages@example.com") | {"refresh_token": "1//0revoked"}
    code, revoked = _run(capsys, "access", "--credentials", str(write_key_file(tmp_path, user, "user.json")))
    assert code == 1 and "invalid_grant: Token has been expired or revoked. The sign-in in " in revoked
    nobody = "nobody@emulated-project.iam.gserviceaccount.com"
    code, denied = _run(capsys, "id", AUD, "--credentials", str(key_path), "--impersonate-service-account", nobody)
    assert code == 1 and "(or it may not exist). Service account " in denied
    assert ".." not in revoked + denied and ". ." not in revoked + denied


def _unprivileged() -> list[str] | None:
    """A prefix that runs a command without the right to read a file with no read bit: none for
    an ordinary user; for root (CI), root without CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    return [setpriv, "--bounding-set=-dac_override,-dac_read_search"] if setpriv else None


# Every kind of file gcptoken reads, each unreadable: (argv, what the line names). One process
# runs them all (main() in turn), as an unprivileged user would.
READS = [
    (["id", AUD, "--credentials", "{locked}"], "credential file {locked}"),
    (["login", "--no-browser", "--client-id-file", "{locked}"], "client file {locked}"),
    (["verify", "eyJhbGciOiJSUzI1NiJ9.e30.c2ln", "--certs", "{locked}", "--audience", AUD], "certs file {locked}"),
    (["call", AUD, "--data", "@{locked}"], "--data file {locked}"),
    # SSL_CERT_FILE is {locked} for the whole run: only https reads it.
    (
        [
            "verify",
            "eyJhbGciOiJSUzI1NiIsImtpZCI6ImsxIn0.e30.c2ln",
            "--certs",
            f"https://{CLOSED_LOOPBACK}/c",
            "--audience",
            AUD,
        ],
        "SSL_CERT_FILE {locked}",
    ),
    (["id", AUD, "--credentials", "{federation}"], "{federation}: subject token file {locked}"),
    (["id", AUD, "--credentials", "{x509}"], "{x509}: certificate config {locked}"),
    (["emulator", "--port", "0", "--state-dir", "{state_dir}"], "state dir: {state_dir}/state.json"),
]


def test_an_unreadable_file_says_permission_denied_wherever_it_is_read(tmp_path: Path) -> None:
    prefix = _unprivileged()
    if prefix is None:
        pytest.skip("root can read any file, and setpriv (to drop that right) is not installed")
    locked = tmp_path / "locked.json"
    locked.write_text("{}")
    state_dir = tmp_path / "state"
    state_dir.mkdir(mode=0o700)
    (state_dir / "state.json").write_text("{}")
    pool = "//iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/p/providers/q"
    config = {"type": "external_account", "audience": pool, "token_url": f"http://{CLOSED_LOOPBACK}/v1/token"}
    federation = write_key_file(
        tmp_path,
        {
            **config,
            "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
            "credential_source": {"file": str(locked)},
        },
        "federation.json",
    )
    certificate = {"certificate": {"certificate_config_location": str(locked)}}
    x509 = write_key_file(
        tmp_path,
        {**config, "subject_token_type": "urn:ietf:params:oauth:token-type:mtls", "credential_source": certificate},
        "x509.json",
    )
    names = {"locked": str(locked), "federation": str(federation), "x509": str(x509), "state_dir": str(state_dir)}
    for path in (locked, state_dir / "state.json"):
        path.chmod(0)
    runs = [[arg.format(**names) for arg in argv] for argv, _ in READS]
    program = (
        "import sys\nfrom gcptoken.cli.main import main\n"
        f"for argv in {runs!r}:\n    print(main(argv), file=sys.stderr, flush=True)\n"
    )
    ran = subprocess.run(
        [*prefix, sys.executable, "-c", program],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        stdin=subprocess.DEVNULL,
        env={**os.environ, "SSL_CERT_FILE": str(locked)},
    )
    lines = ran.stderr.splitlines()
    assert len(lines) == 2 * len(READS), ran.stderr
    for (_, what), line, code in zip(READS, lines[::2], lines[1::2], strict=True):
        assert line.startswith("gcptoken: error: ") and line.endswith(
            f"{what.format(**names)} cannot be read (permission denied)"
        ), line
        assert code in ("2", "3"), (line, code)
    assert json.dumps(ran.stdout) == '""'
