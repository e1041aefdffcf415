"""What people paste where a JWT is wanted (an access token, an STS token, a refresh token, a
command's --format json output) is named by one recogniser, with what to use instead, in decode,
verify, info and the inspector; and a Firebase preset given a URL says it wants a project ID."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gcptoken import InvalidArgumentError, Verifier
from gcptoken.cli.main import main
from gcptoken.inspector.kinds import JSON_KIND, read
from gcptoken.testing import EmulatorClient
from tests.emulator.sts.test_federation import Federation

AUD = "https://svc-pasted.a.run.app"
REFRESH = "1//0gSECRETREFRESHpasted"


def _out(capsys: pytest.CaptureFixture[str], argv: list[str]) -> tuple[int, str, list[str]]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err.splitlines()


def test_each_command_names_what_it_was_given(
    emulator: EmulatorClient, key_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("GCPTOKEN_EMULATOR_HOST", emulator.host_port)
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(key_path))
    assert main(["id", AUD, "--format", "json"]) == 0
    id_json = capsys.readouterr().out
    assert main(["access", "--format", "json"]) == 0
    access_json = capsys.readouterr().out
    access = json.loads(access_json)["access_token"]
    federation = Federation(emulator)
    sts = federation.exchange(federation.subject_token()).json()["access_token"]
    cases = [
        (access, ("decode", "verify"), "opaque OAuth access token", "gcptoken info"),
        (sts, ("decode", "verify"), "also what STS", "gcptoken info"),
        (REFRESH, ("decode", "verify", "info"), "refresh token", "revoke"),
        (id_json, ("decode", "verify", "info"), '"id_token" field', "--format token"),
        (access_json, ("verify", "info"), '"access_token" field', "--format token"),
    ]
    before = len(emulator.requests("/tokeninfo"))
    for given, commands, what, instead in cases:
        for command in commands:
            argv = [command, given] + (["--audience", AUD] if command == "verify" else [])
            code, out, err = _out(capsys, argv)
            assert (code, out, len(err)) == (1, "", 1), (command, err)
            assert what in err[0] and instead in err[0], (command, err[0])
            secret = json.loads(given)[next(iter(json.loads(given)))] if given.startswith("{") else given
            assert secret[5:] not in err[0]  # the token itself is never repeated
    assert len(emulator.requests("/tokeninfo")) == before  # nothing was sent to "Google"


def test_the_inspector_reads_them_with_the_same_recogniser() -> None:
    assert read('{"id_token": "a.b.c"}').kind == JSON_KIND and not read('{"id_token": "a.b.c"}').opaque
    assert "--format token" in read('{"id_token": "a.b.c"}').summary
    assert read("ya29.x").opaque and read(REFRESH).kind == "refresh token"


@pytest.mark.parametrize(
    ("audience", "hint"),
    [(AUD, "e.g. my-project"), ("https://securetoken.google.com/my-proj", "pass 'my-proj'")],
)
def test_firebase_wants_a_project_id(capsys: pytest.CaptureFixture[str], audience: str, hint: str) -> None:
    code, out, err = _out(capsys, ["verify", "a.b.c", "--preset", "firebase", "--audience", audience])
    assert (code, out, len(err)) == (2, "", 1) and "must be a Firebase project ID, not a URL" in err[0], err
    assert hint in err[0]
    with pytest.raises(InvalidArgumentError, match="Firebase project ID"):
        Verifier.firebase(audience)
