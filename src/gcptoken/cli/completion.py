"""``gcptoken completion bash|zsh|fish``: print the shell's completion script, written from the
parser of this very version (so it offers exactly what this gcptoken accepts)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from gcptoken.cli.completion_bash import bash_script
from gcptoken.cli.completion_fish import fish_script
from gcptoken.cli.completion_spec import Spec, spec_of
from gcptoken.cli.completion_zsh import zsh_script

__all__ = ["SCRIPTS", "run_completion", "script_for"]

SCRIPTS: dict[str, Callable[[Spec], str]] = {"bash": bash_script, "zsh": zsh_script, "fish": fish_script}


def script_for(shell: str) -> str:
    from gcptoken import __version__
    from gcptoken.cli.main import build_parser  # main names this module only as a string: no cycle

    return SCRIPTS[shell](spec_of(build_parser(), __version__))


def run_completion(args: argparse.Namespace) -> int:
    sys.stdout.write(script_for(args.shell))
    return 0
