"""The things the emulated Google keeps: accounts, signing keys, providers, users and grants,
the instance it describes, and injected faults (plain data; EmulatorState holds and guards them)."""

from __future__ import annotations

import datetime
import hashlib
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives import serialization

from gcptoken.emulator.keys import key_certificates
from gcptoken.jose import jws

__all__ = [
    "ACCESS_TOKEN_LIFETIME",
    "ID_TOKEN_LIFETIME",
    "ISSUER",
    "PUBLISHED_KEYS",
    "USER_SCOPES",
    "AccessTokenGrant",
    "Fault",
    "Instance",
    "IssuerKey",
    "Provider",
    "RefreshGrant",
    "ServiceAccount",
    "User",
    "WorkforceGrant",
    "unique_id",
]

ISSUER = "https://accounts.google.com"
ID_TOKEN_LIFETIME = 3600
ACCESS_TOKEN_LIFETIME = 3599
# How many signing keys stay published: the current one and those it replaced, newest first.
PUBLISHED_KEYS = 3


def unique_id() -> str:
    """21 decimal digits, as Google's service-account unique ids."""
    return "1" + "".join(secrets.choice("0123456789") for _ in range(20))


@dataclass
class ServiceAccount:
    email: str
    unique_id: str
    project_id: str
    display_name: str = ""
    keys: dict[str, jws.VerifyingKey] = field(default_factory=dict)
    # The certificate each key is published in (robot/v1/metadata/x509), kept so it never changes.
    certificates: dict[str, str] = field(default_factory=dict)
    # Disabled keys (IAM keys.disable) are kept out of ``keys``, so nothing accepts or publishes
    # them, until enabled again; their certificates stay in ``certificates``.
    disabled_keys: dict[str, jws.VerifyingKey] = field(default_factory=dict)
    # Keys whose public half was uploaded (keys:upload, keyOrigin USER_PROVIDED).
    uploaded: set[str] = field(default_factory=set)

    def to_json(self) -> dict[str, Any]:
        return {
            "email": self.email,
            "uniqueId": self.unique_id,
            "projectId": self.project_id,
            "displayName": self.display_name,
            "keyIds": sorted(self.keys),
        }


@dataclass(frozen=True)
class IssuerKey:
    """One of the emulator's own token-signing keys, with its published certificate."""

    kid: str
    key: jws.SigningKey
    certificate_pem: str

    @classmethod
    def create(
        cls, key: jws.SigningKey | None = None, common_name: str = "federated-signon.system.gserviceaccount.com"
    ) -> IssuerKey:
        key = key or jws.generate_rsa_key()
        public_der = key.key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        kid = hashlib.sha1(public_der, usedforsecurity=False).hexdigest()
        now = datetime.datetime.now(datetime.timezone.utc)
        # Google-managed keys sign for at most two weeks: their certificates cover about that.
        window = (now - datetime.timedelta(days=1), now + datetime.timedelta(days=14))
        pem = key_certificates.certificate(common_name, key, *window)
        return cls(kid, key, pem)


@dataclass
class Provider:
    pool_id: str
    provider_id: str
    issuer: str
    allowed_audiences: list[str] = field(default_factory=list)
    attribute_mapping: dict[str, str] = field(default_factory=lambda: {"google.subject": "assertion.sub"})
    attribute_condition: str = ""
    # Keys of an outside issuer, as Google's jwksJson; empty means the emulator's own issuer.
    jwks: dict[str, Any] = field(default_factory=dict)
    # An AWS provider trusts this account's callers instead of an OIDC issuer.
    aws_account_id: str = ""
    # An X.509 provider trusts certificates chaining to these roots (PEM), through the token's
    # own intermediates or these.
    trust_anchors: list[str] = field(default_factory=list)
    intermediate_cas: list[str] = field(default_factory=list)
    # A workforce pool's provider (people) rather than a workload identity pool's.
    workforce: bool = False

    def __post_init__(self) -> None:
        # Google's default mapping differs by provider type: the ARN for AWS, the CN for X.509.
        if self.attribute_mapping == {"google.subject": "assertion.sub"} and self.kind != "oidc":
            source = "assertion.arn" if self.kind == "aws" else "assertion.subject.dn.cn"
            self.attribute_mapping = {"google.subject": source}

    @property
    def key(self) -> tuple[str, str]:
        return (f"workforce:{self.pool_id}" if self.workforce else self.pool_id, self.provider_id)

    @property
    def kind(self) -> str:
        return "aws" if self.aws_account_id else "x509" if self.trust_anchors else "oidc"

    def pool(self, project_number: str) -> str:
        """The pool's resource name, as principals name it: ``//iam.googleapis.com/…/P``."""
        return self.resource(project_number).split("/providers/", 1)[0]

    def resource(self, project_number: str) -> str:
        if self.workforce:
            return f"//iam.googleapis.com/locations/global/workforcePools/{self.pool_id}/providers/{self.provider_id}"
        return (
            f"//iam.googleapis.com/projects/{project_number}/locations/global/"
            f"workloadIdentityPools/{self.pool_id}/providers/{self.provider_id}"
        )

    def to_json(self, project_number: str) -> dict[str, Any]:
        kind: dict[str, Any] = {"aws": {"accountId": self.aws_account_id}} if self.aws_account_id else {}
        if self.trust_anchors:
            store = {
                "trustAnchors": [{"pemCertificate": p} for p in self.trust_anchors],
                "intermediateCas": [{"pemCertificate": p} for p in self.intermediate_cas],
            }
            kind = {"x509": {"trustStore": store}}
        return {
            "name": self.resource(project_number).removeprefix("//iam.googleapis.com/"),
            "audience": self.resource(project_number),
            **kind,
            "issuerUri": self.issuer,
            "allowedAudiences": self.allowed_audiences,
            "attributeMapping": self.attribute_mapping,
            "attributeCondition": self.attribute_condition,
        }


