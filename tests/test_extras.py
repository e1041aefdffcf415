"""The core install carries no server packages, and a feature whose extra is missing says which
``pip install`` to run: one line, exit 3, never a ModuleNotFoundError traceback."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SERVER_PACKAGES = ("starlette", "uvicorn", "fastapi", "flask", "requests", "anyio-extras", "grpcio")


def _list(text: str, name: str) -> str:
    """The body of the TOML list ``name = [...]`` (tomllib is 3.11+; this project runs on 3.10)."""
    match = re.search(rf"^{re.escape(name)} = \[(.*?)\]$", text, re.MULTILINE | re.DOTALL)
    assert match is not None, name
    return re.sub(r"#.*", "", match.group(1)).lower()


def test_the_core_install_carries_no_server_packages() -> None:
    text = (ROOT / "pyproject.toml").read_text()
    core = _list(text, "dependencies")
    assert "cryptography" in core and "httpx" in core
    assert [name for name in SERVER_PACKAGES if name in core] == []
    emulator = _list(text, "emulator")
    assert "starlette" in emulator and "uvicorn" in emulator
    assert "starlette" in _list(text, "asgi") and "requests" in _list(text, "requests")
    assert "grpcio" in _list(text, "grpc")


def _without(modules: list[str], code: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a Python where ``modules`` cannot be imported, as after a core-only install."""
    blocker = "import sys\n" + "".join(f"sys.modules[{name!r}] = None\n" for name in modules)
    return subprocess.run(
        [sys.executable, "-c", blocker + code], capture_output=True, text=True, timeout=60, check=False
    )


# Every command that needs an extra, each with the module it misses first.
COMMANDS_WITH_EXTRAS = [
    (["emulator", "--port", "0"], "uvicorn"),
    (["emulator"], "starlette"),
    (["demo"], "starlette"),
    (["metadata-server"], "uvicorn"),
    (["proxy", "https://svc.a.run.app"], "websockets"),
    (["inspect", "--no-browser"], "starlette"),
]


def test_commands_without_their_extra_name_the_command_and_what_to_install() -> None:
    """One process for all (each is a fresh main() on a fresh import of the command's module)."""
    code = "import sys, importlib\nfrom gcptoken.cli.main import main\n"
    for argv, missing in COMMANDS_WITH_EXTRAS:
        code += (
            f"sys.modules[{missing!r}] = None\n"
            f"print(main({argv!r}), file=sys.stderr)\n"
            f"del sys.modules[{missing!r}]\n"
            "for name in [n for n in sys.modules if n.startswith(('gcptoken.cli.', 'gcptoken.emulator', "
            "'gcptoken.demo', 'gcptoken.inspector', 'gcptoken.local', 'starlette', 'uvicorn', 'websockets'))]:\n"
            "    del sys.modules[name]\n"
        )
    result = _without([], code)
    assert result.stdout == "" and "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 2 * len(COMMANDS_WITH_EXTRAS), result.stderr
    for (argv, missing), line, code in zip(COMMANDS_WITH_EXTRAS, lines[::2], lines[1::2], strict=True):
        assert code == "3", line
        assert line == (
            f"gcptoken: error: gcptoken {argv[0]} needs the 'emulator' extra ({missing} is not installed): "
            "pip install 'gcptoken[emulator]'"
        )


