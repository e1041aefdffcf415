"""Workload identity federation (``external_account``): a subject token from outside Google,
exchanged at STS for a federated access token.

Subject tokens come from a file (text, or JSON with ``subject_token_field_name``), a URL (with
headers and the same formats), an executable (executable_source), AWS (aws) or an X.509
certificate (x509_source). Workforce pools (people) use the same exchange with a user project."""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import gcptoken.credentials.fields as fields
from gcptoken import endpoints
from gcptoken.cache.rules import external_identity, secret_digest, subject_token_proof
from gcptoken.credentials import aws, executable_source, universes, x509_source
from gcptoken.credentials.base import Credentials
from gcptoken.credentials.oauth2 import access_token_from, basic_auth, post_form
from gcptoken.credentials.subject_token import subject_token_in
from gcptoken.endpoints import safe_url
from gcptoken.errors import CredentialsError, RefusedError, TokenRequestError
from gcptoken.http.flows import Flow, HttpRequest
from gcptoken.http.tls import ClientCertificate
from gcptoken.private_files import UnreadableFile, read_credential_file, read_small_file
from gcptoken.tokens import Token
from gcptoken.untrusted import UnreadableJson, json_object

__all__ = [
    "STS_URL",
    "ExternalAccountConfig",
    "FederatedCredentials",
    "access_token_flow",
    "subject_token_flow",
    "subject_token_from_file",
]

STS_URL = "https://sts.googleapis.com/v1/token"
TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"
SUBJECT_TYPES = {
    "urn:ietf:params:oauth:token-type:jwt": "id_token",
    "urn:ietf:params:oauth:token-type:id_token": "id_token",
    "urn:ietf:params:oauth:token-type:saml2": "saml_response",
}
WORKFORCE_AUDIENCE = re.compile(r"//iam\.googleapis\.com/locations/[^/]+/workforcePools/[^/]+/providers/[^/]+")


@dataclass(frozen=True)
class ExternalAccountConfig:
    audience: str
    subject_token_type: str
    token_url: str
    credential_source: Mapping[str, Any] = field(repr=False)
    impersonation_url: str | None = None
    token_lifetime: int = 3600
    where: str = "external_account"
    # Workforce pools: the project billed for the person's calls, sent as STS options.userProject.
    workforce_pool_user_project: str | None = None
    # STS client authentication (HTTP Basic), as some workforce configurations carry.
    client_id: str | None = None
    client_secret: str | None = field(default=None, repr=False)
    quota_project_id: str | None = None
    universe_domain: str = "googleapis.com"

    @property
    def is_workforce(self) -> bool:
        return WORKFORCE_AUDIENCE.fullmatch(self.audience) is not None

    @property
    def kind(self) -> str:
        """``aws``, ``x509``, ``file``, ``url`` or ``executable``: where the subject token comes from."""
        source = self.credential_source
        if aws.is_aws(source):
            return "aws"
        if "certificate" in source:
            return "x509"
        return next(kind for kind in ("file", "url", "executable") if kind in source)

    @classmethod
    def from_info(cls, info: Mapping[str, Any], where: str) -> ExternalAccountConfig:
        def text(name: str) -> str:
            return fields.text(info, name, f"{where}: external_account") or ""

        source = info.get("credential_source")
        if not isinstance(source, Mapping):
            raise CredentialsError(f"{where}: external_account has no 'credential_source' object")
        subject_type = text("subject_token_type")
        if aws.is_aws(source):
            aws.check_source(source, f"{where}: credential_source")
            expected: tuple[str, ...] = (aws.AWS_SUBJECT_TOKEN_TYPE,)
        elif "certificate" in source:
            x509_source.check_source(source, f"{where}: credential_source")
            expected = (x509_source.MTLS_SUBJECT_TOKEN_TYPE,)
        else:
            if not any(kind in source for kind in ("file", "url", "executable")):
                raise CredentialsError(
                    f"{where}: credential_source needs 'file', 'url', 'executable', 'certificate' "
                    "or an AWS environment_id"
                )
            _check_source(source, f"{where}: credential_source")
            expected = tuple(SUBJECT_TYPES)
        if subject_type not in expected:
            raise CredentialsError(f"{where}: unsupported subject_token_type {fields.identifier(subject_type)}")
        impersonation = info.get("service_account_impersonation_url")
        options = info.get("service_account_impersonation") or {}
        if not isinstance(options, Mapping):
            raise CredentialsError(f"{where}: 'service_account_impersonation' is not an object")
        lifetime = options.get("token_lifetime_seconds", 3600)
        if type(lifetime) is not int or not 600 <= lifetime <= 43200:
            raise CredentialsError(f"{where}: token_lifetime_seconds must be 600 to 43200")
        universe = fields.text(info, "universe_domain", f"{where}: external_account", required=False)
        universe = universes.checked(universe or universes.DEFAULT, f"{where}: universe_domain")
        default_sts = "https://sts.mtls.googleapis.com/v1/token" if "certificate" in source else STS_URL
        config = cls(
            audience=text("audience"),
            subject_token_type=subject_type,
            token_url=fields.url(info, "token_url", f"{where}: external_account")
            or universes.in_universe(default_sts, universe),
            credential_source=source,
            impersonation_url=impersonation if isinstance(impersonation, str) and impersonation else None,
            token_lifetime=lifetime,
            where=where,
            workforce_pool_user_project=fields.text(
                info, "workforce_pool_user_project", f"{where}: external_account", required=False
            ),
            client_id=fields.text(info, "client_id", f"{where}: external_account", required=False),
            client_secret=fields.text(info, "client_secret", f"{where}: external_account", required=False),
            quota_project_id=fields.text(info, "quota_project_id", f"{where}: external_account", required=False),
            universe_domain=universe,
        )
        if config.workforce_pool_user_project and not config.is_workforce:
            raise CredentialsError(
                f"{where}: workforce_pool_user_project is only for workforce pool audiences "
                "(//iam.googleapis.com/locations/global/workforcePools/POOL/providers/PROVIDER)"
            )
        return config


