"""Delivering one request as a Google product would: the ID token from the emulator's admin API
(``POST /emulator/v1/serviceAgents/{product}:generateIdToken``, minted as that product's service
agent would, or refused as Google would refuse), then the request to the target over real HTTP.
The token goes in the Authorization header and nowhere else: not in errors, not in logs."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gcptoken import checks
from gcptoken.endpoints import EMULATOR_HOST_ENV, checked_host, safe_url
from gcptoken.errors import InvalidArgumentError, TransportError
from gcptoken.senders.products import Options, acknowledges, label, outgoing_request
from gcptoken.senders.refused import SenderRefusedError
from gcptoken.senders.request import OutgoingRequest, checked_target, header
from gcptoken.untrusted import UnreadableJson, json_object, one_line

__all__ = ["Delivery", "Sender", "emulator_url", "send_as"]


@dataclass(frozen=True)
class Delivery:
    """What the target answered to ``request`` (sent with an ID token for ``service_account``)."""

    request: OutgoingRequest
    service_account: str
    status: int
    reason: str
    headers: dict[str, str]
    body: bytes

    @property
    def acknowledged(self) -> bool:
        """The product counts the attempt a success: 2xx for Cloud Tasks and Cloud Scheduler (the
        task is done), Pub/Sub push's ack codes for Eventarc, below 400 for Workflows (no HttpError)."""
        return acknowledges(self.request.product, self.status)


def emulator_url(emulator: str | None = None) -> str:
    """The emulator's base URL: ``emulator`` (http://HOST:PORT or HOST:PORT), else GCPTOKEN_EMULATOR_HOST."""
    value = emulator if emulator is not None else os.environ.get(EMULATOR_HOST_ENV, "").strip()
    if not value:
        raise InvalidArgumentError(
            f"no emulator to mint the token: start 'gcptoken emulator' and set {EMULATOR_HOST_ENV}=HOST:PORT "
            "(or pass --emulator HOST:PORT)"
        )
    if value.startswith(("http://", "https://")):
        return checks.http_url(value, "the emulator URL", user_info=False).rstrip("/")
    return f"http://{checked_host(value, EMULATOR_HOST_ENV if emulator is None else 'the emulator')}"


def _admin(method: str, url: str, timeout: float, body: dict[str, str] | None = None) -> Any:
    import httpx

    try:
        with httpx.Client(timeout=timeout, trust_env=False) as client:
            return client.request(method, url, json=body)
    except httpx.HTTPError as exc:
        from gcptoken.http.failures import network_failure

        raise TransportError(f"the emulator: {network_failure(exc, url)}") from None


def _answer(response: Any, what: str) -> dict[str, Any]:
    try:
        answer = json_object(response.content)
    except UnreadableJson as exc:
        raise TransportError(f"the emulator's answer to {what} {exc} (HTTP {response.status_code})") from None
    return answer


def _message(answer: dict[str, Any]) -> str:
    error = answer.get("error")
    message = error.get("message") if isinstance(error, dict) else None
    return one_line(message) if isinstance(message, str) else "no reason given"


def mint(emulator: str, product: str, service_account: str, audience: str, timeout: float = 10.0) -> str:
    """The ID token ``product`` sends for ``service_account``; SenderRefusedError when its service
    agent may not mint one (the account is unknown, or the agent lacks the binding it needs)."""
    name = label(product)
    url = f"{emulator}/emulator/v1/serviceAgents/{product}:generateIdToken"
    response = _admin("POST", url, timeout, {"serviceAccount": service_account, "audience": audience})
    answer = _answer(response, "generateIdToken")
    if response.status_code in (403, 404):
        message = _message(answer)
        reason = message.split(": ", 1)[1] if message.startswith(f"{name} cannot mint") else message
        raise SenderRefusedError(name, service_account, reason, response.status_code)
    token = answer.get("token")
    if response.status_code != 200 or not isinstance(token, str):
        raise TransportError(f"the emulator refused to mint: HTTP {response.status_code}: {_message(answer)}")
    return token


