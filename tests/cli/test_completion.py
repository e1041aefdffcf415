"""``gcptoken completion bash|zsh|fish``, completed by the real shells: bash calls the function
with COMP_WORDS set, zsh runs its completion system on a pseudo-terminal (complete_in_zsh.zsh),
fish answers ``complete -C``. The cases are read from the parser, so no command, option or fixed
value can be added without its completion being checked."""

from __future__ import annotations

import argparse
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from gcptoken.cli.completion import script_for
from gcptoken.cli.help_examples import EXAMPLES
from gcptoken.cli.main import build_parser, main
from gcptoken.cli.shell_install_lines import install_line
from gcptoken.local.metadata_platforms import PLATFORMS

HERE = Path(__file__).resolve().parent
Case = tuple[str, set[str]]  # the line up to the cursor, the candidates expected


def _subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    (subparsers,) = (a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(subparsers.choices)


def _flags(parser: argparse.ArgumentParser) -> set[str]:
    return {flag for action in parser._actions for flag in action.option_strings if action.help != argparse.SUPPRESS}


def _cases_from_the_parser() -> list[Case]:
    """Every command, every command's options, every fixed set of values, every FILE and DIR."""
    commands = _subcommands()
    cases: list[Case] = [("gcptoken ", set(commands)), ("gcptoken -", _flags(build_parser()))]
    for name, sub in commands.items():
        cases.append((f"gcptoken {name} -", _flags(sub)))
        for action in sub._actions:
            metavar = action.metavar if isinstance(action.metavar, str) else ""
            if action.option_strings and action.nargs != 0:
                for flag in action.option_strings:
                    if action.choices is not None:
                        cases.append((f"gcptoken {name} {flag} ", {str(c) for c in action.choices}))
                    elif "FILE" in metavar:
                        cases.append((f"gcptoken {name} {flag} ke", {"key.json", "keep"}))
                    elif metavar.endswith("DIR"):
                        cases.append((f"gcptoken {name} {flag} ke", {"keep"}))
            elif not action.option_strings and action.choices is not None:
                cases.append((f"gcptoken {name} ", {str(c) for c in action.choices}))
    return cases


HAND_WRITTEN: list[Case] = [
    ("gcptoken -v i", {"id", "inspect", "info"}),
    ("gcptoken id --for", {"--format"}),
    ("gcptoken id --format=j", {"json"}),
    ("gcptoken id -v --f", {"--format"}),
    ("gcptoken id --audience x --f", {"--format"}),
    ("gcptoken access --format ", {"token", "json", "header", "headers"}),  # each command's own choices
    ("gcptoken metadata-server --platform ", set(PLATFORMS)),
    ("gcptoken emulator --platform c", {"cloud-run"}),
    ("gcptoken call -H x --s", {"--serverless-header", "--source"}),  # -H's value is not the command's positional
    ("gcptoken verify --audience a --audience b --i", {"--issuer"}),
    ("gcptoken cache clear p", set()),  # one positional only: path is not offered again
    ("gcptoken completion f", {"fish"}),
    ("gcptoken curl https://svc.a.run.app --a", {"--audience"}),
    ("gcptoken curl https://svc.a.run.app -- -d ke", {"key.json", "keep"}),  # curl's arguments: files
    ("gcptoken curl https://svc.a.run.app -- --a", set()),  # not gcptoken's options any more
]
CASES = HAND_WRITTEN + _cases_from_the_parser()


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """The shell's current directory: a file and a folder that start with ``ke``, and one that does not."""
    (tmp_path / "key.json").write_text("{}")
    (tmp_path / "keep").mkdir()
    (tmp_path / "other.txt").write_text("")
    return tmp_path


def _environment(workdir: Path) -> dict[str, str]:
    home = workdir / "home"
    home.mkdir(exist_ok=True)
    return {**os.environ, "HOME": str(home), "XDG_CONFIG_HOME": str(home / "config"), "XDG_DATA_HOME": str(home)}


def _normalized(line: str, candidates: list[str]) -> set[str]:
    """The candidates as bare values: fish says ``--format=json`` and ``keep/``, zsh quotes."""
    last = line.split(" ")[-1]
    prefix = last[: last.index("=") + 1] if last.startswith("--") and "=" in last else ""
    return {c.split("\t")[0].removeprefix(prefix).rstrip("/").replace("\\ ", " ") for c in candidates if c}


def _answers(output: str, lines: list[str]) -> list[set[str]]:
    """``@@line LINE`` then candidates, for each line in order."""
    blocks = re.split(r"^@@line (.*)$", output, flags=re.MULTILINE)[1:]
    found = [(blocks[i], blocks[i + 1].replace("@@done", "").splitlines()) for i in range(0, len(blocks), 2)]
    assert [line for line, _ in found] == lines, output[-2000:]
    return [_normalized(line, candidates) for line, candidates in found]


def _bash_words(line: str) -> list[str]:
    """COMP_WORDS as bash makes them: split at blanks, and at ``=`` (in COMP_WORDBREAKS)."""
    words: list[str] = []
    for word in shlex.split(line):
        name, equals, value = word.partition("=")
        words += [name, "=", value] if equals and name.startswith("--") else [word]
    return words + ([""] if line.endswith(" ") else [])


def complete_in_bash(script: Path, lines: list[str], workdir: Path) -> list[set[str]]:
    program = [f"source {shlex.quote(str(script))}"]
    for line in lines:
        words = " ".join(shlex.quote(word) for word in _bash_words(line))
        program += [
            f"echo {shlex.quote('@@line ' + line)}",
            f"COMP_WORDS=({words}); COMP_CWORD=$((${{#COMP_WORDS[@]}} - 1)); COMPREPLY=()",
            '_gcptoken; printf "%s\\n" "${COMPREPLY[@]}"',
        ]
    result = _run_shell(["bash", "--norc", "--noprofile", "-c", "\n".join(program)], workdir)
    assert result.returncode == 0 and not result.stderr, result.stderr
    return _answers(result.stdout, lines)


def _run_shell(argv: list[str], workdir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, cwd=workdir, env=_environment(workdir), capture_output=True, text=True, timeout=120, check=False
    )


def complete_in_zsh(script: Path, lines: list[str], workdir: Path) -> list[set[str]]:
    functions = workdir / "zsh-functions"
    functions.mkdir()
    shutil.copy(script, functions / "_gcptoken")  # autoloaded from $fpath, as the README installs it
    out = workdir / "zsh-candidates"
    result = _run_shell(["zsh", "-f", str(HERE / "complete_in_zsh.zsh"), str(functions), str(out), *lines], workdir)
    assert result.returncode == 0, result.stderr
    return _answers(out.read_text(), lines)


def complete_in_fish(script: Path, lines: list[str], workdir: Path) -> list[set[str]]:
    program = [f"source {shlex.quote(str(script))}"]
    for line in lines:
        program += [f"echo {shlex.quote('@@line ' + line)}", f"complete -C {shlex.quote(line)}"]
    result = _run_shell(["fish", "--no-config", "-c", "\n".join(program)], workdir)
    assert result.returncode == 0 and not result.stderr, result.stderr
    return _answers(result.stdout, lines)


SHELLS: dict[str, Callable[[Path, list[str], Path], list[set[str]]]] = {
    "bash": complete_in_bash,
    "zsh": complete_in_zsh,
    "fish": complete_in_fish,
}


@pytest.mark.parametrize("shell", sorted(SHELLS))
def test_the_shell_completes_commands_options_and_fixed_values(
    shell: str, workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    if shutil.which(shell) is None:
        pytest.skip(f"{shell} is not installed on this machine (.ci/run installs it)")
    assert main(["completion", shell]) == 0
    script = workdir / f"gcptoken.{shell}"
    script.write_text(capsys.readouterr().out)
    lines = [line for line, _ in CASES]
    answers = SHELLS[shell](script, lines, workdir)
    wrong = [(line, expected, got) for (line, expected), got in zip(CASES, answers, strict=True) if got != expected]
    assert wrong == [], "\n".join(f"{line!r}: expected {sorted(e)}, got {sorted(g)}" for line, e, g in wrong)


def test_the_script_names_this_version_and_how_to_install_it() -> None:
    from gcptoken import __version__

    for shell in SHELLS:
        head = script_for(shell).splitlines()[:4]
        assert any(f"gcptoken {__version__}" in line for line in head)
        assert any("Install:" in line for line in head)


def test_the_generator_stays_off_the_command_lines_other_paths() -> None:
    """``gcptoken --help`` and ``gcptoken id --help`` never import it (the script is written only
    when asked for). Checked by what a fresh process imported."""
    code = (
        "import sys\n"
        "from gcptoken.cli.main import main\n"
        "for argv in (['--help'], ['id', '--help']):\n"
        "    try:\n"
        "        main(argv)\n"
        "    except SystemExit:\n"
        "        pass\n"
        "print(sorted(m for m in sys.modules if m.startswith('gcptoken.cli.')), file=sys.stderr)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    loaded = result.stderr.strip().splitlines()[-1]
    assert "gcptoken.cli.parser_kit" in loaded  # the check sees the modules the parser is made of
    assert "completion" not in loaded, loaded


BASH_COMPLETION = Path("/usr/share/bash-completion/bash_completion")
INSTALLED_AT = {  # where each shell looks, in a home with no XDG_* variables set
    "bash": ".local/share/bash-completion/completions/gcptoken",
    "zsh": ".zfunc/_gcptoken",
    "fish": ".config/fish/completions/gcptoken.fish",
}
PLAIN = {"bash": ["bash", "--norc", "--noprofile", "-c"], "zsh": ["zsh", "-f", "-c"], "fish": ["fish", "-c"]}


def _completes_in_a_new_shell(shell: str, home: Path, env: dict[str, str]) -> set[str]:
    """What ``gcptoken completion f<Tab>`` offers in a new shell that finds the script by itself."""
    if shell == "zsh":  # fpath=(~/.zfunc $fpath) before compinit, as the README says
        out = home / "candidates"
        argv = ["zsh", "-f", str(HERE / "complete_in_zsh.zsh"), str(home / ".zfunc"), str(out), "gcptoken completion f"]
        result = subprocess.run(argv, cwd=home, env=env, capture_output=True, text=True, timeout=120, check=False)
        assert result.returncode == 0, result.stderr
        return _answers(out.read_text(), ["gcptoken completion f"])[0]
    if shell == "bash":  # bash-completion loads it from its user folder on first use
        program = (
            f"source {BASH_COMPLETION}; __load_completion gcptoken || exit 7\n"
            "COMP_WORDS=(gcptoken completion f); COMP_CWORD=2; COMPREPLY=()\n"
            '_gcptoken; printf "%s\\n" "${COMPREPLY[@]}"'
        )
    else:  # fish autoloads ~/.config/fish/completions/gcptoken.fish for a gcptoken on PATH
        program = "complete -C 'gcptoken completion f'"
    result = subprocess.run(
        [*PLAIN[shell], program], cwd=home, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    return _normalized("gcptoken completion f", result.stdout.splitlines())


@pytest.mark.parametrize("shell", sorted(SHELLS))
def test_each_install_line_works_in_a_fresh_home(shell: str, tmp_path: Path) -> None:
    """The line the README, ``completion --help`` and the script's header show, run as-is by the
    shell it is for in a home where none of the folders exist yet: the script lands where that shell
    looks, and a new shell completes from it."""
    if shutil.which(shell) is None:
        pytest.skip(f"{shell} is not installed on this machine (.ci/run installs it)")
    if shell == "bash" and not BASH_COMPLETION.exists():
        pytest.skip("the bash-completion package is not installed")
    line = install_line(shell)
    readme = (HERE.parent.parent / "README.md").read_text()
    assert f"\n{line}\n" in readme
    assert line in [example for _, example in EXAMPLES["completion"]]
    assert f"# Install: {line}\n" in script_for(shell)
    home, bin_dir = tmp_path / "home", tmp_path / "bin"
    home.mkdir()
    bin_dir.mkdir()
    program = bin_dir / "gcptoken"  # the console script, as the venv's bin/ would give
    program.write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} -m gcptoken "$@"\n')
    program.chmod(0o755)
    env = {key: value for key, value in os.environ.items() if not key.startswith("XDG_")}
    env.update(HOME=str(home), PATH=f"{bin_dir}{os.pathsep}{env.get('PATH', '')}")
    result = subprocess.run(
        [*PLAIN[shell], line], cwd=home, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0 and not result.stderr, result.stderr
    assert (home / INSTALLED_AT[shell]).read_text().startswith(("#", "#compdef"))
    assert _completes_in_a_new_shell(shell, home, env) == {"fish"}