def _check_source(source: Mapping[str, Any], where: str) -> None:
    """The shapes a credential source's fields must have, checked at load (not mid-flow)."""
    if "file" in source:
        fields.text(source, "file", where)
    if "url" in source:
        fields.url(source, "url", where, required=True)
        headers = source.get("headers") or {}
        if not isinstance(headers, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) and k.isascii() and v.isascii() and v.isprintable()
            for k, v in headers.items()
        ):
            raise CredentialsError(f"{where}: 'headers' must be an object of ASCII strings")
    if "executable" in source and not isinstance(source["executable"], Mapping):
        raise CredentialsError(f"{where}: 'executable' is not an object")
    form = source.get("format") or {}
    if not isinstance(form, Mapping) or form.get("type", "text") not in ("text", "json"):
        raise CredentialsError(f'{where}: \'format\' must be {{"type": "text"}} or {{"type": "json", …}}')


def _extract(config: ExternalAccountConfig, raw: str, origin: str) -> str:
    """The subject token from ``raw`` in the source's format (text, or JSON with a field)."""
    form = config.credential_source.get("format") or {}
    token = subject_token_in(raw, form)
    if token is not None:
        return token
    if form.get("type", "text") == "json":
        try:
            json_object(raw)
        except UnreadableJson as exc:
            raise CredentialsError(f"{config.where}: {origin} {exc}") from None
        name = form.get("subject_token_field_name")
        raise CredentialsError(
            f"{config.where}: {origin} has no JSON field {fields.identifier(name)} with the subject token"
        )
    raise CredentialsError(f"{config.where}: {origin} is empty")


def subject_token_from_file(config: ExternalAccountConfig) -> str:
    path = Path(str(config.credential_source["file"]))
    origin = f"subject token file {path}"
    try:
        text = read_credential_file(path, f"{config.where}: subject token file").decode("utf-8")
    except UnicodeDecodeError:
        raise CredentialsError(f"{config.where}: {origin} is not UTF-8 text") from None
    return _extract(config, text, origin)


def subject_token_flow(config: ExternalAccountConfig, impersonated_email: str | None = None) -> Flow[str]:
    source = config.credential_source
    if aws.is_aws(source):
        return (yield from aws.subject_token_flow(source, config.audience, config.where))
    if "certificate" in source:
        return x509_source.subject_token(source, config.where)
    if "file" in source:
        return subject_token_from_file(config)
    if "executable" in source:
        return executable_source.subject_token(
            source, config.audience, config.subject_token_type, impersonated_email, config.where
        )
    url = str(source["url"])
    headers = {str(k): str(v) for k, v in (source.get("headers") or {}).items()}
    response = yield HttpRequest("GET", url, headers, describe={"subject_token": "url"}, retries=2)
    if response.status != 200:
        raise TokenRequestError(
            f"subject token URL {safe_url(url)} answered HTTP {response.status}", status=response.status
        )
    origin = f"subject token URL {safe_url(url)}"
    try:
        text = response.body.decode("utf-8")
    except UnicodeDecodeError:
        raise CredentialsError(f"{config.where}: {origin} answered bytes that are not UTF-8 text") from None
    return _extract(config, text, origin)


