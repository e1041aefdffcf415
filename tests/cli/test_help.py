"""Every command's --help: ends with examples that are real command lines (the cheap ones run here
against the emulator), and its usage line says what is repeatable and what goes after ``--``."""

from __future__ import annotations

import argparse
import io
import re
import shlex
import sys
from pathlib import Path

import pytest

from gcptoken import __version__
from gcptoken.cli.help_examples import EXAMPLES
from gcptoken.cli.main import build_parser, main
from gcptoken.testing import EmulatorClient

# Commands an example may run in-process here: cheap, and answered by the emulator alone.
RUNNABLE = {"id", "access", "jwt", "whoami", "decode", "verify", "info", "cache", "completion"}


def _commands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    (subparsers,) = (a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(subparsers.choices)


def _help(command: str, capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as exited:
        main([command, "--help"])
    assert exited.value.code == 0
    return capsys.readouterr().out


def _example_lines(help_text: str) -> list[str]:
    """The command lines of the examples block that ends ``help_text``."""
    block = help_text.rstrip("\n").rsplit("\nexamples:\n", 1)
    assert len(block) == 2, "no examples block at the end"
    lines = block[1].splitlines()
    assert all(line.startswith("  ") for line in lines), "something follows the examples"
    comments, commands = lines[0::2], lines[1::2]
    assert all(c.startswith("  # ") for c in comments) and len(comments) == len(commands)
    return [command.strip() for command in commands]


def _gcptoken_invocations(line: str) -> list[list[str]]:
    """Each ``gcptoken ...`` in a shell line (a pipeline's parts, after ``&&``, a ``$(...)``), as argv."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars="|>&;")
    lexer.whitespace_split = True
    found: list[list[str]] = []
    segment: list[str] = []
    for word in [*lexer, "|"]:
        if word.startswith("$(") and word.endswith(")"):
            found += _gcptoken_invocations(word[2:-1])
        if word not in ("|", ">", "&&", ";"):  # a pipe, a redirection, the next command
            segment.append(word)
            continue
        if segment[:1] == ["gcptoken"]:
            found.append(segment[1:])
        segment = []
    return found


def test_every_command_ends_its_help_with_two_or_three_examples_that_parse(
    capsys: pytest.CaptureFixture[str],
) -> None:
    commands = _commands()
    assert set(EXAMPLES) == set(commands)  # no command without examples, no examples without a command
    parser = build_parser()
    for name in commands:
        lines = _example_lines(_help(name, capsys))
        assert 2 <= len(lines) <= 3, name
        for line in lines:
            invocations = _gcptoken_invocations(line)
            assert invocations and any(argv[:1] == [name] for argv in invocations), line
            for argv in invocations:
                ours = argv[: argv.index("--")] if argv[:1] == ["curl"] and "--" in argv else argv
                parser.parse_args(ours)  # a usage error exits: the example would not run


def _run_pipeline(line: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> str:
    """Runs ``gcptoken A | gcptoken B`` in-process, each one's stdout the next one's stdin."""
    out = ""
    for argv in _gcptoken_invocations(line):
        monkeypatch.setattr(sys, "stdin", io.StringIO(out))
        code = main(argv)
        captured = capsys.readouterr()
        assert code == 0, f"{line}: {captured.err}"
        out = captured.out
    return out


def test_the_cheap_examples_run_against_the_emulator(
    emulator: EmulatorClient,
    key_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GCPTOKEN_EMULATOR_HOST", emulator.host_port)
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(key_path))
    monkeypatch.chdir(key_path.parent)  # the examples' key.json
    ran = []
    for examples in EXAMPLES.values():
        for _, line in examples:
            invocations = _gcptoken_invocations(line)
            runnable = all(argv[0] in RUNNABLE for argv in invocations) and line.startswith("gcptoken ")
            # Shell variables, redirections and impersonation need more than this test sets up.
            if runnable and not re.search(r"[$>]|--impersonate", line):
                _run_pipeline(line, capsys, monkeypatch)  # exit 0, or it fails with the stderr
                ran.append(line)
    assert len(ran) >= 10, ran  # tokens, JWTs, whoami, a verify pipeline, tokeninfo, the cache, completion


def test_usage_lines_mark_every_repeatable_option(capsys: pytest.CaptureFixture[str]) -> None:
    """POSIX's way: ``[--allow CIDR]...``; required, ``--audience AUDIENCE [--audience AUDIENCE]...``."""
    marked = 0
    for name, sub in _commands().items():
        usage = " ".join(sub.format_usage().split())
        for action in sub._actions:
            if isinstance(action, argparse._AppendAction):
                metavar = action.metavar or action.dest.upper()
                part = f"[{action.option_strings[0]} {metavar}]..."
                assert part in usage, (name, usage)
                assert "repeatable" in (action.help or ""), (name, action.option_strings)
                marked += 1
    assert marked >= 10
    verify = " ".join(_commands()["verify"].format_usage().split())
    assert " --audience AUDIENCE [--audience AUDIENCE]... " in verify


def test_usage_lines_say_what_goes_after_dashes(capsys: pytest.CaptureFixture[str]) -> None:
    commands = _commands()
    curl = " ".join(commands["curl"].format_usage().split())
    assert curl.endswith(" URL [-- CURL_ARGS ...]")
    call = " ".join(commands["call"].format_usage().split())
    assert call.endswith(" [METHOD] URL") and "[[METHOD]" not in call
    # call's -- only ends options: its help says so, and points to curl for curl's own options.
    assert "A -- only ends gcptoken's options: nothing is passed on" in " ".join(_help("call", capsys).split())


def test_curl_words_before_the_dashes_are_refused_with_the_way_out(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["curl", "https://svc.a.run.app", "extra"])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "unrecognized arguments: extra (to pass them on, put them after --)" in err
    assert len(err.strip().splitlines()) == 1
    assert build_parser().parse_args(["curl", "https://svc.a.run.app"]).curl_args == []


@pytest.mark.parametrize("flag", ["-V", "--version"])
def test_dash_capital_v_is_version(flag: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main([flag])
    assert exited.value.code == 0
    assert capsys.readouterr().out == f"gcptoken {__version__}\n"


@pytest.mark.parametrize(
    "argv",
    [
        ["call", "POST", "https://svc.a.run.app/x", "--data", "d"],
        ["call", "--data", "d", "POST", "https://svc.a.run.app/x"],
        ["call", "POST", "--data", "d", "https://svc.a.run.app/x"],
        ["call", "POST", "-H", "A: b", "https://svc.a.run.app/x", "--data", "d"],
    ],
    ids=["after", "before", "around", "around-repeatable"],
)
def test_calls_method_and_url_may_sit_before_after_or_around_the_options(argv: list[str]) -> None:
    parsed = build_parser().parse_args(argv)
    assert parsed.target == ["POST", "https://svc.a.run.app/x"] and parsed.data == "d"


def test_an_unknown_option_of_call_is_still_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["call", "POST", "--bogus", "https://svc.a.run.app/x"])
    assert exited.value.code == 2
    err = capsys.readouterr().err.strip()
    assert "unrecognized arguments: --bogus" in err and "'gcptoken call --help'" in err and "\n" not in err


def test_the_help_shows_how_to_receive_googles_calls() -> None:
    """verify's examples check a Google product's caller; send says what its epoch seconds become."""
    commands = _commands()
    assert any("--caller" in line for _, line in EXAMPLES["verify"])
    send = " ".join(commands["send"].format_help().split())
    assert "seconds since 1970, sent in RFC 3339" in send
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    sender = readme.index("the pytest plugin's `gcptoken_sender`")
    assert 'pytest_plugins = ["gcptoken.testing"]' in readme[sender : sender + 400]
