"""``gcptoken metadata-server`` and ``gcptoken proxy``: local servers on a real credential."""

from __future__ import annotations

import argparse
import copy

from gcptoken.cli.local_servers import GuardFlags, configure_log, say, serve, warn_if_exposed
from gcptoken.cli.run_flags import token_header
from gcptoken.cli.tokens import checked_audience, credentials_for
from gcptoken.credentials import Credentials, ImpersonatedCredentials, MetadataCredentials, UserCredentials
from gcptoken.credentials.base import run_flow_sync
from gcptoken.credentials.service_account import ServiceAccountCredentials
from gcptoken.errors import GcpTokenError, InvalidArgumentError
from gcptoken.extras import require

__all__ = ["run_metadata_server", "run_proxy"]


def _attributes(values: list[str] | None) -> dict[str, str]:
    import re

    found: dict[str, str] = {}
    for value in values or []:
        key, equals, text = value.partition("=")
        if not equals or not re.fullmatch(r"[A-Za-z0-9_-]{1,128}", key):
            raise InvalidArgumentError(f"--attribute {value[:60]!r}: use KEY=VALUE (key: letters, digits, - and _)")
        found[key] = text
    return found


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
    require("emulator", "gcptoken metadata-server")  # starlette and uvicorn; the line names this command
    from gcptoken.local.metadata_server import CredentialsInstance, InstanceValues, metadata_app

    flags = GuardFlags(args)
    warn_if_exposed(args.host, args.port, "the metadata server", flags)
    _check_flags(args)
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
        say(f"warning: the number of project {project} could not be read; pass --project-number (0 served)")
    values = InstanceValues(
        email=email,
        project_id=project,
        project_number=number or "0",
        zone=args.zone,
        scopes=tuple(s for s in args.scopes.replace(",", " ").split() if s),
        attributes=_attributes(args.attribute),
        universe_domain=standard.universe_domain,
        platform=args.platform,
    )
    if args.instance_name:
        values.instance_name = args.instance_name
    configure_log("gcptoken.metadata_server", args.verbose)
    app = metadata_app(CredentialsInstance(standard, full, values), flags.allow, flags.hosts)

    def announce(host_port: str) -> None:
        print(host_port, flush=True)
        as_platform = f", answering as {args.platform}" if args.platform != "gce" else ""
        say(f"metadata server for {email} (project {project}{as_platform}) on http://{host_port}; Ctrl-C stops it")
        say(f"export GCE_METADATA_HOST={host_port} GCE_METADATA_IP={host_port} GCE_METADATA_ROOT={host_port}")

    return serve(app, args.host, args.port, announce)


def run_proxy(args: argparse.Namespace) -> int:
    require("emulator", "gcptoken proxy")  # starlette, uvicorn, websockets and h2
    from gcptoken.local.proxy import Proxy, upstream_audience
    from gcptoken.local.proxy_h2 import proxy_server

    flags = GuardFlags(args)
    warn_if_exposed(args.host, args.port, "the proxy", flags)
    audience = upstream_audience(args.url, args.audience)  # a usage error before any credential is read
    checked_audience(audience, "--audience")  # one stderr note for a URL audience with a path or query
    credentials = credentials_for(args)
    credentials.id_token(audience, timeout=args.timeout)  # refused now, in one line, not per request
    configure_log("gcptoken.proxy", args.verbose)
    proxy = Proxy(args.url, credentials, audience, args.timeout, header=token_header(args), http2=args.http2)
    # HTTP/1.1 and HTTP/2 (gRPC) clients on the one port
    app, protocol = proxy_server(proxy, flags.allow, flags.hosts, flags.origins)

    def announce(host_port: str) -> None:
        print(f"http://{host_port}", flush=True)
        say(f"proxy to {args.url} (ID tokens for {audience}) on http://{host_port}; Ctrl-C stops it")

    # the service's Date passes through
    return serve(app, args.host, args.port, announce, date_header=False, protocol=protocol)