def access_token_flow(
    config: ExternalAccountConfig, scopes: Sequence[str], impersonated_email: str | None = None
) -> Flow[Token]:
    """STS token exchange: the subject token for a federated access token."""
    subject_token = yield from subject_token_flow(config, impersonated_email)
    form = {
        "grant_type": TOKEN_EXCHANGE,
        "audience": config.audience,
        "scope": " ".join(scopes),
        "requested_token_type": ACCESS_TOKEN_TYPE,
        "subject_token": subject_token,
        "subject_token_type": config.subject_token_type,
    }
    # As google-auth: the user project goes only without client authentication, URL-quoted JSON.
    if config.workforce_pool_user_project and not config.client_id:
        form["options"] = quote(json.dumps({"userProject": config.workforce_pool_user_project}))
    headers = basic_auth(config.client_id, config.client_secret) if config.client_id else {}
    url = endpoints.resolve(config.token_url)
    body = yield from post_form(
        url,
        {k: v for k, v in form.items() if v},
        {"grant": "token-exchange", "audience": config.audience},
        what="STS",
        headers=headers,
        client_certificate=x509_source.client_certificate(config.credential_source, config.where),
    )
    return access_token_from(body, f"STS {safe_url(config.token_url)}")


class FederatedCredentials(Credentials):
    """An outside identity through workload (or workforce) identity federation: its access tokens
    come from STS.

    Federated principals cannot hold ID tokens; an ``external_account`` file with a
    ``service_account_impersonation_url`` becomes ImpersonatedCredentials over this one.
    """

    def __init__(self, config: ExternalAccountConfig, impersonated_email: str | None = None):
        self.config = config
        self.impersonated_email = impersonated_email
        self._object_scope = secrets.token_hex(16)
        provider = config.audience.rsplit("/providers/", 1)[-1]
        source = {"aws": "AWS", "x509": "X.509 certificate"}.get(config.kind, "")
        pool = "workforce" if config.is_workforce else "workload"
        self.description = f"{pool} identity federation ({source + ', ' if source else ''}{provider} provider)"
        self.binding_role = (
            "Service Account Token Creator (roles/iam.serviceAccountTokenCreator) for its principal://"
            if config.is_workforce
            else "Workload Identity User (roles/iam.workloadIdentityUser)"
        )
        self.quota_project_id = config.quota_project_id

    def identity(self) -> str | None:
        # A file's subject token, AWS keys from the environment and a workload key are read
        # (cheap, local) and their digest is the proof of holding them. A URL, an executable or
        # the AWS instance metadata would have to be fetched or run to learn the secret: their
        # tokens are cached for this very object only.
        config = self.config
        proof = self._local_proof()
        if proof is None:
            proof = f"object:{self._object_scope}"
        audience = config.audience
        if config.workforce_pool_user_project or config.client_id:
            audience += f"|{config.workforce_pool_user_project or ''}|{config.client_id or ''}"
        return external_identity(audience, endpoints.resolve(config.token_url), proof)

    def _local_proof(self) -> str | None:
        config = self.config
        kind = config.kind
        if kind == "file":
            return subject_token_proof(subject_token_from_file(config))
        if kind == "aws":
            keys = aws.environment_keys()
            if keys is None:
                return None
            return secret_digest("aws", f"{keys.access_key_id}\0{keys.secret_access_key}\0{keys.session_token}")
        if kind == "x509":
            paths = x509_source.certificate_paths(config.credential_source, config.where)
            try:
                material = read_small_file(Path(paths.key_path)) + read_small_file(Path(paths.cert_path))
            except (OSError, UnreadableFile):
                return None  # the flow reports it
            if material.lstrip().startswith(b"-----BEGIN TSS2 PRIVATE KEY-----"):
                # A key in a TPM: the file only names it (a copy of it is read without the TPM),
                # so its bytes prove nothing: the tokens are this object's only, never the disk
                # cache's.
                return None
            return secret_digest("x509", material)
        return None

    def shared_identity(self) -> str | None:
        return self.identity() if self._local_proof() is not None else None

    def client_certificate(self) -> ClientCertificate | None:
        return x509_source.client_certificate(self.config.credential_source, self.config.where)

    def runs_programs(self) -> bool:
        # An executable source runs a program for its subject token (seconds, up to its timeout):
        # async callers, and impersonation over this credential, run the flows in a thread. A file
        # source is one small local read, as identity() does anyway; the others speak HTTP.
        return self.config.kind == "executable"

    def id_token_flow(self, audience: str) -> Flow[Token]:
        raise RefusedError(
            f"{self.config.where}: a federated identity gets ID tokens only by impersonating a service account; "
            "add service_account_impersonation_url (gcloud iam workload-identity-pools create-cred-config "
            "--service-account=SA) or pass --impersonate-service-account SA"
        )

    def access_token_flow(self, scopes: Sequence[str]) -> Flow[Token]:
        return access_token_flow(self.config, scopes, self.impersonated_email)