@dataclass
class Fault:
    """The next ``count`` requests to ``path`` fail this way (see emulator.http.faults)."""

    path: str
    count: int
    status: int | None = None
    delay: float = 0.0
    drop: bool = False
    truncate: bool = False
    lose_response: bool = False

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in vars(self).items() if v not in (None, False, 0.0) or k in ("path", "count")}


@dataclass(frozen=True)
class User:
    email: str
    sub: str


@dataclass(frozen=True)
class WorkforceGrant:
    """A person signed in through a workforce pool: what their refresh token stands for."""

    principal: str  # //iam.googleapis.com/locations/global/workforcePools/P/subject/S
    attributes: tuple[tuple[str, str], ...] = ()
    rotate: bool = False


@dataclass(frozen=True)
class RefreshGrant:
    email: str
    client_id: str
    scopes: tuple[str, ...]


# What `gcloud auth application-default login` asks a user to grant.
USER_SCOPES = (
    "openid",
    "https://www.googleapis.com/auth/userinfo.email",
    "https://www.googleapis.com/auth/cloud-platform",
)


@dataclass(frozen=True)
class Instance:
    """The emulated VM / Cloud Run instance that the metadata server describes."""

    project_number: str
    instance_id: str = field(default_factory=lambda: "".join(secrets.choice("0123456789") for _ in range(19)))
    name: str = "emulated-instance"
    zone_name: str = "us-central1-a"
    creation_timestamp: int = field(default_factory=lambda: int(time.time()))
    scopes: tuple[str, ...] = ("https://www.googleapis.com/auth/cloud-platform",)
    # Custom metadata (``instance/attributes/``, ``project/attributes/``), set through the admin API.
    attributes: dict[str, str] = field(default_factory=dict)
    project_attributes: dict[str, str] = field(default_factory=dict)
    universe_domain: str = "googleapis.com"
    # Whose metadata server answers (local.metadata_platforms): gce, gke, cloud-run, functions, app-engine.
    platform: str = "gce"

    @property
    def zone(self) -> str:
        return f"projects/{self.project_number}/zones/{self.zone_name}"

    @property
    def region(self) -> str:
        return f"projects/{self.project_number}/regions/{self.zone_name.rsplit('-', 1)[0]}"


@dataclass(frozen=True)
class AccessTokenGrant:
    token: str
    email: str
    unique_id: str
    scopes: tuple[str, ...]
    expires_at: float
    kind: str = "serviceAccount"  # the IAM member type of whoever the token stands for
    # Mapped attribute.* values of a federated identity, for principalSet bindings.
    attributes: tuple[tuple[str, str], ...] = ()
    # The OAuth client the token was issued to (tokeninfo's azp/aud), when not the usual one: a
    # delegated user's token is the service account's client's (its unique id).
    client_id: str | None = None

    @property
    def principal(self) -> str:
        """The IAM member, e.g. ``serviceAccount:sa@p.iam.gserviceaccount.com`` or, federated,
        ``principal://iam.googleapis.com/projects/N/locations/global/workloadIdentityPools/P/subject/S``."""
        return f"{self.kind}:{self.email}"

    def members(self) -> tuple[str, ...]:
        """Every IAM member string this caller matches (federated identities match their sets too)."""
        if self.kind != "principal":
            return (self.principal,)
        pool = self.email.split("/subject/", 1)[0]
        sets = [f"principalSet:{pool}/*"] + [f"principalSet:{pool}/{name}/{value}" for name, value in self.attributes]
        return (self.principal, *sets)
