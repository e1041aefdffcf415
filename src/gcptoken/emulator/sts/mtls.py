"""Mutual TLS in the emulator, for X.509 workload identity federation: a CA (root, intermediate)
that issues the mTLS port's server certificate and workload certificates, the port itself (uvicorn
over TLS that requires a client certificate and tells the app which one was shown), and what STS
checks of a certificate subject token: the chain against the provider's trust store, and that the
TLS client certificate is the token's leaf (proof that the caller holds its key)."""

from __future__ import annotations

import asyncio
import base64
import binascii
import datetime
import ipaddress
import json
import ssl
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from starlette.types import Receive, Scope, Send

from gcptoken.emulator.state.models import Provider
from gcptoken.servers.serving import HeaderTimeoutProtocol

__all__ = [
    "CLIENT_CERT_SCOPE_KEY",
    "EMULATED_HOST_NAMES",
    "ClientCertProtocol",
    "Issued",
    "WorkloadCa",
    "verify_subject_token",
]

CLIENT_CERT_SCOPE_KEY = "gcptoken.client_certificate"
# Artifact Registry and Container Registry, as gcptoken.helpers.hosts.GOOGLE_HOSTS names them.
EMULATED_HOST_NAMES = ("*.pkg.dev", "gcr.io", "*.gcr.io")
MAX_CHAIN = 10


@dataclass(frozen=True)
class Issued:
    """A certificate (PEM, with the intermediate after it when it is a workload's) and its key."""

    cert_pem: str
    key_pem: str


def _pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode("ascii")


def _key_pem(key: ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode("ascii")


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "gcptoken emulator"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _builder(subject: x509.Name, issuer: x509.Name, public: Any, days: int) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.timezone.utc)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
    )


def _usage(*, signature: bool = False, cert_sign: bool = False) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=signature,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


class WorkloadCa:
    """A root CA and an intermediate below it; workloads and the server get leaves of the intermediate."""

    def __init__(self) -> None:
        self.root_key = ec.generate_private_key(ec.SECP256R1())
        root_name = _name("gcptoken emulator root CA")
        self.root = (
            _builder(root_name, root_name, self.root_key.public_key(), 3650)
            .add_extension(x509.BasicConstraints(ca=True, path_length=1), critical=True)
            .add_extension(_usage(cert_sign=True), critical=True)
            .sign(self.root_key, hashes.SHA256())
        )
        self.intermediate_key = ec.generate_private_key(ec.SECP256R1())
        self.intermediate = (
            _builder(_name("gcptoken emulator workload CA"), root_name, self.intermediate_key.public_key(), 3650)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(_usage(cert_sign=True), critical=True)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.root_key.public_key()), critical=False
            )
            .sign(self.root_key, hashes.SHA256())
        )

    @property
    def root_pem(self) -> str:
        return _pem(self.root)

    @property
    def intermediate_pem(self) -> str:
        return _pem(self.intermediate)

    def _leaf(self, common_name: str, names: list[x509.GeneralName], usage: x509.ObjectIdentifier) -> Issued:
        key = ec.generate_private_key(ec.SECP256R1())
        return Issued(self._leaf_pem(common_name, names, usage, key.public_key()), _key_pem(key))

    def _leaf_pem(
        self, common_name: str, names: list[x509.GeneralName], usage: x509.ObjectIdentifier, public: Any
    ) -> str:
        cert = (
            _builder(_name(common_name), self.intermediate.subject, public, 30)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_usage(signature=True), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.intermediate_key.public_key()), critical=False
            )
            .sign(self.intermediate_key, hashes.SHA256())
        )
        return _pem(cert) + self.intermediate_pem

    def server_certificate(self) -> Issued:
        """The HTTPS ports' certificate: loopback, and the Google hosts the emulator stands in for
        (``*.pkg.dev``, ``gcr.io``, ``*.gcr.io``), so tools that only talk to those names (Google's
        own keyring backend, docker's ``pkg.dev`` registries) can be pointed at it through a hosts
        file. Safe to add: the CA is made per emulator and its key never leaves the process (and it
        could sign any name anyway); only a client told to trust this root accepts it."""
        names: list[x509.GeneralName] = [
            x509.DNSName("localhost"),
            x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
            x509.IPAddress(ipaddress.ip_address("::1")),
            *(x509.DNSName(name) for name in EMULATED_HOST_NAMES),
        ]
        return self._leaf("localhost", names, ExtendedKeyUsageOID.SERVER_AUTH)

    def workload_certificate(self, common_name: str) -> Issued:
        spiffe = f"spiffe://emulated.example/workload/{common_name}"
        return self._leaf(common_name, [x509.UniformResourceIdentifier(spiffe)], ExtendedKeyUsageOID.CLIENT_AUTH)

    def workload_certificate_for(self, common_name: str, public_key_pem: bytes) -> str:
        """A workload certificate (PEM, then the intermediate's) for a key made elsewhere: in a TPM
        or a token, where the private half never leaves."""
        public = serialization.load_pem_public_key(public_key_pem)
        spiffe = f"spiffe://emulated.example/workload/{common_name}"
        names: list[x509.GeneralName] = [x509.UniformResourceIdentifier(spiffe)]
        return self._leaf_pem(common_name, names, ExtendedKeyUsageOID.CLIENT_AUTH, public)


