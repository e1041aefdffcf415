"""The bash completion script, written from the completion spec. Plain bash (no bash-completion
package needed): the command is the first word that is not an option; after it, a word is an
option, an option's value (next word, or after ``=``, which bash splits off), or a positional."""

from __future__ import annotations

from collections import defaultdict

from gcptoken.cli.completion_spec import Command, Option, Positional, Spec
from gcptoken.cli.shell_install_lines import install_line

__all__ = ["bash_script"]

_HELPERS = r"""
_{name}_words() {{  # WORDS CUR: those of WORDS that start with CUR
    COMPREPLY=($(compgen -W "$1" -- "$2"))
}}

_{name}_paths() {{  # -f|-d CUR: files (or folders) that start with CUR, names with spaces kept whole
    local path
    COMPREPLY=()
    compopt -o filenames 2>/dev/null  # outside a completion (a test), there is nothing to set
    while IFS= read -r path; do COMPREPLY+=("$path"); done < <(compgen "$1" -- "$2")
}}

_{name}() {{
    local cur=${{COMP_WORDS[COMP_CWORD]}} cword=$COMP_CWORD
    local command="" command_at=0 i word
    COMPREPLY=()
    for ((i = 1; i < cword; i++)); do
        case ${{COMP_WORDS[i]}} in
        -*) ;;
        *) command=${{COMP_WORDS[i]}} command_at=$i && break ;;
        esac
    done
    if [[ -z $command ]]; then
        if [[ $cur == -* ]]; then _{name}_words "{top_options}" "$cur"; else _{name}_words "{commands}" "$cur"; fi
        return 0
    fi
    local value_flags flag="" positionals=0 dashes=0
    value_flags=" $(_{name}_value_flags "$command") "
    for ((i = command_at + 1; i < cword; i++)); do
        word=${{COMP_WORDS[i]}}
        if [[ -n $flag ]]; then flag="" && continue; fi  # the value of the flag before
        if ((dashes)); then positionals=$((positionals + 1)) && continue; fi
        case $word in
        --) dashes=1 ;;
        =) [[ $value_flags == *" ${{COMP_WORDS[i - 1]}} "* ]] && flag=${{COMP_WORDS[i - 1]}} ;;
        -*) [[ $value_flags == *" $word "* && ${{COMP_WORDS[i + 1]}} != "=" ]] && flag=$word ;;
        *) positionals=$((positionals + 1)) ;;
        esac
    done
    if [[ $cur == "=" && $value_flags == *" ${{COMP_WORDS[cword - 1]}} "* ]]; then
        flag=${{COMP_WORDS[cword - 1]}} cur=""
    fi
    if [[ -n $flag ]]; then
        _{name}_values "$command" "$flag" "$cur"
    elif ((!dashes)) && [[ $cur == -* ]]; then
        _{name}_words "$(_{name}_options "$command")" "$cur"
    else
        _{name}_positional "$command" "$positionals" "$dashes" "$cur"
    fi
    return 0
}}
"""


def bash_script(spec: Spec) -> str:
    """``complete -F _gcptoken gcptoken`` and its functions."""
    name = spec.program
    for option in spec.options:
        if option.takes_value:
            raise ValueError(f"{option.flags[0]}: the bash script expects no value before the command")
    header = (
        f"# bash completion for {name} {spec.version}, written from its parser by: {name} completion bash\n"
        f"# Install: {install_line('bash', name)}\n"
        f'#      or, in ~/.bashrc: eval "$({name} completion bash)"\n'
    )
    helpers = _HELPERS.format(
        name=name,
        top_options=_flags(spec.options),
        commands=" ".join(command.name for command in spec.commands),
    )
    return "".join(
        (
            header,
            helpers,
            _per_command(f"_{name}_options", {c.name: _flags(c.options) for c in spec.commands}),
            _per_command(f"_{name}_value_flags", {c.name: " ".join(c.value_flags) for c in spec.commands}),
            _values(name, spec.commands),
            _positional(name, spec.commands),
            f"\ncomplete -F _{name} {name}\n",
        )
    )


def _per_command(function: str, words: dict[str, str]) -> str:
    """A function that prints its command's words."""
    arms = "".join(f"    {command}) echo '{text}' ;;\n" for command, text in words.items() if text)
    return f"\n{function}() {{\n    case $1 in\n{arms}    esac\n}}\n"


def _offer(name: str, kind: str, choices: tuple[str, ...], cur: str) -> str:
    if kind == "choices":
        return f"_{name}_words '{' '.join(choices)}' \"{cur}\""
    if kind in ("file", "dir"):
        return f'_{name}_paths -{kind[0]} "{cur}"'
    return ""


def _values(name: str, commands: tuple[Command, ...]) -> str:
    """``_gcptoken_values COMMAND FLAG CUR``: a flag's value; arms that offer the same share one."""
    patterns: dict[str, list[str]] = defaultdict(list)
    for command in commands:
        for option in command.options:
            offer = _offer(name, option.kind, option.choices, "$3") if option.takes_value else ""
            if offer:
                patterns[offer] += [f"'{command.name} {flag}'" for flag in option.flags]
    arms = "".join(f"    {' | '.join(keys)})\n        {offer} ;;\n" for offer, keys in patterns.items())
    return f'\n_{name}_values() {{\n    case "$1 $2" in\n{arms}    esac\n}}\n'


def _positional(name: str, commands: tuple[Command, ...]) -> str:
    """``_gcptoken_positional COMMAND INDEX DASHES CUR``: the positional at INDEX (0 is the first
    after the command), or what goes after the command's ``--``."""
    arms = ""
    for command in commands:
        tests = [test for test in (_test(name, p, i) for i, p in enumerate(_indexed(command))) if test]
        if tests:
            arms += f"    {command.name})\n        " + "\n        ".join(tests) + " ;;\n"
    return f"\n_{name}_positional() {{\n    case $1 in\n{arms}    esac\n}}\n"


def _indexed(command: Command) -> list[Positional]:
    """Positionals by index; the one after ``--`` comes last, whatever its place."""
    return [p for p in command.positionals if not p.after_dashes] + [p for p in command.positionals if p.after_dashes]


def _test(name: str, positional: Positional, index: int) -> str:
    offer = _offer(name, positional.kind, positional.choices, "$4")
    if positional.after_dashes:
        return f'(($3)) && _{name}_paths -f "$4"'
    if not offer:
        return ""
    return f"(($2 {'>=' if positional.many else '=='} {index})) && {offer}"


def _flags(options: tuple[Option, ...]) -> str:
    return " ".join(flag for option in options for flag in option.flags)
