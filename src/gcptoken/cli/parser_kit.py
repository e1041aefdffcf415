"""The parts ``build_parser`` is made of: the parser and help formatter every command shares, the
``type=`` checks, and the option groups several commands take. argparse only: the parser is built
on every run, so nothing heavy is imported here."""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable, Iterable, Sequence
from typing import Any, NoReturn, TypeVar

from gcptoken.cli.usage_words import unknown_options, words_after_dashes_refusal

__all__ = [
    "EXIT_USAGE",
    "AsWritten",
    "HelpFormatter",
    "Parser",
    "after_dashes",
    "credential_options",
    "credential_path",
    "finite",
    "is_after_dashes",
    "scopes",
    "seconds",
    "verbose_option",
]

EXIT_USAGE = 2
T = TypeVar("T")


class Parser(argparse.ArgumentParser):
    """Usage errors in one line (argparse's default prints the whole usage block first)."""

    # A positional (nargs="+") that may be split by options, as in ``call POST --data x URL``:
    # argparse takes one run of words for it and calls the rest unrecognized; they are its too.
    gather_into: str | None = None

    _words: tuple[str, ...] = ()  # what this parser was given: its errors look at them again

    def error(self, message: str) -> NoReturn:
        if message.startswith("the following arguments are required:"):
            unknown = unknown_options(self, self._words)  # the cause more often than the missing part
            if unknown:
                message = f"unrecognized arguments: {' '.join(unknown)}"
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        """argparse hands a subcommand's unknown options up to the top parser, whose error names
        'gcptoken --help'; every parser here refuses its own, naming 'gcptoken id --help'."""
        self._words = tuple(sys.argv[1:] if args is None else args)
        # Only a command that calls a URL (call) is mistaken for curl; for the others a word after
        # -- is their own positional, as POSIX says (``id -- -v`` is the audience "-v", refused as such).
        passes_on = any(map(is_after_dashes, self._actions)) or not self.gather_into
        refusal = words_after_dashes_refusal(self, self._words, passes_on)
        if refusal:
            self.error(refusal)
        parsed, extras = super().parse_known_args(list(self._words), namespace)
        if extras and self.gather_into and not any(word.startswith("-") for word in extras):
            setattr(parsed, self.gather_into, [*getattr(parsed, self.gather_into), *extras])
            extras = []
        if extras:
            self.error(f"unrecognized arguments: {' '.join(extras)}")
        return parsed, extras


class AsWritten(str):
    """A positional's metavar that already spells its form (``[METHOD] URL``): usage shows it as is."""

    __slots__ = ()


class HelpFormatter(argparse.HelpFormatter):
    """Shows each option's default, except the empty ones (None, False); keeps a text of several
    lines as written (an epilog's recipes and examples, to copy) and wraps a one-line text; marks
    repeatable options in the usage line the POSIX way, ``[--header HEADER]...`` (XBD 12.1, Utility
    Argument Syntax: https://pubs.opengroup.org/onlinepubs/9799919799/basedefs/V1_chap12.html)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        empty = action.default in (None, False, [], argparse.SUPPRESS)
        if "%(default)" in text or not action.option_strings or empty:
            return text
        return f"{text} (default: %(default)s)"

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if "\n" not in text.strip():
            return super()._fill_text(text, width, indent)
        return "".join(indent + line for line in text.splitlines(keepends=True))

    def _format_args(self, action: argparse.Action, default_metavar: str) -> str:
        if isinstance(action.metavar, AsWritten):
            return action.metavar
        return super()._format_args(action, default_metavar)

    def _format_usage(
        self,
        usage: str | None,
        actions: Iterable[argparse.Action],
        groups: Iterable[argparse._MutuallyExclusiveGroup],
        prefix: str | None,
    ) -> str:
        actions = list(actions)
        text = super()._format_usage(usage, actions, groups, prefix)
        if usage is not None:
            return text  # written by hand
        for action in actions:
            if (
                isinstance(action, argparse._AppendAction)
                and action.option_strings
                and action.help != argparse.SUPPRESS
            ):
                metavar = self._format_args(action, self._get_default_metavar_for_optional(action))
                text = _mark_repeatable(text, f"{action.option_strings[0]} {metavar}")
        return text


def _mark_repeatable(usage: str, part: str) -> str:
    """``[--x X]`` becomes ``[--x X]...``; a required ``--x X``, ``--x X [--x X]...``."""
    if f"[{part}]" in usage:
        return usage.replace(f"[{part}]", f"[{part}]...", 1)
    return re.sub(rf"(?<!\S){re.escape(part)}(?!\S)", lambda _: f"{part} [{part}]...", usage, count=1)


class _OnlyAfterDashes(argparse.Action):
    """A positional shown in usage and help whose words ``main`` takes from after ``--`` itself:
    a word argparse gives it was typed before the ``--``."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: str | Sequence[Any] | None,
        option_string: str | None = None,
    ) -> None:
        if values:
            words = " ".join(str(value) for value in values)[:80]
            parser.error(f"unrecognized arguments: {words} (to pass them on, put them after --)")
        setattr(namespace, self.dest, [])


