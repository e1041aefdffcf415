"""The fish completion script, written from the completion spec: one ``complete`` line per
command, option and fixed value, each under a condition that reads the line as argparse would
(the command, how many positionals, whether the ``--`` is behind)."""

from __future__ import annotations

from gcptoken.cli.completion_spec import Command, Option, Spec
from gcptoken.cli.shell_install_lines import install_line

__all__ = ["fish_script"]

_HELPERS = """
function __{name}_value_flags --argument-names command --description "the flags whose value is the next word"
    switch $command
{value_flags}    end
end

function __{name}_state --description "the command (- if none yet), its positionals so far, 1 after its --"
    set -l words (commandline -opc)
    set -e words[1]
    set -l command -
    set -l positionals 0
    set -l dashes 0
    set -l value_next 0
    for word in $words
        if test $command = -
            string match -q -- "-*" $word; or set command $word
        else if test $value_next = 1
            set value_next 0
        else if test $dashes = 1
            set positionals (math $positionals + 1)
        else if test $word = --
            set dashes 1
        else if string match -q -- "-*" $word
            contains -- $word (__{name}_value_flags $command); and set value_next 1
        else
            set positionals (math $positionals + 1)
        end
    end
    printf "%s\\n" $command $positionals $dashes
end

function __{name}_no_command
    set -l state (__{name}_state)
    test $state[1] = -
end

function __{name}_options_of --argument-names command
    set -l state (__{name}_state)
    test $state[1] = $command -a $state[3] = 0
end

function __{name}_positional --argument-names command index many
    set -l state (__{name}_state)
    test $state[1] = $command; or return 1
    test -n "$many" -a $state[2] -ge $index; or test $state[2] = $index
end

function __{name}_after_dashes --argument-names command
    set -l state (__{name}_state)
    test $state[1] = $command -a $state[3] = 1
end

complete -c {name} -f
"""


def fish_script(spec: Spec) -> str:
    name = spec.program
    header = (
        f"# fish completion for {name} {spec.version}, written from its parser by: {name} completion fish\n"
        f"# Install: {install_line('fish', name)}\n"
    )
    value_flags = "".join(
        f"        case {c.name}\n            printf '%s\\n' {' '.join(c.value_flags)}\n"
        for c in spec.commands
        if c.value_flags
    )
    lines = [_option_line(name, "__" + name + "_no_command", option) for option in spec.options]
    for command in spec.commands:
        lines.append(f"complete -c {name} -n __{name}_no_command -a {command.name} -d {_quoted(command.help)}")
    for command in spec.commands:
        lines += _command_lines(name, command)
    return header + _HELPERS.format(name=name, value_flags=value_flags) + "\n".join(lines) + "\n"


def _command_lines(name: str, command: Command) -> list[str]:
    condition = _quoted(f"__{name}_options_of {command.name}")
    lines = [_option_line(name, condition, option) for option in command.options]
    index = 0
    for positional in command.positionals:
        if positional.after_dashes:
            lines.append(f"complete -c {name} -n {_quoted(f'__{name}_after_dashes {command.name}')} -F")
            continue
        test = f"__{name}_positional {command.name} {index}" + (" many" if positional.many else "")
        index += 1
        offer = _offer(positional.kind, positional.choices)
        if offer:
            lines.append(f"complete -c {name} -n {_quoted(test)} {offer} -d {_quoted(positional.help)}")
    return lines


def _option_line(name: str, condition: str, option: Option) -> str:
    # -s takes one letter; a longer single-dash flag is fish's "old-style" -o
    flags = [f"-{'s' if len(flag) == 2 else 'o'} {flag[1:]}" for flag in option.short]
    flags += [f"-l {flag[2:]}" for flag in option.long]
    words = [f"complete -c {name} -n {condition}", *flags]
    if option.takes_value:
        words.append(_offer(option.kind, option.choices) or "-x")
    words.append(f"-d {_quoted(option.help)}")
    return " ".join(words)


def _offer(kind: str, choices: tuple[str, ...]) -> str:
    if kind == "choices":
        return f"-x -a {_quoted(' '.join(choices))}"
    if kind == "file":
        return "-r -F"
    if kind == "dir":
        return "-x -a '(__fish_complete_directories)'"
    return ""


def _quoted(text: str) -> str:
    """Single-quoted for fish: only backslash and the quote are special inside."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"
