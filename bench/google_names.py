"""Google's own host names (``us-python.pkg.dev``, ``us-docker.pkg.dev``, ``gcr.io``) answered by
the emulator on this machine, so tools that only talk to those names — Google's keyring backend
answers hosts ending ``.pkg.dev`` only (``keyrings/gauth.py``) — run against it unchanged, with
gcptoken's helpers under their default host rule (``*.pkg.dev`` on port 443) in the same run.

How, with nothing leaving the machine: each command runs in a private mount namespace
(``unshare --mount --propagation private``, root only) where ``/etc/hosts`` is bind-mounted from a
file naming the hosts at a loopback address of their own (127.x.y.z, so port 443 is free there
whatever else this machine runs on 127.0.0.1); the emulator's HTTPS port listens on that address,
port 443, with a certificate valid for those names (``WorkloadCa.server_certificate``). Python's,
uv's (getaddrinfo) and Go's (docker, kubectl: they read ``/etc/hosts`` themselves) resolvers honour
the file, nsswitch ``hosts: files`` coming first. Before the command runs, a check inside the
namespace resolves every name and stops (exit 125, one line) unless each answer is loopback: a
name that failed to resolve is an error, never a real Google address. There, too, ``hosts: files``
is the only source and the DNS server is loopback's: any other name fails to resolve rather than
asking this machine's DNS server.

Why port 443 and not the emulator's usual free port: Google's backend would take
``https://us-python.pkg.dev:PORT/`` (it checks ``urlparse(URL).hostname`` only), but gcptoken's
default rule answers a bare ``*.pkg.dev`` on 443 alone, and a test of that rule is the point; an
address of its own gives 443 without a network namespace.

Shared by bench (``bench/keyring_rows.py``) and the tests (``tests/helpers/test_google_names.py``);
it needs nothing from pytest."""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from gcptoken.emulator.http.server import EmulatorServer
from gcptoken.servers.listen import ListenError

__all__ = ["GOOGLE_NAMES", "NAMES_REFUSED", "GoogleNames", "serve_as_google", "unavailable", "write_etc"]

GOOGLE_NAMES = ("us-python.pkg.dev", "us-docker.pkg.dev", "gcr.io")
# The wrapper's own exit status when the namespace or the loopback check fails (as env(1) and
# timeout(1) use 125 for their own failures): the command itself never ran.
NAMES_REFUSED = 125
_ATTEMPTS = 8

# Run as `python -I -c _IN_NAMESPACE DIR NAME... -- COMMAND...` inside the new mount namespace:
# stdlib only (-I: no user site, no PYTHON* settings). Each file of DIR bind-mounted over its
# namesake in /etc (mount(2), MS_BIND = 4096), then every name must resolve, and only to loopback,
# before the command replaces this process.
_IN_NAMESPACE = """
import ctypes, ipaddress, os, socket, sys
files, rest = sys.argv[1], sys.argv[2:]
names, command = rest[:rest.index("--")], rest[rest.index("--") + 1:]
libc = ctypes.CDLL(None, use_errno=True)
for file in sorted(os.listdir(files)):
    if libc.mount(os.path.join(files, file).encode(), f"/etc/{file}".encode(), None, 4096, None) != 0:
        print(f"google names: cannot bind-mount /etc/{file}: " + os.strerror(ctypes.get_errno()), file=sys.stderr)
        sys.exit(125)
for name in names:
    try:
        found = {info[4][0] for info in socket.getaddrinfo(name, 443, type=socket.SOCK_STREAM)}
    except OSError as error:
        print(f"google names: {name} does not resolve: {error}", file=sys.stderr)
        sys.exit(125)
    if not found or not all(ipaddress.ip_address(a.split("%")[0]).is_loopback for a in found):
        print(f"google names: {name} resolves to {sorted(found)}, not loopback", file=sys.stderr)
        sys.exit(125)
os.execvp(command[0], command)
"""


def unavailable() -> str | None:
    """Why commands cannot run with Google's names on loopback here, or None when they can."""
    if not sys.platform.startswith("linux"):
        return "Google's names on loopback need Linux mount namespaces"
    if os.geteuid() != 0:
        return "Google's names on loopback need root (unshare --mount to bind-mount /etc/hosts)"
    if shutil.which("unshare") is None:
        return "Google's names on loopback need unshare(1) (util-linux)"
    trial = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "true"], capture_output=True, text=True, timeout=30
    )
    if trial.returncode != 0:
        return f"unshare --mount fails here: {trial.stderr.strip()[:200]}"
    return None


@dataclass(frozen=True)
class GoogleNames:
    """``names`` resolving to ``address`` (a loopback address) for the commands :meth:`argv` wraps;
    ``etc`` holds the files put over their namesakes in ``/etc`` there."""

    address: str
    names: tuple[str, ...]
    etc: Path

    def argv(self, command: Sequence[str]) -> list[str]:
        """``command`` run in its own mount namespace where ``names`` are ``address``."""
        namespace = ["unshare", "--mount", "--propagation", "private", "--"]
        check = [sys.executable, "-I", "-c", _IN_NAMESPACE, str(self.etc), *self.names, "--"]
        return [*namespace, *check, *command]


def write_etc(directory: Path, address: str, names: Sequence[str]) -> Path:
    """``directory/etc``: ``hosts`` naming ``names`` at ``address``; ``nsswitch.conf`` as this
    machine's with ``hosts: files`` alone, and ``resolv.conf`` naming loopback's port 53 only, so a
    name outside the file (``oauth2.googleapis.com``, say) fails to resolve instead of reaching the
    machine's DNS server, which is not on loopback."""
    etc = directory / "etc"
    etc.mkdir(mode=0o755)
    system = Path("/etc/nsswitch.conf")
    switch = (
        [line for line in system.read_text().splitlines() if not line.startswith("hosts:")] if system.exists() else []
    )
    texts = {
        "hosts": f"127.0.0.1 localhost\n::1 localhost\n{address} {' '.join(names)}\n",
        "nsswitch.conf": "\n".join([*switch, "hosts: files"]) + "\n",
        "resolv.conf": "nameserver 127.0.0.1\noptions timeout:1 attempts:1\n",
    }
    for name, text in texts.items():
        if name != "hosts" and not Path("/etc", name).exists():
            continue  # nothing to cover (a bind mount needs its target)
        # Our own fresh directory; O_EXCL: never through a planted file or symlink.
        with open(os.open(etc / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644), "w") as file:
            file.write(text)
    return etc


def _loopback_address() -> str:
    """A loopback address other than 127.0.0.1 (Linux answers all of 127/8 on ``lo``)."""
    return f"127.{random.randint(1, 254)}.{random.randint(0, 255)}.{random.randint(1, 254)}"


@contextmanager
def serve_as_google(names: Sequence[str] = GOOGLE_NAMES) -> Iterator[tuple[EmulatorServer, GoogleNames]]:
    """An emulator whose HTTPS port is ``https://NAME`` (port 443) for each of ``names`` inside
    the commands ``GoogleNames.argv`` wraps; its plain port (the token service) on the same
    address. Call :func:`unavailable` first."""
    for attempt in range(_ATTEMPTS):
        address = _loopback_address()
        try:
            server = EmulatorServer(host=address, tls_port=443, allow_hosts=tuple(names))
        except ListenError:
            if attempt == _ATTEMPTS - 1:
                raise
            continue
        break
    with server, tempfile.TemporaryDirectory(prefix="gcptoken-names-") as scratch:
        yield server, GoogleNames(address, tuple(names), write_etc(Path(scratch), address, names))