def after_dashes(parser: argparse.ArgumentParser, dest: str, metavar: str, help: str) -> None:
    """Usage shows ``[-- METAVAR ...]``: the words after the first ``--``, which ``main`` splits off."""
    # default=[]: without one, argparse calls a "*" positional required, and says so when it is missing
    parser.add_argument(dest, nargs="*", default=[], metavar=f"-- {metavar}", action=_OnlyAfterDashes, help=help)


def is_after_dashes(action: argparse.Action) -> bool:
    """Whether ``action`` takes the words after the first ``--`` (see ``after_dashes``)."""
    return isinstance(action, _OnlyAfterDashes)


def seconds(text: str) -> float:
    """argparse ``type=`` for timeouts and ages: finite and above zero."""
    from gcptoken.checks import positive_seconds

    return _typed(positive_seconds, text)


def finite(text: str) -> float:
    """argparse ``type=`` for a moment or a skew: a finite number, not negative."""
    from gcptoken.checks import finite_number

    return _typed(finite_number, text)


def scopes(text: str) -> str:
    """argparse ``type=`` for every --scopes: at least one scope (``""`` or ``" , "`` is an error,
    never the default in disguise), given back comma-joined."""
    from gcptoken.checks import scope_list

    return ",".join(_typed(lambda value: scope_list(value, "the list"), text))


def credential_path(text: str) -> str:
    """argparse ``type=`` for every --credentials: a path, never ``""`` or blanks (an unset
    ``$KEY`` in ``--credentials "$KEY"``), which would quietly mean Application Default Credentials."""
    if not text.strip():
        raise argparse.ArgumentTypeError(
            "is empty (an unset variable?): name a credential file, or leave the option out for the default"
        )
    return text


def _typed(check: Callable[[str], T], text: str) -> T:
    from gcptoken.errors import InvalidArgumentError

    try:
        return check(text)
    except InvalidArgumentError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def credential_options(
    parser: argparse.ArgumentParser,
    *,
    source: bool = True,
    impersonate: bool = True,
    timeout: bool = True,
    no_cache: bool = True,
) -> None:
    """The options that choose and use a credential; each command takes only those that apply."""
    parser.add_argument(
        "--credentials",
        type=credential_path,
        metavar="FILE",
        help="credential JSON file (otherwise: $GOOGLE_APPLICATION_CREDENTIALS, then discovery)",
    )
    if source:
        parser.add_argument(
            "--source",
            choices=("file", "application-default", "metadata", "gcloud"),
            help="force a credential source instead of discovery: $GOOGLE_APPLICATION_CREDENTIALS, gcloud's "
            "application default credentials, the metadata server, or the gcloud CLI itself",
        )
    if impersonate:
        parser.add_argument(
            "--impersonate-service-account",
            metavar="SA[,SA…]",
            help="act as this service account through IAM Credentials; A,B,C means target C via delegates A and B",
        )
    if timeout:
        parser.add_argument("--timeout", type=seconds, default=10.0, metavar="SECONDS", help="per request")
    if no_cache:
        parser.add_argument("--no-cache", action="store_true", help="neither read nor write the on-disk token cache")


def verbose_option(parser: argparse.ArgumentParser, default: object) -> None:
    parser.add_argument(
        "-v", "--verbose", action="store_true", default=default, help="log HTTP exchanges and cache hits (redacted)"
    )
