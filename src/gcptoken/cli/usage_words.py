"""What a usage error should name first. argparse checks required arguments before it reports
words it did not recognize, so ``gcptoken --bogus`` was told that COMMAND is required and never
heard of ``--bogus``; and words after ``--`` given to a command that passes nothing on (``call``,
unlike ``curl``) were taken as its own positionals."""

from __future__ import annotations

import argparse
import re
from collections.abc import Sequence

__all__ = ["unknown_options", "words_after_dashes_refusal"]

_NUMBER = re.compile(r"-\d+(\.\d*)?")


def _known(parser: argparse.ArgumentParser, word: str) -> argparse.Action | bool | None:
    """The option ``word`` names (``--form`` abbreviates ``--format``, ``-Hx`` is ``-H x``), True
    when it names several (argparse says which), None when it names none."""
    actions = parser._option_string_actions
    name = word.split("=", 1)[0]
    if name in actions:
        return actions[name]
    if not name.startswith("--") and word[:2] in actions:
        return actions[word[:2]]
    if name.startswith("--") and parser.allow_abbrev:
        matches = {actions[option] for option in actions if option.startswith(name)}
        if matches:
            return matches.pop() if len(matches) == 1 else True
    return None


def unknown_options(parser: argparse.ArgumentParser, words: Sequence[str]) -> list[str]:
    """The words before ``--`` that look like options ``parser`` does not have (for the parser that
    chooses a command, only those before the command)."""
    chooses_command = any(isinstance(action, argparse._SubParsersAction) for action in parser._actions)
    unknown: list[str] = []
    takes_value = False
    for word in words:
        if takes_value:
            takes_value = False
            continue
        if word == "--":
            break
        if not word.startswith("-") or word == "-" or _NUMBER.fullmatch(word):
            if chooses_command:
                break
            continue
        action = _known(parser, word)
        if action is None:
            unknown.append(word)
        elif isinstance(action, argparse.Action):
            # its value is the next word, unless attached: --format=json, -Hname
            takes_value = action.nargs != 0 and "=" not in word and (word.startswith("--") or len(word) == 2)
    return unknown


def words_after_dashes_refusal(parser: argparse.ArgumentParser, words: Sequence[str], takes_them: bool) -> str | None:
    """The error for options after ``--`` given to a command that passes nothing on, else None."""
    if takes_them or "--" not in words:
        return None
    if any(isinstance(action, argparse._SubParsersAction) for action in parser._actions):
        return None  # the command's own parser decides
    after = words[words.index("--") + 1 :]
    if not any(word.startswith("-") and word != "-" for word in after):
        return None
    shown = " ".join(after)[:60]
    return (
        f"{parser.prog} passes nothing on: {shown!r} after -- is not for it (for curl: gcptoken curl URL -- CURL_ARGS)"
    )
