"""A loopback HTTPS stand-in for a Kubernetes API server, enough for ``kubectl get namespaces``:
the discovery documents kubectl reads first (``/api``, ``/apis``, ``/api/v1``) and the
NamespaceList, each only for a bearer token it verified: an access token through the emulator's
tokeninfo (as GKE asks Google), an ID token with gcptoken's Verifier against the emulator's keys
(as an API server configured with Google as OIDC issuer). Anything else: 401, as Kubernetes
answers. Its certificate comes from a throwaway CA made here (kubectl sends tokens only over TLS)."""

from __future__ import annotations

import base64
import datetime
import ipaddress
import json
import ssl
import tempfile
import threading
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from gcptoken.verify import Verifier

__all__ = ["KubeApiServer", "throwaway_ca"]

NAMESPACES = ("default", "kube-system", "team-a")


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def throwaway_ca() -> tuple[bytes, bytes, bytes]:
    """(CA certificate PEM, server certificate PEM for 127.0.0.1, server key PEM)."""
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name("kube stand-in CA"))
        .issuer_name(_name("kube stand-in CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    leaf = (
        x509.CertificateBuilder()
        .subject_name(_name("kube-apiserver"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=2))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return ca.public_bytes(serialization.Encoding.PEM), leaf.public_bytes(serialization.Encoding.PEM), key_pem


def _documents() -> dict[str, dict[str, Any]]:
    namespaces = {
        "name": "namespaces",
        "singularName": "namespace",
        "namespaced": False,
        "kind": "Namespace",
        "verbs": ["get", "list"],
        "shortNames": ["ns"],
    }
    items = [{"metadata": {"name": name}, "status": {"phase": "Active"}} for name in NAMESPACES]
    return {
        "/api": {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []},
        "/apis": {"kind": "APIGroupList", "apiVersion": "v1", "groups": []},
        "/api/v1": {"kind": "APIResourceList", "groupVersion": "v1", "resources": [namespaces]},
        "/api/v1/namespaces": {"kind": "NamespaceList", "apiVersion": "v1", "metadata": {}, "items": items},
    }


class KubeApiServer:
    """``with KubeApiServer(emulator_url, audience) as api:`` then point a kubeconfig at
    ``api.url`` with ``api.ca_pem``. ``api.seen`` lists who each accepted request came as (email);
    ``api.rejected`` counts 401s; tokens added to ``api.refused`` get 401 though valid (a cluster
    that stopped trusting them)."""

    def __init__(self, emulator_url: str, audience: str = "https://kube.example") -> None:
        self.emulator_url = emulator_url
        self.verifier = Verifier(audience, certs=f"{emulator_url}/oauth2/v3/certs")
        self.ca_pem, cert_pem, key_pem = throwaway_ca()
        self.seen: list[str] = []
        self.rejected = 0
        self.refused: set[str] = set()
        self._documents = _documents()
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        with tempfile.TemporaryDirectory() as folder:  # load_cert_chain reads files only
            chain, key = Path(folder) / "cert.pem", Path(folder) / "key.pem"
            chain.write_bytes(cert_pem)
            key.write_bytes(key_pem)
            context.load_cert_chain(chain, key)
        self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self.url = f"https://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def ca_data(self) -> str:
        """``certificate-authority-data`` for a kubeconfig."""
        return base64.b64encode(self.ca_pem).decode()

    def __enter__(self) -> KubeApiServer:
        self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self._server.shutdown()
        self._server.server_close()

    def who(self, token: str) -> str | None:
        """The email the token was issued to, or None when it is not valid here."""
        if token in self.refused:
            return None
        if token.startswith("eyJ"):
            try:
                return str(self.verifier.verify(token).get("email"))
            except Exception:
                return None
        query = urllib.parse.urlencode({"access_token": token})
        try:  # Google's tokeninfo (here the emulator's): 200 with the token's email, 400 otherwise
            with urllib.request.urlopen(f"{self.emulator_url}/oauth2/v3/tokeninfo?{query}", timeout=10) as answer:
                info = json.load(answer)
        except OSError:
            return None
        return str(info.get("email"))

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass  # quiet: a test's output shows only what it asserts

            def do_GET(self) -> None:
                scheme, _, token = self.headers.get("Authorization", "").partition(" ")
                email = api.who(token) if scheme == "Bearer" and token else None
                path = urllib.parse.urlsplit(self.path).path.rstrip("/")
                with api._lock:
                    if email is None:
                        api.rejected += 1
                    else:
                        api.seen.append(email)
                if email is None:
                    status = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 401}
                    self._send(401, {**status, "message": "Unauthorized", "reason": "Unauthorized"})
                elif path in api._documents:
                    self._send(200, api._documents[path])
                else:
                    self._send(404, {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 404})

            def _send(self, code: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        return Handler
