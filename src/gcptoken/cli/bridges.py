"""``gcptoken metadata-server`` and ``gcptoken proxy``: local servers on a real credential."""

from __future__ import annotations

import argparse
import contextlib
import copy
import ipaddress
import logging
import sys
from collections.abc import Callable

from gcptoken.extras import require

require("emulator", "gcptoken metadata-server and gcptoken proxy")  # starlette and uvicorn

from gcptoken.cli.tokens import credentials_for  # noqa: E402
from gcptoken.credentials import Credentials, ImpersonatedCredentials, MetadataCredentials, UserCredentials  # noqa: E402
from gcptoken.credentials.base import run_flow_sync  # noqa: E402
from gcptoken.credentials.service_account import ServiceAccountCredentials  # noqa: E402
from gcptoken.errors import GcpTokenError, InvalidArgumentError  # noqa: E402

__all__ = ["run_metadata_server", "run_proxy", "serve"]

LOOPBACK = ("127.0.0.1", "::1", "localhost")


def _say(text: str) -> None:
    print(f"gcptoken: {text}", file=sys.stderr, flush=True)


def _networks(values: list[str] | None) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    networks = []
    for value in values or []:
        try:
            networks.append(ipaddress.ip_network(value, strict=False))
        except ValueError:
            raise InvalidArgumentError(f"--allow {value[:60]!r} is not an address or CIDR block") from None
    return networks


def _attributes(values: list[str] | None) -> dict[str, str]:
    import re

    found: dict[str, str] = {}
    for value in values or []:
        key, equals, text = value.partition("=")
        if not equals or not re.fullmatch(r"[A-Za-z0-9_-]{1,128}", key):
            raise InvalidArgumentError(f"--attribute {value[:60]!r}: use KEY=VALUE (key: letters, digits, - and _)")
        found[key] = text
    return found


def _check_bind(host: str, port: int, what: str) -> None:
    if not 0 <= port <= 65535:
        raise InvalidArgumentError(f"--port must be 0-65535, not {port}")
    if host not in LOOPBACK:
        _say(
            f"warning: {what} listens on {host}: anyone who can reach {host}:{port or 'its port'} can get your "
            "tokens. Keep it on loopback, or a docker bridge address with --allow"
        )


def serve(app: object, host: str, port: int, announce: Callable[[str], None], date_header: bool = True) -> int:
    """Serve ``app`` in the foreground until Ctrl-C or SIGTERM (a graceful shutdown)."""
    from gcptoken.servers.serving import AsgiServer, bind

    try:
        sock = bind(host, port)
    except OSError as exc:
        _say(f"error: cannot listen on {host}:{port}: {exc.strerror}")
        return 3
    server = AsgiServer(app, sock, date_header=date_header)  # type: ignore[arg-type]
    announce(server.host_port)
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()
    _say("stopped")
    return 0


def _email_of(credentials: Credentials, timeout: float) -> str | None:
    if isinstance(credentials, ImpersonatedCredentials):
        return credentials.target
    if isinstance(credentials, ServiceAccountCredentials):
        return credentials.key.client_email
    if isinstance(credentials, MetadataCredentials):
        return credentials.email(timeout=timeout)
    if isinstance(credentials, UserCredentials):
        if credentials.key.account:
            return credentials.key.account
        email = credentials.id_token(credentials.key.client_id, timeout=timeout).claims.get("email")
        return email if isinstance(email, str) else None
    return None


def _project_of(credentials: Credentials) -> str | None:
    source = credentials.source if isinstance(credentials, ImpersonatedCredentials) else credentials
    if isinstance(source, ServiceAccountCredentials) and source.key.project_id:
        return source.key.project_id
    return credentials.quota_project_id or source.quota_project_id


