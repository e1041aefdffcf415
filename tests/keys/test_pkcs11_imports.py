"""The URI and module-choice code is standard library only (the CLI's cached path imports it),
and without python-pkcs11 opening a key says which install to run."""

from __future__ import annotations

import subprocess
import sys


def _run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)


def test_parsing_and_choosing_a_module_import_nothing_outside_the_standard_library() -> None:
    result = _run(
        "import sys\n"
        "from gcptoken.keys.pkcs11_uri import parse_uri\n"
        "from gcptoken.keys.pkcs11_module import choose_module\n"
        "import gcptoken.keys.pkcs11_logins\n"
        "parse_uri('pkcs11:token=t')\n"
        "print(sorted(m for m in ('pkcs11', 'cryptography', 'httpx') if m in sys.modules))\n"
    )
    assert result.returncode == 0 and result.stdout == "[]\n", result.stderr


def test_without_python_pkcs11_opening_a_key_names_the_install() -> None:
    result = _run(
        "import sys\nsys.modules['pkcs11'] = None\n"
        "from gcptoken.extras import MissingExtra\n"
        "from gcptoken.keys.pkcs11 import open_key\n"
        "from gcptoken.keys.pkcs11_uri import parse_uri\n"
        "try:\n    open_key(parse_uri('pkcs11:token=t?module-path=/nonexistent/module.so'), None)\n"
        "except MissingExtra as exc:\n    print(exc)\n"
    )
    assert result.stdout == (
        "gcptoken's PKCS#11 keys (gcptoken.keys.pkcs11) needs the 'pkcs11' extra (python-pkcs11 is not installed): "
        "pip install 'gcptoken[pkcs11]'\n"
    ), result.stderr
