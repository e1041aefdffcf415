"""The layout keeps its shape: no import cycles between gcptoken's modules (those under
``TYPE_CHECKING`` count too; imports inside functions, deliberately lazy, do not), no oversized
module, nothing loose at the root, no module re-exporting another's names, a docstring in each."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "src" / "gcptoken"
MAX_LINES = 400


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def _top_level_imports(tree: ast.Module) -> list[ast.Import | ast.ImportFrom]:
    """Imports at the module's top level, those under TYPE_CHECKING included: a cycle of type
    imports is still a cycle for a reader. Not those in functions."""
    found: list[ast.Import | ast.ImportFrom] = []

    def visit(statements: list[ast.stmt]) -> None:
        for node in statements:
            if isinstance(node, ast.Import | ast.ImportFrom):
                found.append(node)
            elif isinstance(node, ast.If):
                visit(node.body)
                visit(node.orelse)
            elif isinstance(node, ast.Try):
                visit(node.body)
                for handler in node.handlers:
                    visit(handler.body)

    visit(tree.body)
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for node in _top_level_imports(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                assert node.level == 0, f"{name}: relative imports are not used here"
                base = node.module or ""
                targets = [
                    f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names
                ]
            graph[name].update(target for target in targets if target in modules and target != name)
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)) is not None:
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)) is not None:
            return found
    return None


def test_the_graph_sees_imports() -> None:
    graph = _graph()
    assert "gcptoken.jose.jws" in graph["gcptoken.verify.key_cache"]  # the detector is not blind
    assert "gcptoken.credentials.base" in graph["gcptoken.credentials.service_account"]
    assert "gcptoken.credentials.base" in graph["gcptoken.credentials"]  # under TYPE_CHECKING only


def test_the_cycle_finder_finds_cycles() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycles() -> None:
    assert _cycle(_graph()) is None, " → ".join(_cycle(_graph()) or [])


def test_no_module_is_oversized() -> None:
    sizes = {name: len(path.read_text().splitlines()) for name, path in _modules().items()}
    assert {name: lines for name, lines in sizes.items() if lines > MAX_LINES} == {}


# -- the rooms: what may stand at the root, what re-exports, what each room says it holds ---------

# The shared ground every wing stands on (README, "Layout"); everything else lives in a wing.
GROUND_FLOOR = frozenset(
    {
        "errors",
        "endpoints",
        "tokens",
        "checks",
        "locations",
        "loopback",
        "private_files",
        "untrusted",
        "extras",
        "testing",
    }
)
README = PACKAGE.parent.parent / "README.md"


def _packages() -> dict[str, Path]:
    return {name: path for name, path in _modules().items() if path.name == "__init__.py"}


def _all_names(tree: ast.Module) -> set[str]:
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets):
            value = node.value
            if isinstance(value, ast.List | ast.Tuple):
                return {elt.value for elt in value.elts if isinstance(elt, ast.Constant) and isinstance(elt.value, str)}
    return set()


def _re_exported(tree: ast.Module) -> set[str]:
    """Names a module lists in ``__all__`` that it only imported from another gcptoken module."""
    imported = {
        alias.asname or alias.name
        for node in _top_level_imports(tree)
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("gcptoken")
        for alias in node.names
    }
    return imported & _all_names(tree)


def test_the_root_holds_only_the_wings_and_the_ground_floor() -> None:
    loose = {path.stem for path in PACKAGE.glob("*.py")} - {"__init__", "__main__"} - GROUND_FLOOR
    assert loose == set(), f"move these into their wing (or document them as ground floor): {sorted(loose)}"


def test_no_module_but_a_package_re_exports_names() -> None:
    offenders = {
        name: sorted(found)
        for name, path in _modules().items()
        if path.name != "__init__.py" and (found := _re_exported(ast.parse(path.read_text())))
    }
    assert offenders == {}


def test_the_re_export_check_can_fail() -> None:
    alias = ast.parse('from gcptoken.jose.jws import encode\n__all__ = ["encode"]\n')
    assert _re_exported(alias) == {"encode"}
    assert _re_exported(ast.parse('from gcptoken.jose.jws import encode\n__all__ = ["sign"]\n')) == set()


def test_every_module_says_what_it_holds() -> None:
    silent = [
        name for name, path in _modules().items() if not (ast.get_docstring(ast.parse(path.read_text())) or "").strip()
    ]
    assert silent == []


def _tree_folders(text: str) -> set[str]:
    """The folders a layout tree names, as paths like ``gcptoken/emulator/oauth2``.

    The tree is the fenced block that starts ``src/gcptoken/``; an entry is a line whose first word
    ends in ``/``, two spaces of indentation a level down, inside the entry above it at one level
    less. Wrapped descriptions (indented past the names, to an odd column) are not entries.
    """
    start = text.find("```\nsrc/gcptoken/")
    assert start >= 0, "no fenced layout tree starting src/gcptoken/"
    block = text[start + 4 : text.index("```", start + 4)]
    folders: set[str] = set()
    path = ["gcptoken"]
    for line in block.splitlines()[1:]:
        indent = len(line) - len(line.lstrip(" "))
        words = line.split()
        if not words or not words[0].endswith("/") or indent % 2 or not 0 < indent // 2 <= len(path):
            continue
        path = [*path[: indent // 2], words[0].rstrip("/")]
        folders.add("/".join(path))
    return folders


def test_the_readme_layout_names_every_folder() -> None:
    named = _tree_folders(README.read_text())
    folders = {path.parent.relative_to(PACKAGE.parent).as_posix() for path in _packages().values()}
    missing = sorted(folders - named - {"gcptoken"})
    assert missing == [], "the README's layout tree lacks these folders"


def test_the_layout_tree_reader_follows_the_indentation() -> None:
    tree = (
        "```\nsrc/gcptoken/   the root\n  jose/          tokens\n  emulator/      Google:\n"
        "    oauth2/      the token endpoint,\n                 wrapped/ on\n  cli/           the commands\n```\n"
    )
    assert _tree_folders(tree) == {"gcptoken/jose", "gcptoken/emulator", "gcptoken/emulator/oauth2", "gcptoken/cli"}
    flat = tree.replace("    oauth2/", "  oauth2/  ")  # oauth2/ at the root is not the emulator's
    assert "gcptoken/emulator/oauth2" not in _tree_folders(flat)


def test_a_users_mypy_sees_gcptokens_types(tmp_path: Path) -> None:
    """The package ships ``py.typed`` (PEP 561): without it a user's mypy takes every name as Any."""
    user = tmp_path / "user.py"
    user.write_text('from gcptoken import load_credentials\nx: int = load_credentials().id_token("https://a").value\n')
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--no-incremental", "--follow-imports=silent", str(user)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert 'expression has type "str", variable has type "int"' in result.stdout, result.stdout
