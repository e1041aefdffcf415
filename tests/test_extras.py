"""The core install carries no server packages, and a feature whose extra is missing says which
``pip install`` to run: one line, exit 3, never a ModuleNotFoundError traceback."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SERVER_PACKAGES = ("starlette", "uvicorn", "fastapi", "flask", "requests", "anyio-extras")


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


def _without(modules: list[str], code: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a Python where ``modules`` cannot be imported, as after a core-only install."""
    blocker = "import sys\n" + "".join(f"sys.modules[{name!r}] = None\n" for name in modules)
    return subprocess.run(
        [sys.executable, "-c", blocker + code], capture_output=True, text=True, timeout=60, check=False
    )


@pytest.mark.parametrize(
    ("argv", "missing"),
    [
        (["emulator", "--port", "0"], ["uvicorn"]),
        (["emulator"], ["starlette"]),
        (["demo"], ["starlette"]),
        (["metadata-server"], ["uvicorn"]),
        (["proxy", "https://svc.a.run.app"], ["websockets"]),
    ],
)
def test_commands_without_their_extra_say_what_to_install(argv: list[str], missing: list[str]) -> None:
    result = _without(missing, f"from gcptoken.cli.main import main\nraise SystemExit(main({argv!r}))")
    assert result.returncode == 3 and result.stdout == ""
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr, result.stderr
    assert "pip install 'gcptoken[emulator]'" in result.stderr and missing[0] in result.stderr


@pytest.mark.parametrize(
    ("module", "missing", "extra"),
    [
        ("gcptoken.integrations.asgi", "starlette", "asgi"),
        ("gcptoken.integrations.requests_auth", "requests", "requests"),
        ("gcptoken.testing", "uvicorn", "emulator"),
        ("gcptoken.emulator", "starlette", "emulator"),
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


def test_the_core_works_without_any_extra() -> None:
    code = (
        "import gcptoken\n"
        "from gcptoken import Verifier, load_credentials\n"
        "from gcptoken.integrations.wsgi import IdTokenWSGIMiddleware\n"
        "from gcptoken.integrations.httpx_auth import IdTokenAuth\n"
        "print('ok')\n"
    )
    result = _without(["starlette", "uvicorn", "requests", "fastapi", "flask"], code)
    assert result.returncode == 0 and result.stdout == "ok\n", result.stderr
