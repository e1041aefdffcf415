"""Usage errors name what is wrong, for every command read from the parser: an unknown option is
named even when something required is missing too (argparse checks that first), only what is truly
required is called required, an option without its value is named, and options after ``--`` given
to ``call`` (which passes nothing on) point to ``gcptoken curl``."""

from __future__ import annotations

import argparse

import pytest

from gcptoken.cli.main import build_parser, main
from gcptoken.cli.parser_kit import is_after_dashes


def _commands() -> dict[str, argparse.ArgumentParser]:
    (subparsers,) = (a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return dict(subparsers.choices)


def _usage_error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as exited:
        main(argv)
    captured = capsys.readouterr()
    assert exited.value.code == 2 and captured.out == "", argv
    assert captured.err.count("\n") == 1 and "Traceback" not in captured.err, captured.err
    return captured.err.strip()


@pytest.mark.parametrize("argv", [["--bogus"], ["-v", "--bogus"], ["--bogus", "id"], ["-x"]])
def test_an_unknown_option_before_the_command_is_named(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    wrong = next(word for word in argv if word not in ("-v", "id"))
    said = _usage_error(argv, capsys)
    assert said == f"gcptoken: error: unrecognized arguments: {wrong} (see 'gcptoken --help')"


def test_every_command_names_an_unknown_option_even_with_its_required_arguments_missing(
    capsys: pytest.CaptureFixture[str],
) -> None:
    for name in _commands():
        said = _usage_error([name, "--bogus"], capsys)
        assert said == f"gcptoken {name}: error: unrecognized arguments: --bogus (see 'gcptoken {name} --help')"


def test_only_what_is_required_is_called_required(capsys: pytest.CaptureFixture[str]) -> None:
    checked = 0
    for name, sub in _commands().items():
        required = [a for a in sub._actions if a.required]
        if not required:
            continue
        said = _usage_error([name], capsys)
        listed = said.split("the following arguments are required: ", 1)[1].rsplit(" (see ", 1)[0].split(", ")
        for action in required:
            assert action.nargs not in ("*", "?") and not is_after_dashes(action), (name, action.dest)
        assert len(listed) == len(required), (name, said)
        checked += 1
    assert checked >= 5  # curl, call, verify, cache, completion, …
    assert _usage_error(["curl"], capsys).startswith(
        "gcptoken curl: error: the following arguments are required: URL ("
    )


def test_every_option_without_its_value_is_named(capsys: pytest.CaptureFixture[str]) -> None:
    for name, sub in _commands().items():
        for action in sub._actions:
            if action.option_strings and action.nargs != 0:
                for flag in action.option_strings:
                    said = _usage_error([name, flag], capsys)
                    assert f"argument {'/'.join(action.option_strings)}: expected one argument" in said, said


def test_words_after_dashes_point_to_curl_wherever_nothing_is_passed_on(capsys: pytest.CaptureFixture[str]) -> None:
    said = _usage_error(["call", "https://svc.a.run.app", "--", "-X", "POST"], capsys)
    assert said.startswith("gcptoken call: error: gcptoken call passes nothing on: '-X POST' after -- is not for it")
    assert "gcptoken curl URL -- CURL_ARGS" in said
    # Elsewhere a word after -- is the command's own positional (POSIX), refused by its own rule.
    assert main(["id", "--", "-v"]) == 2
    said = capsys.readouterr().err
    assert "looks like an option" in said and "curl" not in said and said.count("\n") == 1


def test_verbose_in_process_leaves_the_logger_as_it_found_it(capsys: pytest.CaptureFixture[str]) -> None:
    """``main([... "-v"])`` called from a program (or a test) logs to that call's stderr only: a
    later call, verbose or not, must not write through a handler left behind."""
    import logging

    logger = logging.getLogger("gcptoken")
    before = (list(logger.handlers), logger.level)
    assert main(["-v", "decode", "not-a-token"]) != 0
    assert (list(logger.handlers), logger.level) == before
    capsys.readouterr()