def project_id(emulator: str, timeout: float = 10.0) -> str:
    """The emulated project's ID (``/emulator/v1/info``)."""
    answer = _answer(_admin("GET", f"{emulator}/emulator/v1/info", timeout), "/emulator/v1/info")
    project = answer.get("projectId")
    if not isinstance(project, str) or not project:
        raise TransportError("the emulator's /emulator/v1/info names no projectId")
    return project


def deliver(request: OutgoingRequest, service_account: str, emulator: str, timeout: float = 30.0) -> Delivery:
    """Mints the token, then sends ``request`` with it; redirects are answered, not followed."""
    token = mint(emulator, request.product, service_account, request.audience, timeout)
    import httpx

    from gcptoken.http.failures import network_failure
    from gcptoken.http.tls import server_context

    headers = {**request.headers, "Authorization": f"Bearer {token}"}
    verify = server_context() or True  # the CAs every transport trusts (SSL_CERT_FILE, SSL_CERT_DIR)
    try:
        with httpx.Client(timeout=timeout, trust_env=False, verify=verify, follow_redirects=False) as client:
            sent = client.build_request(request.method, request.url, headers=headers, content=request.body)
            for name in ("Accept", "Accept-Encoding"):  # httpx's defaults: only what the product sends
                if header(request.headers, name) is None:
                    sent.headers.pop(name, None)
            response = client.send(sent)
    except httpx.HTTPError as exc:
        where = f"{request.method} {safe_url(request.url)}"
        failure = network_failure(exc, request.url)
        raise TransportError(f"{label(request.product)} could not deliver {where}: {failure}") from None
    return Delivery(
        request, service_account, response.status_code, response.reason_phrase, dict(response.headers), response.content
    )


def send_as(
    product: str,
    url: str,
    service_account: str,
    data: bytes | str = b"",
    options: Options | None = None,
    *,
    method: str | None = None,
    headers: Mapping[str, str] | None = None,
    audience: str | None = None,
    emulator: str | None = None,
    allow_remote: bool = False,
    timeout: float = 30.0,
) -> Delivery:
    """Delivers one request to ``url`` as ``product`` (tasks, scheduler, eventarc, workflows) would,
    with an ID token for ``service_account`` from the emulator (``emulator``, else
    GCPTOKEN_EMULATOR_HOST). InvalidArgumentError for bad input (a target off this machine without
    ``allow_remote``), SenderRefusedError when Google would deliver nothing, TransportError when
    the emulator or the target cannot be reached. An answer the product counts as a failure is a
    Delivery too (``acknowledged`` False)."""
    label(product)
    target = checked_target(url, allow_remote=allow_remote)
    if not isinstance(service_account, str) or "@" not in service_account:
        raise InvalidArgumentError(f"the service account must be an email, not {str(service_account)[:80]!r}")
    if audience is not None:
        checks.audience(audience, "the audience")
    body = data.encode("utf-8") if isinstance(data, str) else bytes(data)
    base = emulator_url(emulator)
    # Built once before the emulator is asked anything: bad input is refused without a network call.
    request = outgoing_request(product, target, body, options, method=method, headers=headers, audience=audience)
    if product == "eventarc":  # a Pub/Sub event names the emulated project's topic and subscription
        project = project_id(base, timeout)
        request = outgoing_request(
            product, target, body, options, method=method, headers=headers, audience=audience, project=project
        )
    return deliver(request, service_account, base, timeout)


class Sender:
    """``send_as`` bound to one emulator, for tests: ``sender.send("tasks", url, sa, b"...")``."""

    def __init__(self, emulator: str | None = None, *, allow_remote: bool = False, timeout: float = 30.0) -> None:
        self.emulator = emulator_url(emulator)
        self.allow_remote, self.timeout = allow_remote, timeout

    def send(
        self,
        product: str,
        url: str,
        service_account: str,
        data: bytes | str = b"",
        options: Options | None = None,
        **request: Any,
    ) -> Delivery:
        """``request``: method, headers, audience (as ``send_as``)."""
        return send_as(
            product,
            url,
            service_account,
            data,
            options,
            emulator=self.emulator,
            allow_remote=self.allow_remote,
            timeout=self.timeout,
            **request,
        )