def server_context(ca: WorkloadCa, cert_path: str, key_path: str) -> ssl.SSLContext:
    """TLS for the mTLS port: its certificate, and a client certificate required that chains to the
    emulator's CA (more anchors are added as X.509 providers are created, see ``trust``)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert_path, key_path)
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_verify_locations(cadata=ca.root_pem)
    return context


class ClientCertProtocol(HeaderTimeoutProtocol):
    """uvicorn's HTTP/1.1 protocol, telling the app the DER client certificate of the connection
    (uvicorn does not implement ASGI's TLS extension)."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        ssl_object = transport.get_extra_info("ssl_object")
        der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
        inner = self.app

        async def app(scope: Scope, receive: Receive, send: Send) -> None:
            scope[CLIENT_CERT_SCOPE_KEY] = der
            await inner(scope, receive, send)

        self.app = app


def _chain(token: str) -> list[x509.Certificate] | str:
    try:
        encoded = json.loads(token)
    except (ValueError, RecursionError):
        encoded = None
    if not isinstance(encoded, list) or not encoded or len(encoded) > MAX_CHAIN:
        return "The mTLS subject token must be a JSON array of base64 DER certificates, leaf first."
    try:
        return [x509.load_der_x509_certificate(base64.b64decode(c, validate=True)) for c in encoded]
    except (binascii.Error, TypeError, ValueError):
        return "The mTLS subject token holds a certificate that cannot be parsed."


def verify_subject_token(provider: Provider, token: str, scope: Scope, now: float) -> dict[str, str] | str:
    """The certificate's assertion fields (``subject.dn.cn``, ``subject.dn``, ``san.uri``,
    ``san.dns``), or why STS refuses it."""
    chain = _chain(token)
    if isinstance(chain, str):
        return chain
    leaf, intermediates = chain[0], chain[1:]
    presented = scope.get(CLIENT_CERT_SCOPE_KEY)
    if not presented:
        return "An mTLS subject token must be exchanged over mutual TLS (at sts.mtls.googleapis.com)."
    if presented != leaf.public_bytes(serialization.Encoding.DER):
        return "The certificate presented over mutual TLS is not the subject token's leaf certificate."
    from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

    anchors = [x509.load_pem_x509_certificate(pem.encode("ascii")) for pem in provider.trust_anchors]
    intermediates += [x509.load_pem_x509_certificate(pem.encode("ascii")) for pem in provider.intermediate_cas]
    moment = datetime.datetime.fromtimestamp(now, datetime.timezone.utc)
    try:
        PolicyBuilder().store(Store(anchors)).time(moment).build_client_verifier().verify(leaf, intermediates)
    except VerificationError as exc:
        return f"The certificate chain does not verify against the provider's trust store ({str(exc)[:120]})."
    fields: dict[str, str] = {"subject.dn": leaf.subject.rfc4514_string()}
    common_names = leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if common_names:
        fields["subject.dn.cn"] = str(common_names[0].value)
    try:
        san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        san = None
    if san is not None:
        for kind, name in ((x509.UniformResourceIdentifier, "san.uri"), (x509.DNSName, "san.dns")):
            values = san.get_values_for_type(kind)
            if values:
                fields[name] = str(values[0])
    return fields
