"""The checks every local server makes before anything else, as pure functions over a request's
method, headers and peer, so a stdlib server and an ASGI one apply the very same rules.

Every web page in the user's browser can reach a loopback server (cross-site requests, DNS
rebinding), and every local user can connect to it. So, in this order:

- the peer must be loopback or inside ``--allow`` (a server bound elsewhere answers nobody else);
- the ``Host`` must be one this server answers to: loopback literals and the bound address with the
  bound port, plus the server's own names (``metadata.google.internal``) and ``--allow-host`` names.
  A rebound name (``attacker.example`` now resolving to 127.0.0.1) is refused before any credential
  is touched;
- where a request reads a secret or changes state, an ``Origin`` other than the server's own (or
  ``Sec-Fetch-Site`` other than ``same-origin``/``none``) is refused, as Jupyter and VS Code's
  servers do; requests without them (curl, SDKs) pass;
- state-changing calls that must be JSON are refused as any other type: a cross-site HTML form can
  send only form and text bodies.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum

from gcptoken.loopback import is_loopback_address
from gcptoken.servers.framing import FramingError, body_framing, origin_form

__all__ = [
    "LOOPBACK_NAMES",
    "MAX_HEADER_BYTES",
    "METADATA_NAMES",
    "SAFE_METHODS",
    "GuardPolicy",
    "Network",
    "Refusal",
    "Request",
    "Scrutiny",
    "check",
    "parse_networks",
    "screen",
]

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
LOOPBACK_NAMES = frozenset({"127.0.0.1", "localhost", "::1"})
# What clients in containers and on Google Cloud send to the metadata server.
METADATA_NAMES = frozenset({"metadata.google.internal", "metadata"})
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_SITE_OK = frozenset({"same-origin", "none"})
_WILDCARDS = frozenset({"0.0.0.0", "::", ""})  # noqa: S104 (names, not a bind)


class Scrutiny(Enum):
    """How closely a request is looked at, beyond peer and Host (which every request gets)."""

    HOST = "host"  # public paths: peer and Host only
    # The proxy's rule: a foreign Origin refused on every method (its page could read the answer);
    # a request from another site without one only as a top-level navigation (a link followed),
    # never a script, style, image or frame it could include.
    UNSAFE = "unsafe"
    SAME_ORIGIN = "same-origin"  # same origin for every request
    SAME_ORIGIN_JSON = "same-origin-json"  # and JSON bodies for non-safe methods


@dataclass(frozen=True)
class Refusal:
    status: int
    reason: str  # one line for the client and for stderr; never a secret


@dataclass(frozen=True)
class GuardPolicy:
    """``names``: Host names answered besides loopback and the bound address (any port);
    ``allow``: peers answered besides loopback; ``origins``: other origins trusted like our own
    (``http://localhost:5173``); ``hint``, ``allow_hint``: what a refusal names as the way to open
    a Host or a peer."""

    names: frozenset[str] = frozenset()
    allow: tuple[Network, ...] = ()
    origins: frozenset[str] = frozenset()
    hint: str = "--allow-host NAME"
    allow_hint: str = "--allow CIDR"
    _normalised: frozenset[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_normalised", frozenset(_normal_name(n) for n in self.names))


def parse_networks(values: Sequence[str] | None, flag: str = "--allow") -> tuple[Network, ...]:
    """CIDR blocks from the command line; ``ValueError`` names the bad one."""
    networks = []
    for value in values or ():
        try:
            networks.append(ipaddress.ip_network(value.strip(), strict=False))
        except ValueError:
            raise ValueError(f"{flag} {value[:60]!r} is not an address or CIDR block") from None
    return tuple(networks)


def _normal_name(name: str) -> str:
    name = name.strip().lower().rstrip(".")
    return name[1:-1] if name.startswith("[") and name.endswith("]") else name


def _split_host(host: str) -> tuple[str, int | None] | None:
    """``name[:port]`` / ``[v6][:port]`` → (name, port); None when it is not a Host at all."""
    if not host or any(c in host for c in " \t/\\@?#%") or not host.isascii():
        return None
    if host.startswith("["):
        end = host.find("]")
        if end < 0:
            return None
        name, rest = host[1:end], host[end + 1 :]
        if rest and not rest.startswith(":"):
            return None
        port_text = rest[1:] if rest else None
    else:
        name, colon, port_text_or_empty = host.partition(":")
        port_text = port_text_or_empty if colon else None
        if ":" in port_text_or_empty:
            return None
    if port_text is None:
        return _normal_name(name), None
    if not port_text.isdigit() or len(port_text) > 5 or int(port_text) > 65535:
        return None
    return _normal_name(name), int(port_text)


def _peer_allowed(peer: str, policy: GuardPolicy) -> bool:
    if is_loopback_address(peer):
        return True
    try:
        address = ipaddress.ip_address(peer.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address in network for network in policy.allow)


def _host_allowed(host: str | None, bound: tuple[str, int], scheme: str, policy: GuardPolicy) -> bool:
    if host is None:
        return False
    parts = _split_host(host)
    if parts is None:
        return False
    name, port = parts
    if name in policy._normalised:
        return True  # the server's own names and --allow-host: any port (containers, port mappings)
    effective = port if port is not None else (443 if scheme in ("https", "wss") else 80)
    bound_name = _normal_name(bound[0])
    wildcard = bound_name in _WILDCARDS  # bound everywhere: names must be given with --allow-host
    ours = name in LOOPBACK_NAMES or (name == bound_name and not wildcard)
    return ours and effective == bound[1]


def _origin_of(host: str, scheme: str) -> str:
    web = "https" if scheme in ("https", "wss") else "http"
    return f"{web}://{host.lower()}"


def _origin_ok(headers: Mapping[str, str], host: str, scheme: str, policy: GuardPolicy) -> bool:
    origin = headers.get("origin")
    if origin is None:
        return True
    origin = origin.strip().lower().rstrip("/")
    return origin == _origin_of(host, scheme) or origin in policy.origins


def _navigation_or_same_site(headers: Mapping[str, str], host: str, scheme: str, policy: GuardPolicy) -> bool:
    """A safe request at the proxy: no foreign Origin, and from another site only as a link followed."""
    if not _origin_ok(headers, host, scheme, policy):
        return False
    site = headers.get("sec-fetch-site", "").strip().lower()
    if not site or site in _SITE_OK or headers.get("origin") is not None:
        return True
    mode = headers.get("sec-fetch-mode", "").strip().lower()
    destination = headers.get("sec-fetch-dest", "document").strip().lower()
    return mode == "navigate" and destination == "document"


def _same_origin(headers: Mapping[str, str], host: str, scheme: str, policy: GuardPolicy) -> bool:
    if not _origin_ok(headers, host, scheme, policy):
        return False
    origin = headers.get("origin")
    site = headers.get("sec-fetch-site")
    if site is not None and site.strip().lower() not in _SITE_OK:
        return origin is not None  # same-site or cross-site, but an Origin we trust vouched for it
    return True


def _is_json(headers: Mapping[str, str]) -> bool:
    media = headers.get("content-type", "").split(";", 1)[0].strip().lower()
    return media == "application/json"


def _has_body(headers: Mapping[str, str]) -> bool:
    return "transfer-encoding" in headers or headers.get("content-length", "0").strip() not in ("", "0")


def check(
    method: str,
    headers: Mapping[str, str],
    peer: str,
    bound: tuple[str, int],
    policy: GuardPolicy,
    scrutiny: Scrutiny,
    scheme: str = "http",
    websocket: bool = False,
) -> Refusal | None:
    """None when the request may proceed, else why not. ``headers``: lower-case names, one value
    each (the first); ``bound``: the listening socket's address and port."""
    if not _peer_allowed(peer, policy):
        return Refusal(403, f"client {peer or '?'} is not allowed here (loopback only; see {policy.allow_hint})")
    host = headers.get("host")
    if not _host_allowed(host, bound, scheme, policy):
        shown = (host or "")[:80].encode("ascii", "backslashreplace").decode()
        return Refusal(403, f"Host {shown!r} is not served here (DNS rebinding?); to answer it add {policy.hint}")
    if scrutiny is Scrutiny.HOST:
        return None
    assert host is not None
    unsafe = websocket or method.upper() not in SAFE_METHODS
    lenient = scrutiny is Scrutiny.UNSAFE and not unsafe
    if not (_navigation_or_same_site if lenient else _same_origin)(headers, host, scheme, policy):
        return Refusal(403, "cross-origin request refused (another site's page cannot use this server)")
    # A body-less DELETE has no type to check; every other state-changing call is JSON or nothing.
    needs_json = unsafe and not websocket and (method.upper() != "DELETE" or _has_body(headers))
    if scrutiny is Scrutiny.SAME_ORIGIN_JSON and needs_json and not _is_json(headers):
        return Refusal(415, "send this call as Content-Type: application/json")
    return None


# h11 bounds headers that arrive in pieces, not a block read at once: the bound, for every server.
MAX_HEADER_BYTES = 32 * 1024
# Headers a request may carry once only: two Hosts or two Origins are a smuggling attempt.
_SINGLE = frozenset({"host", "origin", "sec-fetch-site", "content-type"})


@dataclass(frozen=True)
class Request:
    """What the guard looks at, as any HTTP server has it: ``target`` as sent (``/path?query``),
    ``headers`` raw and in order, ``bound`` the listening socket's address and port."""

    method: str
    target: bytes
    http_version: str
    headers: Sequence[tuple[bytes, bytes]]
    peer: str
    bound: tuple[str, int]
    scheme: str = "http"
    websocket: bool = False


def screen(request: Request, policy: GuardPolicy, scrutiny: Scrutiny) -> Refusal | None:
    """Every check, in order: the request's form (framing, target, size, repeated headers), then
    :func:`check`. None when the request may proceed."""
    try:
        origin_form(request.target)
        body_framing(request.headers, request.http_version, request.websocket)
    except FramingError as exc:
        return Refusal(400, str(exc))
    if sum(len(key) + len(value) + 4 for key, value in request.headers) > MAX_HEADER_BYTES:
        return Refusal(431, "the request's headers are too large")
    headers: dict[str, str] = {}
    for key, value in request.headers:
        name = key.decode("latin-1").lower()
        if name in headers:
            if name in _SINGLE:
                return Refusal(400, "a header that must appear once (Host, Origin, Content-Type) appears twice")
            continue
        headers[name] = value.decode("latin-1")
    return check(
        request.method, headers, request.peer, request.bound, policy, scrutiny, request.scheme, request.websocket
    )
