"""Small pure-Python wheels the emulated Python repository serves, built in memory at first use:
valid to pip and uv (``METADATA``, ``WHEEL`` and a ``RECORD`` with each file's sha256, as the
wheel spec https://packaging.python.org/en/latest/specifications/binary-distribution-format/
asks), one of them depending on another so a resolver makes several requests."""

from __future__ import annotations

import base64
import functools
import hashlib
import io
import re
import zipfile
from dataclasses import dataclass

__all__ = ["DEMO_PACKAGES", "Wheel", "normalized", "wheels"]

# name → (version, requirements): a dependency chain (app → core) and independent fillers, so a
# bench can ask for N packages and a resolver fetches more than one page.
DEMO_PACKAGES: dict[str, tuple[str, tuple[str, ...]]] = {
    "gcptoken-demo-core": ("1.0.0", ()),
    "gcptoken-demo-app": ("1.2.0", ("gcptoken-demo-core>=1.0",)),
    **{f"gcptoken-demo-{n}": ("0.1.0", ()) for n in range(1, 9)},
}
# A fixed date for every member: the same bytes (and sha256) on every start.
_DATE = (2024, 1, 1, 0, 0, 0)


@dataclass(frozen=True)
class Wheel:
    project: str  # normalized project name (PEP 503)
    filename: str
    data: bytes
    sha256: str  # hex, for the index's ``#sha256=`` fragment


def normalized(name: str) -> str:
    """PEP 503's normalized name: runs of ``-``, ``_`` and ``.`` become one ``-``, lower-cased."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _record_hash(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"sha256={digest},{len(data)}"


def _build(project: str, version: str, requires: tuple[str, ...]) -> Wheel:
    module = project.replace("-", "_")
    info = f"{module}-{version}.dist-info"
    metadata = "".join(
        [f"Metadata-Version: 2.1\nName: {project}\nVersion: {version}\n", *(f"Requires-Dist: {r}\n" for r in requires)]
    )
    files = {
        f"{module}/__init__.py": f'"""{project}: a package of the gcptoken emulator."""\n\nVERSION = "{version}"\n',
        f"{info}/METADATA": metadata,
        f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: gcptoken-emulator\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = "".join(f"{name},{_record_hash(text.encode())}\n" for name, text in files.items()) + f"{info}/RECORD,,\n"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, text in [*files.items(), (f"{info}/RECORD", record)]:
            archive.writestr(zipfile.ZipInfo(name, _DATE), text)
    data = buffer.getvalue()
    return Wheel(project, f"{module}-{version}-py3-none-any.whl", data, hashlib.sha256(data).hexdigest())


@functools.cache
def wheels() -> dict[str, Wheel]:
    """Every demo wheel by normalized project name."""
    return {normalized(name): _build(normalized(name), *spec) for name, spec in DEMO_PACKAGES.items()}
