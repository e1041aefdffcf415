"""A URL with user info (``user:password@``): every command that calls a URL with a token refuses
it in one line (httpx would send the password as Basic auth in place of the token), an audience
with a password is refused (a token's aud is read by whoever holds the token), and no message
shows the password."""

from __future__ import annotations

import pytest

from gcptoken import checks
from gcptoken.cli.main import main
from gcptoken.errors import InvalidArgumentError
from gcptoken.senders import send_as

SECRET = "s3cret"
TARGET = f"http://user:{SECRET}@127.0.0.1:18080/x"
SA = "sa@p.iam.gserviceaccount.com"


@pytest.mark.parametrize(
    "argv",
    [
        ["send", "--as", "tasks", "--service-account", SA, "--emulator", "127.0.0.1:9", TARGET],
        [
            "send",
            "--as",
            "eventarc",
            "--service-account",
            SA,
            "--emulator",
            f"http://u:{SECRET}@127.0.0.1:9",
            "http://127.0.0.1:1/",
        ],
        ["call", TARGET],
        ["call", "POST", TARGET],
        ["curl", TARGET],
        ["proxy", TARGET, "--port", "0"],
        ["id", f"https://user:{SECRET}@svc.a.run.app"],
        ["call", "http://127.0.0.1:1/", "--audience", f"https://user:{SECRET}@svc.a.run.app"],
        ["call", f"http://user:{SECRET}@127.0.0.1:99999/"],  # refused for its port: still not shown
    ],
)
def test_user_info_is_refused_and_never_shown(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    code = main(argv)
    captured = capsys.readouterr()
    assert code == 2 and captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and "…@" in lines[0] and SECRET not in captured.err, captured.err


def test_the_library_refuses_it_too() -> None:
    with pytest.raises(InvalidArgumentError, match="user info") as refused:
        send_as("tasks", TARGET, SA, emulator="127.0.0.1:9")
    assert SECRET not in str(refused.value)
    with pytest.raises(InvalidArgumentError, match="password") as refused:
        checks.audience(f"https://user:{SECRET}@svc.a.run.app")
    assert SECRET not in str(refused.value)
    assert checks.audience("https://user@svc.a.run.app") == "https://user@svc.a.run.app"  # a name alone: noted only