@pytest.mark.parametrize(
    ("module", "missing", "extra"),
    [
        ("gcptoken.integrations.asgi", "starlette", "asgi"),
        ("gcptoken.integrations.requests_auth", "requests", "requests"),
        ("gcptoken.integrations.otel", "requests", "requests"),
        ("gcptoken.integrations.grpc", "grpc", "grpc"),
        ("gcptoken.integrations.grpc.aio", "grpc", "grpc"),
        ("gcptoken.integrations.httpx2_auth", "httpx2", "httpx2"),
        ("gcptoken.testing", "uvicorn", "emulator"),
        ("gcptoken.emulator", "starlette", "emulator"),
        ("gcptoken.cli.inspector", "uvicorn", "emulator"),
        ("gcptoken.helpers.keyring_backend", "keyring", "keyring"),
        ("gcptoken.keys.tpm", "tpm2_pytss", "tpm"),
    ],
)
def test_imports_without_their_extra_say_what_to_install(module: str, missing: str, extra: str) -> None:
    code = (
        "from gcptoken.extras import MissingExtra\n"
        f"try:\n    import {module}\n"
        "except MissingExtra as exc:\n    print(exc)\n    raise SystemExit(7)\n"
    )
    result = _without([missing], code)
    assert result.returncode == 7, result.stderr
    assert f"pip install 'gcptoken[{extra}]'" in result.stdout
    assert result.stdout.startswith(NAMED[module]), result.stdout
    assert f"({PACKAGES.get(missing, missing)} is not installed)" in result.stdout  # what pip calls it


# The package pip installs, where its name is not the module's.
PACKAGES = {"grpc": "grpcio", "tpm2_pytss": "tpm2-pytss"}


# What each import's line names: the module, or what a user knows it as.
NAMED = {
    "gcptoken.integrations.asgi": "gcptoken.integrations.asgi needs",
    "gcptoken.integrations.requests_auth": "gcptoken.integrations.requests_auth needs",
    "gcptoken.integrations.otel": "gcptoken.integrations.otel needs",
    "gcptoken.integrations.grpc": "gcptoken.integrations.grpc needs",
    "gcptoken.integrations.grpc.aio": "gcptoken.integrations.grpc needs",
    "gcptoken.integrations.httpx2_auth": "gcptoken.integrations.httpx2_auth needs",
    "gcptoken.testing": "gcptoken's pytest plugin (gcptoken.testing) needs",
    "gcptoken.emulator": "gcptoken.emulator needs",
    "gcptoken.cli.inspector": "gcptoken inspect needs",
    "gcptoken.helpers.keyring_backend": "gcptoken's keyring backend (gcptoken.helpers.keyring_backend) needs",
    "gcptoken.keys.tpm": "gcptoken.keys.tpm needs",
}


def test_the_core_works_without_any_extra() -> None:
    code = (
        "import gcptoken\n"
        "from gcptoken import Verifier, load_credentials\n"
        "from gcptoken.integrations.wsgi import IdTokenWSGIMiddleware\n"
        "from gcptoken.integrations.httpx_auth import IdTokenAuth\n"
        "print('ok')\n"
    )
    result = _without(["starlette", "uvicorn", "requests", "fastapi", "flask", "grpc"], code)
    assert result.returncode == 0 and result.stdout == "ok\n", result.stderr


def test_an_extra_for_a_newer_python_says_so_instead_of_an_install(monkeypatch: pytest.MonkeyPatch) -> None:
    """httpx2 is for Python 3.11+: on 3.10, ``pip install 'gcptoken[httpx2]'`` installs nothing
    (pyproject's marker), so the line names the Python needed, not that install."""
    from gcptoken import extras

    pyproject = (Path(__file__).parents[1] / "pyproject.toml").read_text()
    marker = re.search(r"^httpx2 = \[\"httpx2[^;]*; python_version >= '(\d+)\.(\d+)'", pyproject, re.MULTILINE)
    assert marker is not None and extras.NEEDS_PYTHON["httpx2"] == (int(marker[1]), int(marker[2]))
    monkeypatch.setitem(sys.modules, "httpx2", None)  # not importable
    monkeypatch.setattr(extras, "PYTHON", (3, 10))
    with pytest.raises(extras.MissingExtra) as caught:
        extras.require("httpx2", "gcptoken.integrations.httpx2_auth")
    assert str(caught.value) == (
        "gcptoken.integrations.httpx2_auth needs httpx2, which needs Python 3.11+ (this is Python 3.10)"
    )
    monkeypatch.setattr(extras, "PYTHON", (3, 11))
    with pytest.raises(extras.MissingExtra, match=r"pip install 'gcptoken\[httpx2\]'"):
        extras.require("httpx2", "gcptoken.integrations.httpx2_auth")
