"""What shell completion offers, read from the argparse parser itself (so the scripts never drift
from the command line): the commands, each one's options and positionals, and the values worth
offering — a fixed set of choices, files for a FILE, folders for a DIR."""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass
from typing import Literal

from gcptoken.cli.parser_kit import is_after_dashes

__all__ = ["Command", "Option", "Positional", "Spec", "ValueKind", "spec_of"]

ValueKind = Literal["none", "choices", "file", "dir"]

# Everything a script embeds unquoted; anything else would be a bug in the parser, refused here.
_WORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_FLAG = re.compile(r"--?[A-Za-z0-9][A-Za-z0-9-]*")
_HELP_LENGTH = 70


@dataclass(frozen=True)
class Option:
    flags: tuple[str, ...]  # e.g. ("--header", "-H")
    takes_value: bool
    kind: ValueKind
    choices: tuple[str, ...]
    repeatable: bool
    metavar: str
    help: str

    @property
    def short(self) -> tuple[str, ...]:
        return tuple(flag for flag in self.flags if not flag.startswith("--"))

    @property
    def long(self) -> tuple[str, ...]:
        return tuple(flag for flag in self.flags if flag.startswith("--"))


@dataclass(frozen=True)
class Positional:
    metavar: str
    kind: ValueKind
    choices: tuple[str, ...]
    many: bool  # takes every word from here on
    optional: bool
    after_dashes: bool  # only the words after the first --
    help: str


@dataclass(frozen=True)
class Command:
    name: str
    help: str
    options: tuple[Option, ...]
    positionals: tuple[Positional, ...]

    @property
    def value_flags(self) -> tuple[str, ...]:
        """The flags whose value is the next word."""
        return tuple(flag for option in self.options if option.takes_value for flag in option.flags)


@dataclass(frozen=True)
class Spec:
    program: str
    version: str
    options: tuple[Option, ...]  # before the command
    commands: tuple[Command, ...]


def spec_of(parser: argparse.ArgumentParser, version: str) -> Spec:
    """The completion spec of ``parser``, a parser with one level of subcommands."""
    commands: list[Command] = []
    subparsers = [action for action in parser._actions if isinstance(action, argparse._SubParsersAction)]
    for subparsers_action in subparsers:
        helps = {choice.dest: choice.help or "" for choice in subparsers_action._choices_actions}
        for name, sub in subparsers_action.choices.items():
            commands.append(Command(_word(name), _short_help(helps.get(name, "")), _options(sub), _positionals(sub)))
    return Spec(_word(parser.prog), version, _options(parser), tuple(commands))


def _options(parser: argparse.ArgumentParser) -> tuple[Option, ...]:
    found = []
    for action in parser._actions:
        if not action.option_strings or action.help == argparse.SUPPRESS:
            continue
        for flag in action.option_strings:
            if not _FLAG.fullmatch(flag):
                raise ValueError(f"cannot complete the flag {flag!r}")
        takes_value = action.nargs != 0
        metavar = action.metavar if isinstance(action.metavar, str) else action.dest.upper()
        found.append(
            Option(
                flags=tuple(action.option_strings),
                takes_value=takes_value,
                kind=_kind(action) if takes_value else "none",
                choices=_choices(action),
                repeatable=isinstance(action, argparse._AppendAction),
                metavar=metavar,
                help=_short_help(action.help or ""),
            )
        )
    return tuple(found)


def _positionals(parser: argparse.ArgumentParser) -> tuple[Positional, ...]:
    found = []
    for action in parser._actions:
        if action.option_strings or action.help == argparse.SUPPRESS:
            continue
        metavar = str(action.metavar) if action.metavar is not None else action.dest.upper()
        found.append(
            Positional(
                metavar=metavar,
                kind=_kind(action),
                choices=_choices(action),
                many=action.nargs in ("*", "+"),
                optional=action.nargs in ("?", "*"),
                after_dashes=is_after_dashes(action),
                help=_short_help(action.help or ""),
            )
        )
    return tuple(found)


def _kind(action: argparse.Action) -> ValueKind:
    metavar = action.metavar if isinstance(action.metavar, str) else ""
    if action.choices is not None:
        return "choices"
    if "FILE" in metavar:
        return "file"
    if metavar.endswith("DIR"):
        return "dir"
    return "none"


def _choices(action: argparse.Action) -> tuple[str, ...]:
    if action.choices is None:
        return ()
    return tuple(_word(str(choice)) for choice in action.choices)


def _word(text: str) -> str:
    if not _WORD.fullmatch(text):
        raise ValueError(f"cannot complete the word {text!r}")
    return text


def _short_help(text: str) -> str:
    """One line for a completion menu: the help's words, cut at a word near ``_HELP_LENGTH``."""
    text = " ".join(text.split())
    if len(text) <= _HELP_LENGTH:
        return text
    return text[: _HELP_LENGTH - 1].rsplit(" ", 1)[0].rstrip(",;:(") + "…"
