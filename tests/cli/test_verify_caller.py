"""``gcptoken verify --caller SA_EMAIL`` run in process: the named account's token for the audience
passes, another account's, an unverified email and another audience are refused in one line
(exit 1), and bad or clashing options are one line too (exit 2), never a traceback."""

from __future__ import annotations

import json

import pytest

from gcptoken.cli.main import main
from gcptoken.testing import EmulatorClient
from tests.receive.callers import AUD, forged, sa_token


@pytest.fixture(autouse=True)
def _google_is_the_emulator(emulator: EmulatorClient, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GCPTOKEN_EMULATOR_HOST", emulator.host_port)


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["verify", *args])
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err


def test_the_named_accounts_token_passes(capsys: pytest.CaptureFixture[str], emulator: EmulatorClient) -> None:
    pusher = emulator.new_key("cli-pusher")
    other = "someone-else@emulated-project.iam.gserviceaccount.com"
    code, out, err = run(
        capsys, sa_token(pusher), "--audience", AUD, "--caller", other, "--caller", pusher["client_email"]
    )
    assert code == 0, err
    assert json.loads(out)["email"] == pusher["client_email"]


def test_other_callers_are_one_line(capsys: pytest.CaptureFixture[str], emulator: EmulatorClient) -> None:
    pusher, stranger = emulator.new_key("cli-pusher"), emulator.new_key("cli-stranger")
    email = pusher["client_email"]
    cases = {
        sa_token(stranger): "email_not_allowed",
        forged(emulator, email, email_verified=False): "email_not_verified",
        sa_token(pusher, "https://another.a.run.app"): "audience",
        forged(emulator, "someone@gmail.com"): "email_not_allowed",
    }
    for token, reason in cases.items():
        code, out, err = run(capsys, token, "--audience", AUD, "--caller", email, "--preset", "google")
        assert (code, out) == (1, "")
        (line,) = err.splitlines()
        assert line.startswith(f"gcptoken: invalid token ({reason})") and token[-20:] not in line


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        (["--caller", "someone@gmail.com"], "is not a service account's email"),
        (["--caller", "x@p.iam.gserviceaccount.com", "--preset", "iap"], "leave out --preset iap"),
        (["--caller", "x@p.iam.gserviceaccount.com", "--service-account", "y@p.iam.gserviceaccount.com"], "leave out"),
        (["--caller", "x@p.iam.gserviceaccount.com", "--email", "x@p.iam.gserviceaccount.com"], "--email"),
        (["--caller", "x@p.iam.gserviceaccount.com", "--issuer", "https://accounts.google.com"], "--issuer"),
    ],
)
def test_bad_and_clashing_options_are_one_line(
    capsys: pytest.CaptureFixture[str], extra: list[str], words: str
) -> None:
    code, out, err = run(capsys, "eyJhbGciOiJSUzI1NiJ9.e30.c2ln", "--audience", AUD, *extra)
    assert (code, out) == (2, "")
    (line,) = err.splitlines()
    assert words in line


def test_the_audience_is_still_required(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as usage:
        main(["verify", "x.y.z", "--caller", "x@p.iam.gserviceaccount.com"])
    assert usage.value.code == 2 and "--audience" in capsys.readouterr().err
    code, _, err = run(capsys, "x.y.z", "--audience", "*", "--caller", "x@p.iam.gserviceaccount.com")
    assert code == 2 and "not a wildcard" in err
