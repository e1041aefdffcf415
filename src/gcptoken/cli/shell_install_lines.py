"""The one line per shell that installs gcptoken's completion script where that shell looks for it,
creating the folder first (a fresh home has none of them). The README, each script's header and
``gcptoken completion --help`` show these same lines, and a test runs them in a fresh home."""

from __future__ import annotations

__all__ = ["INSTALL_WHERE", "install_line"]

# shell -> what to know besides the line (where it looks, what the shell's setup must say)
INSTALL_WHERE = {
    # bash-completion loads ${XDG_DATA_HOME:-~/.local/share}/bash-completion/completions/NAME on first Tab.
    "bash": "bash, with the bash-completion package",
    "zsh": "zsh; in ~/.zshrc, before compinit: fpath=(~/.zfunc $fpath)",
    "fish": "fish",
}


def install_line(shell: str, program: str = "gcptoken") -> str:
    """The shell command that writes ``program``'s completion script for ``shell`` into place."""
    if shell == "bash":
        folder = "${XDG_DATA_HOME:-$HOME/.local/share}/bash-completion/completions"
        return f'dir="{folder}" && mkdir -p "$dir" && {program} completion bash > "$dir/{program}"'
    if shell == "zsh":
        return f"mkdir -p ~/.zfunc && {program} completion zsh > ~/.zfunc/_{program}"
    if shell == "fish":
        folder = "~/.config/fish/completions"
        return f"mkdir -p {folder} && {program} completion fish > {folder}/{program}.fish"
    raise ValueError(f"no completion for {shell}")
