"""The zsh completion script, written from the completion spec: ``_arguments`` for the options
before the command, then ``_arguments`` again with the command's own options and positionals
(descriptions included). Works autoloaded from ``$fpath`` and sourced alike."""

from __future__ import annotations

from gcptoken.cli.completion_spec import Command, Option, Positional, Spec
from gcptoken.cli.shell_install_lines import install_line

__all__ = ["zsh_script"]

_MAIN = """
_{name}() {{
  local curcontext=$curcontext state state_descr line ret=1
  typeset -A opt_args
  _arguments -C \\
{top_specs}    '(-)1:command:->command' \\
    '(-)*::argument:->argument' && ret=0
  case $state in
  command)
    local -a commands=(
{commands}    )
    _describe -t commands '{name} command' commands && ret=0
    ;;
  argument)
    curcontext=${{curcontext%:*:*}}:{name}-$words[1]:
    case $words[1] in
{arms}    esac
    ;;
  esac
  return ret
}}

if [[ $zsh_eval_context[-1] == loadautofunc ]]; then
  _{name} "$@"  # autoloaded from $fpath
else
  compdef _{name} {name}  # sourced
fi
"""


def zsh_script(spec: Spec) -> str:
    name = spec.program
    header = (
        f"#compdef {name}\n"
        f"# zsh completion for {name} {spec.version}, written from its parser by: {name} completion zsh\n"
        f"# Install: {install_line('zsh', name)}\n"
        "#          with fpath=(~/.zfunc $fpath) before compinit in ~/.zshrc\n"
        f"#      or, in ~/.zshrc after compinit: source <({name} completion zsh)\n"
    )
    return header + _MAIN.format(
        name=name,
        top_specs="".join(f"    {spec_text} \\\n" for option in spec.options for spec_text in _option_specs(option)),
        commands="".join(f"      {_quoted(f'{c.name}:{c.help}')}\n" for c in spec.commands),
        arms="".join(_arm(command) for command in spec.commands),
    )


def _arm(command: Command) -> str:
    specs = [text for option in command.options for text in _option_specs(option)]
    specs += [_positional_spec(p, i) for i, p in enumerate(p for p in command.positionals if not p.after_dashes)]
    specs += [_after_dashes_spec(p) for p in command.positionals if p.after_dashes]
    lines = " \\\n        ".join(specs)
    return f"    {command.name})\n      _arguments -s -S \\\n        {lines} && ret=0\n      ;;\n"


def _option_specs(option: Option) -> list[str]:
    """One ``_arguments`` spec per flag: ``(excluded)-f[help]:MESSAGE:action``."""
    prefix = "*" if option.repeatable else f"({' '.join(option.flags)})"
    specs = []
    for flag in option.flags:
        text = f"{prefix}{flag}"
        if option.takes_value:
            text += "=" if flag.startswith("--") else "+"  # the value in the same word, or the next
        text += f"[{_bracketed(option.help)}]"
        if option.takes_value:
            text += f":{_message(option.metavar)}:{_action(option.kind, option.choices)}"
        specs.append(_quoted(text))
    return specs


def _positional_spec(positional: Positional, index: int) -> str:
    where = "*" if positional.many else str(index + 1)
    colon = ":" if positional.optional and not positional.many else ""
    return _quoted(f"{where}:{colon}{_message(positional.metavar)}:{_action(positional.kind, positional.choices)}")


def _after_dashes_spec(positional: Positional) -> str:
    """Files, only once the line has its ``--`` (before it, argparse would refuse them)."""
    message = _message(positional.metavar.removeprefix("-- "))
    return _quoted(f"*:{message}:{{(( ${{words[(I)--]}} )) && _files}}")


def _action(kind: str, choices: tuple[str, ...]) -> str:
    if kind == "choices":
        return f"({' '.join(choices)})"
    return {"file": "_files", "dir": "_files -/"}.get(kind, " ")


def _bracketed(text: str) -> str:
    """An explanation inside ``[...]``: brackets would end it early."""
    return text.replace("[", "(").replace("]", ")")


def _message(text: str) -> str:
    return text.replace(":", "\\:")


def _quoted(text: str) -> str:
    """Single-quoted for zsh."""
    return "'" + text.replace("'", "'\\''") + "'"
