"""Mutual TLS with a TPM workload key, done in a child process.

OpenSSL's tpm2 provider can only sign with a TPM key when it is preferred for every algorithm
(``tpm_tls.DEFAULT_PROPERTIES``: OpenSSL 3.0 would otherwise export the key to the default provider
and fail), and that preference is process-wide: every later TLS connection of the process would
verify server signatures in the TPM (a few object slots, slow) and lose P-256 for TLS 1.2. So the
caller's process never loads the provider: each exchange that presents a TPM key runs in a child
(``python -c``, the current directory off its import path, run in ``/``), request and response as
JSON over its stdin and stdout (the bearer token and body never on a command line), errors back as
their type and line. It gets the environment as it is: a TPM key's PIN included (tls.py hands it to
the provider).
A token exchange is a request or two an hour: a process each is cheap at that rate."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from typing import Any

from gcptoken.endpoints import safe_url
from gcptoken.errors import CredentialsError, GcpTokenError, HardwareKeyError, InvalidArgumentError, TransportError
from gcptoken.http.flows import HttpRequest, HttpResponse
from gcptoken.http.tls import ClientCertificate

__all__ = ["TSS2_LABEL", "exchange", "exchange_async", "isolates", "main"]

TSS2_LABEL = b"-----BEGIN TSS2 PRIVATE KEY-----"
# The child starts with the current directory off its import path ("-c" puts it first, "-m" too):
# a base64.py or gcptoken/ planted where the user happens to stand must never run with the token.
_CHILD_CODE = "import sys; del sys.path[0]; from gcptoken.keys.tpm_tls_child import main; sys.exit(main())"
_START_ALLOWANCE = 20.0  # seconds for the child's own start (Python, httpx, the provider) on a loaded machine
_ERRORS: dict[str, type[GcpTokenError]] = {
    cls.__name__: cls for cls in (CredentialsError, HardwareKeyError, InvalidArgumentError, TransportError)
}
_in_child = False  # set by main(): the child does the exchange itself


def isolates(certificate: ClientCertificate) -> bool:
    """Whether ``certificate``'s key is a TPM key file, to be used from a child process. An
    unreadable file is not: the ordinary path reports it."""
    if _in_child:
        return False
    from gcptoken.http.tls import key_file_head

    head = key_file_head(certificate.key_path)
    return head is not None and head.startswith(TSS2_LABEL)


def exchange(request: HttpRequest, limit: float) -> HttpResponse:
    """``request`` sent by a child process presenting the TPM key, within ``limit`` seconds (and
    the child's start)."""
    assert request.client_certificate is not None
    certificate = request.client_certificate
    payload = {
        "method": request.method,
        "url": request.url,
        "headers": list(request.headers.items()),
        "body": base64.b64encode(request.body or b"").decode("ascii"),
        "max_body": request.max_body,
        "limit": limit,
        "cert_path": os.path.abspath(certificate.cert_path),  # the child runs in /
        "key_path": os.path.abspath(certificate.key_path),
    }
    where = f"{request.method} {safe_url(request.url)}"
    try:
        done = subprocess.run(
            [sys.executable, "-c", _CHILD_CODE],
            input=json.dumps(payload).encode("utf-8"),
            capture_output=True,
            timeout=limit + _START_ALLOWANCE,
            check=False,
            cwd="/",  # nothing of the caller's directory is the child's business
        )
    except subprocess.TimeoutExpired:
        raise TransportError(f"{where}: no answer within {limit:g} s (mutual TLS with the TPM key)") from None
    except OSError as exc:
        raise TransportError(f"{where}: the TPM's TLS helper process cannot start ({exc.strerror})") from None
    return _answer(done.stdout, done.returncode, where)


async def exchange_async(request: HttpRequest, limit: float) -> HttpResponse:
    import asyncio

    return await asyncio.to_thread(exchange, request, limit)


def _answer(stdout: bytes, code: int, where: str) -> HttpResponse:
    try:
        answer = json.loads(stdout)
        if "error" in answer:
            kind, message = answer["error"]["kind"], str(answer["error"]["message"])
            raise _ERRORS.get(kind, TransportError)(message)
        headers = {str(name): str(value) for name, value in answer["headers"]}
        return HttpResponse(int(answer["status"]), headers, base64.b64decode(answer["body"]))
    except (ValueError, KeyError, TypeError):
        # Its stderr is not shown: whatever a crash printed is no message of ours.
        raise TransportError(f"{where}: the TPM's TLS helper process failed (exit {code})") from None


def _child(payload: dict[str, Any]) -> dict[str, Any]:
    from gcptoken.http.transport import HttpxTransport

    request = HttpRequest(
        payload["method"],
        payload["url"],
        dict(payload["headers"]),
        base64.b64decode(payload["body"]) or None,
        max_body=int(payload["max_body"]),
        timeout=float(payload["limit"]),
        client_certificate=ClientCertificate(payload["cert_path"], payload["key_path"]),
    )
    with HttpxTransport(timeout=float(payload["limit"])) as transport:
        response = transport.send(request)
    return {
        "status": response.status,
        "headers": list(response.headers.items()),
        "body": base64.b64encode(response.body).decode("ascii"),
    }


def main() -> int:
    """The child: one request from stdin, its response (or error) to stdout."""
    global _in_child
    _in_child = True
    try:
        answer = _child(json.loads(sys.stdin.buffer.read()))
    except GcpTokenError as exc:
        answer = {"error": {"kind": type(exc).__name__, "message": str(exc)}}
    sys.stdout.write(json.dumps(answer))
    return 0