def _project_number(credentials: Credentials, project: str, timeout: float) -> str | None:
    """Resource Manager's number for ``project`` (the credential must be allowed to read it)."""
    from gcptoken import endpoints
    from gcptoken.http.flows import Flow, HttpRequest, json_body

    def flow() -> Flow[str | None]:
        token = credentials.access_token(timeout=timeout).value
        url = endpoints.resolve(f"https://cloudresourcemanager.googleapis.com/v1/projects/{project}")
        response = yield HttpRequest("GET", url, {"Authorization": f"Bearer {token}"}, describe={"project": project})
        if response.status != 200:
            return None
        number = json_body(response, "Resource Manager").get("projectNumber")
        return str(number) if number else None

    try:
        result: str | None = run_flow_sync(flow(), timeout)
    except GcpTokenError:
        return None
    return result


_FLAG_VALUES = {
    "project": (r"[a-z][a-z0-9.:-]{0,99}", "a project id"),
    "project_number": (r"\d{1,20}", "digits"),
    "zone": (r"[a-z]+-[a-z]+\d+-[a-z]", "a zone such as us-central1-a"),
    "instance_name": (r"[a-z]([a-z0-9-]{0,61}[a-z0-9])?", "an instance name (lowercase letters, digits, -)"),
    "email": (r"[^@\s/]{1,64}@[^@\s/]{1,190}", "an email address"),
}


def _check_flags(args: argparse.Namespace) -> None:
    import re

    for name, (pattern, wanted) in _FLAG_VALUES.items():
        value = getattr(args, name, None)
        if value is not None and not re.fullmatch(pattern, value):
            raise InvalidArgumentError(f"--{name.replace('_', '-')} must be {wanted}, not {value[:60]!r}")


def run_metadata_server(args: argparse.Namespace) -> int:
    from gcptoken.local.metadata_server import CredentialsInstance, InstanceValues, metadata_app

    _check_bind(args.host, args.port, "the metadata server")
    _check_flags(args)
    allow = _networks(args.allow)
    standard_args = copy.copy(args)
    standard_args.include_email = False
    standard = credentials_for(standard_args)
    full = standard
    if isinstance(standard, ImpersonatedCredentials):
        full_args = copy.copy(args)
        full_args.include_email = True
        full = credentials_for(full_args)
    email = args.email or _email_of(standard, args.timeout)
    if not email:
        raise InvalidArgumentError(
            f"{standard.description} has no service-account email to serve; pass --email, or "
            "--impersonate-service-account SA"
        )
    project = args.project or _project_of(standard)
    if not project:
        raise InvalidArgumentError("no project id: pass --project PROJECT_ID")
    number = args.project_number or _project_number(standard, project, args.timeout)
    if number is None:
        _say(f"warning: the number of project {project} could not be read; pass --project-number (0 served)")
    values = InstanceValues(
        email=email,
        project_id=project,
        project_number=number or "0",
        zone=args.zone,
        scopes=tuple(s for s in args.scopes.replace(",", " ").split() if s),
        attributes=_attributes(args.attribute),
        universe_domain=standard.universe_domain,
    )
    if args.instance_name:
        values.instance_name = args.instance_name
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("gcptoken: %(message)s"))
    logger = logging.getLogger("gcptoken.metadata_server")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO if args.verbose else logging.WARNING)
    logger.propagate = False
    app = metadata_app(CredentialsInstance(standard, full, values), allow)

    def announce(host_port: str) -> None:
        print(host_port, flush=True)
        _say(f"metadata server for {email} (project {project}) on http://{host_port}; Ctrl-C stops it")
        _say(f"export GCE_METADATA_HOST={host_port} GCE_METADATA_IP={host_port} GCE_METADATA_ROOT={host_port}")

    return serve(app, args.host, args.port, announce)


def run_proxy(args: argparse.Namespace) -> int:
    from gcptoken.local.proxy import proxy_app, upstream_audience

    _check_bind(args.host, args.port, "the proxy")
    audience = upstream_audience(args.url, args.audience)  # a usage error before any credential is read
    credentials = credentials_for(args)
    credentials.id_token(audience, timeout=args.timeout)  # refused now, in one line, not per request
    app = proxy_app(args.url, credentials, audience, args.timeout)

    def announce(host_port: str) -> None:
        print(f"http://{host_port}", flush=True)
        _say(f"proxy to {args.url} (ID tokens for {audience}) on http://{host_port}; Ctrl-C stops it")

    return serve(app, args.host, args.port, announce, date_header=False)  # the service's Date passes through
