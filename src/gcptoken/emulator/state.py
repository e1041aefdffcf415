"""What the emulated Google knows: a project, service accounts and their keys, its own signing
keys, the access tokens it issued and every request it received."""

from __future__ import annotations

import datetime
import hashlib
import json
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID

from gcptoken import jws
from gcptoken.errors import CredentialsError

__all__ = [
    "USER_SCOPES",
    "AccessTokenGrant",
    "EmulatorState",
    "Instance",
    "IssuerKey",
    "RefreshGrant",
    "ServiceAccount",
    "User",
]

ISSUER = "https://accounts.google.com"
ID_TOKEN_LIFETIME = 3600
ACCESS_TOKEN_LIFETIME = 3599
# How many signing keys stay published: the current one and those it replaced, newest first.
PUBLISHED_KEYS = 3


def _unique_id() -> str:
    """21 decimal digits, as Google's service-account unique ids."""
    return "1" + "".join(secrets.choice("0123456789") for _ in range(20))


@dataclass
class ServiceAccount:
    email: str
    unique_id: str
    project_id: str
    display_name: str = ""
    keys: dict[str, jws.VerifyingKey] = field(default_factory=dict)

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
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        now = datetime.datetime.now(datetime.timezone.utc)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=14))
            .sign(key.key, hashes.SHA256())
        )
        return cls(kid, key, cert.public_bytes(serialization.Encoding.PEM).decode("ascii"))


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

    def resource(self, project_number: str) -> str:
        return (
            f"//iam.googleapis.com/projects/{project_number}/locations/global/"
            f"workloadIdentityPools/{self.pool_id}/providers/{self.provider_id}"
        )

    def to_json(self, project_number: str) -> dict[str, Any]:
        return {
            "name": self.resource(project_number).removeprefix("//iam.googleapis.com/"),
            "audience": self.resource(project_number),
            "issuerUri": self.issuer,
            "allowedAudiences": self.allowed_audiences,
            "attributeMapping": self.attribute_mapping,
            "attributeCondition": self.attribute_condition,
        }


@dataclass
class Fault:
    """The next ``count`` requests to ``path`` fail this way (see emulator.faults)."""

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


class EmulatorState:
    """Thread-safe: the server's event loop and in-process callers (tests, the demo) share it."""

    def __init__(
        self,
        project_id: str = "emulated-project",
        project_number: str = "123456789012",
        clock: Callable[[], float] = time.time,
        certs_max_age: int = 19800,
    ) -> None:
        self.project_id = project_id
        self.project_number = project_number
        self.clock = clock
        self.certs_max_age = certs_max_age
        self.base_url = "http://127.0.0.1"
        self.instance = Instance(project_number)
        self.service_accounts: dict[str, ServiceAccount] = {}
        self.issuer_keys: list[IssuerKey] = [IssuerKey.create()]  # newest first
        self.signing_kid = self.issuer_keys[0].kid
        self.switch_at: float | None = None  # when signing moves to the newest published key
        self.access_tokens: dict[str, AccessTokenGrant] = {}
        self.requests: list[dict[str, Any]] = []
        # roles/iam.serviceAccountTokenCreator: target email → members allowed to act as it.
        self.token_creators: dict[str, set[str]] = {}
        # Service accounts the org policy lets mint access tokens living longer than an hour.
        self.lifetime_extension: set[str] = set()
        # People, the one OAuth client they sign in through, and the refresh tokens they hold.
        self.users: dict[str, User] = {}
        self.refresh_tokens: dict[str, RefreshGrant] = {}
        self.oauth_client = (
            f"{project_number}-emulated.apps.googleusercontent.com",
            "GOCSPX-" + secrets.token_urlsafe(21),
        )
        # Workload identity pool providers by (pool, provider), and the OIDC issuer they trust.
        self.providers: dict[tuple[str, str], Provider] = {}
        self._oidc_key: IssuerKey | None = None
        # Signing keys of Google's other token issuers (IAP, Firebase), made on first use.
        self._side_keys: dict[str, IssuerKey] = {}
        # Injected faults, consumed by the requests they match.
        self.faults: list[Fault] = []
        # Google-managed keys for signJwt / signBlob, made on first use: email → (kid, key).
        self.system_keys: dict[str, tuple[str, jws.SigningKey]] = {}
        self.lock = threading.RLock()
        # Called after admin changes, so a --state-dir emulator can persist them.
        self.on_change: Callable[[], None] | None = None
        self.default_account = self.create_service_account("default", "Default service account")

    def changed(self) -> None:
        if self.on_change is not None:
            self.on_change()

    # -- service accounts ---------------------------------------------------------------------

    def create_service_account(self, account_id: str, display_name: str = "") -> ServiceAccount:
        email = f"{account_id}@{self.project_id}.iam.gserviceaccount.com"
        with self.lock:
            if email in self.service_accounts:
                raise KeyError(email)
            account = ServiceAccount(email, _unique_id(), self.project_id, display_name)
            self.service_accounts[email] = account
            return account

    def create_key(self, email: str) -> dict[str, str]:
        """A new key for the account, as Google's console downloads it (token_uri → emulator)."""
        key = jws.generate_rsa_key()
        return self.register_key(email, key)

    def register_key(self, email: str, key: jws.SigningKey, key_id: str | None = None) -> dict[str, str]:
        with self.lock:
            account = self.service_accounts[email]
            key_id = key_id or secrets.token_hex(20)
            account.keys[key_id] = key.public
        return {
            "type": "service_account",
            "project_id": account.project_id,
            "private_key_id": key_id,
            "private_key": key.private_pem(),
            "client_email": account.email,
            "client_id": account.unique_id,
            "auth_uri": "https://accounts.google.com/o/oauth2/auth",
            "token_uri": f"{self.base_url}/token",
            "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
            "client_x509_cert_url": (
                "https://www.googleapis.com/robot/v1/metadata/x509/" + account.email.replace("@", "%40")
            ),
            "universe_domain": "googleapis.com",
        }

    def delete_key(self, email: str, key_id: str) -> None:
        with self.lock:
            del self.service_accounts[email].keys[key_id]

    @property
    def oidc_key(self) -> IssuerKey:
        """The signing key of the emulator's stand-in external OIDC issuer, made on first use."""
        with self.lock:
            if self._oidc_key is None:
                self._oidc_key = IssuerKey.create()
            return self._oidc_key

    def side_key(self, issuer: str, make: Callable[[], IssuerKey]) -> IssuerKey:
        """The signing key of one of Google's other issuers (IAP, Firebase), made on first use."""
        with self.lock:
            if issuer not in self._side_keys:
                self._side_keys[issuer] = make()
            return self._side_keys[issuer]

    def issue_federated_token(
        self, principal: str, attributes: tuple[tuple[str, str], ...], lifetime: int
    ) -> AccessTokenGrant:
        """A federated access token; ``principal`` is ``//iam.googleapis.com/…/subject/SUB``."""
        grant = AccessTokenGrant(
            "ya29." + secrets.token_urlsafe(96),
            principal,
            "",
            ("https://www.googleapis.com/auth/cloud-platform",),
            self.clock() + lifetime,
            "principal",
            attributes,
        )
        with self.lock:
            self.access_tokens[grant.token] = grant
        return grant

    # -- users ----------------------------------------------------------------------------------

    def create_user(self, email: str) -> User:
        with self.lock:
            if email not in self.users:
                self.users[email] = User(email, _unique_id())
            return self.users[email]

    def issue_refresh_token(self, email: str, scopes: tuple[str, ...] = USER_SCOPES) -> dict[str, str]:
        """An ``authorized_user`` credential file for the user, as gcloud writes one, with
        ``token_uri`` pointing at the emulator."""
        user = self.create_user(email)
        client_id, client_secret = self.oauth_client
        token = "1//0" + secrets.token_urlsafe(64)
        with self.lock:
            self.refresh_tokens[token] = RefreshGrant(user.email, client_id, scopes)
        return {
            "account": "",
            "client_id": client_id,
            "client_secret": client_secret,
            "quota_project_id": self.project_id,
            "refresh_token": token,
            "type": "authorized_user",
            "universe_domain": "googleapis.com",
            "token_uri": f"{self.base_url}/token",
        }

    def issue_user_access_token(self, user: User, scopes: tuple[str, ...]) -> AccessTokenGrant:
        return self._grant(user.email, user.sub, scopes, ACCESS_TOKEN_LIFETIME, "user")

    # -- IAM ----------------------------------------------------------------------------------------

    def grant_token_creator(self, email: str, member: str) -> None:
        with self.lock:
            if email not in self.service_accounts:
                raise KeyError(email)
            self.token_creators.setdefault(email, set()).add(member)

    def revoke_token_creator(self, email: str, member: str) -> None:
        with self.lock:
            self.token_creators.get(email, set()).discard(member)

    def may_act_as(self, member: str, email: str) -> bool:
        """Whether ``member`` holds roles/iam.serviceAccountTokenCreator on ``email``."""
        return member in self.token_creators.get(email, ())

    def system_key(self, email: str) -> tuple[str, jws.SigningKey]:
        with self.lock:
            if email not in self.system_keys:
                key = jws.generate_rsa_key()
                kid = secrets.token_hex(20)
                self.service_accounts[email].keys[kid] = key.public
                self.system_keys[email] = (kid, key)
            return self.system_keys[email]

    # -- the emulator's own signing keys --------------------------------------------------------

    @property
    def current_key(self) -> IssuerKey:
        """The key that signs now: a rotated-in key only once its switch time has come."""
        with self.lock:
            if self.switch_at is not None and self.clock() >= self.switch_at:
                self._promote()
            return next((key for key in self.issuer_keys if key.kid == self.signing_kid), self.issuer_keys[0])

    def _promote(self) -> None:
        self.signing_kid, self.switch_at = self.issuer_keys[0].kid, None

    def rotate_signing_key(self, immediate: bool = False) -> IssuerKey:
        """Publish a new key, as Google does, before signing with it: signing moves to it once the
        certs max-age published until now has run out, so every cache that honours Cache-Control
        holds it by then (``immediate``: at once, for tests of unknown-kid handling). The previous
        keys stay published (up to PUBLISHED_KEYS in all)."""
        new = IssuerKey.create()
        with self.lock:
            self.issuer_keys = [new, *self.issuer_keys][:PUBLISHED_KEYS]
            if immediate:
                self._promote()
            else:
                self.switch_at = self.clock() + self.certs_max_age
        return new

    def promote_signing_key(self) -> IssuerKey:
        """Sign with the newest published key now (the admin's ``signingKeys:promote``)."""
        with self.lock:
            self._promote()
        return self.current_key

    def certs_cache_seconds(self) -> int:
        """The max-age the certs endpoints publish: until the next switch, at most certs_max_age."""
        with self.lock:
            if self.switch_at is None:
                return self.certs_max_age
            return max(0, min(self.certs_max_age, int(self.switch_at - self.clock())))

    def retire_signing_key(self, kid: str) -> None:
        with self.lock:
            if self.current_key.kid == kid:
                raise ValueError("the current signing key cannot be retired; rotate first")
            if self.switch_at is not None and self.issuer_keys[0].kid == kid:
                raise ValueError("the key about to sign cannot be retired; promote or rotate first")
            remaining = [key for key in self.issuer_keys if key.kid != kid]
            if len(remaining) == len(self.issuer_keys):
                raise KeyError(kid)
            self.issuer_keys = remaining

    def published_key(self, kid: str) -> IssuerKey | None:
        return next((key for key in self.issuer_keys if key.kid == kid), None)

    # -- issuing --------------------------------------------------------------------------------

    def sign_id_token(self, claims: dict[str, Any]) -> str:
        key = self.current_key
        return jws.encode(claims, key.key, kid=key.kid)

    def identity_claims(self, account: ServiceAccount, audience: str) -> dict[str, Any]:
        """The claims Google puts in a service account's ID token from the metadata server or IAM
        Credentials: azp and sub are its unique id (the key flow uses the email as azp instead)."""
        now = int(self.clock())
        return {
            "aud": audience,
            "azp": account.unique_id,
            "exp": now + ID_TOKEN_LIFETIME,
            "iat": now,
            "iss": ISSUER,
            "sub": account.unique_id,
        }

    def service_account_id_token(self, account: ServiceAccount, audience: str) -> str:
        """Claim for claim what Google issues for the service-account key flow."""
        now = int(self.clock())
        return self.sign_id_token(
            {
                "aud": audience,
                "azp": account.email,
                "email": account.email,
                "email_verified": True,
                "exp": now + ID_TOKEN_LIFETIME,
                "iat": now,
                "iss": ISSUER,
                "sub": account.unique_id,
            }
        )

    def issue_access_token(
        self, account: ServiceAccount, scopes: tuple[str, ...], lifetime: int = ACCESS_TOKEN_LIFETIME
    ) -> AccessTokenGrant:
        return self._grant(account.email, account.unique_id, scopes, lifetime, "serviceAccount")

    def _grant(self, email: str, unique_id: str, scopes: tuple[str, ...], lifetime: int, kind: str) -> AccessTokenGrant:
        grant = AccessTokenGrant(
            "ya29." + secrets.token_urlsafe(96), email, unique_id, scopes, self.clock() + lifetime, kind
        )
        with self.lock:
            self._drop_expired_access_tokens()
            self.access_tokens[grant.token] = grant
        return grant

    def _drop_expired_access_tokens(self) -> None:
        now = self.clock()
        if len(self.access_tokens) > 10_000:
            self.access_tokens = {t: g for t, g in self.access_tokens.items() if g.expires_at > now}

    # -- request log ----------------------------------------------------------------------------

    def record(self, entry: dict[str, Any]) -> None:
        with self.lock:
            self.requests.append(entry)

    def request_log(self) -> list[dict[str, Any]]:
        with self.lock:
            return list(self.requests)

    def clear_requests(self) -> None:
        with self.lock:
            self.requests.clear()

    # -- persistence across restarts with --state-dir -------------------------------------------

    def to_json(self) -> dict[str, Any]:
        with self.lock:
            return {
                "version": 1,
                "project_id": self.project_id,
                "project_number": self.project_number,
                "issuer_keys": [key.key.private_pem() for key in self.issuer_keys],
                "signing_kid": self.signing_kid,
                "switch_at": self.switch_at,
                "token_creators": {email: sorted(members) for email, members in self.token_creators.items()},
                "lifetime_extension": sorted(self.lifetime_extension),
                "oauth_client": list(self.oauth_client),
                "users": {email: user.sub for email, user in self.users.items()},
                "refresh_tokens": {
                    token: [grant.email, grant.client_id, list(grant.scopes)]
                    for token, grant in self.refresh_tokens.items()
                },
                "service_accounts": [
                    {
                        "email": a.email,
                        "unique_id": a.unique_id,
                        "display_name": a.display_name,
                        "keys": {
                            kid: k.key.public_bytes(
                                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
                            ).decode("ascii")
                            for kid, k in a.keys.items()
                        },
                    }
                    for a in self.service_accounts.values()
                ],
            }

    @classmethod
    def load(cls, path: Path, **options: Any) -> EmulatorState:
        """State saved by ``to_json``; a file of another version is refused with ValueError."""
        try:
            raw = path.read_bytes()
        except OSError:
            raise ValueError(f"{path} is not readable; remove it to start afresh") from None
        return cls.from_bytes(raw, str(path), **options)

    @classmethod
    def from_bytes(cls, raw: bytes, path: str, **options: Any) -> EmulatorState:
        try:
            data = json.loads(raw)
        except (UnicodeDecodeError, ValueError, RecursionError):
            raise ValueError(f"{path} is not readable JSON; remove it to start afresh") from None
        if not isinstance(data, dict) or data.get("version") != 1:
            raise ValueError(f"{path} is not an emulator state file of version 1")
        try:
            return cls._from_json(data, **options)
        except (KeyError, TypeError, ValueError, CredentialsError) as exc:
            raise ValueError(f"{path} is damaged ({type(exc).__name__}); remove it to start afresh") from None

    @classmethod
    def _from_json(cls, data: dict[str, Any], **options: Any) -> EmulatorState:
        state = cls(project_id=data["project_id"], project_number=data["project_number"], **options)
        state.issuer_keys = [IssuerKey.create(jws.load_private_key_pem(pem)) for pem in data["issuer_keys"]]
        state.signing_kid = data.get("signing_kid") or state.issuer_keys[0].kid
        state.switch_at = data.get("switch_at")
        state.service_accounts = {}
        for entry in data["service_accounts"]:
            account = ServiceAccount(entry["email"], entry["unique_id"], state.project_id, entry["display_name"])
            account.keys = {kid: jws.public_key_from_pem(pem) for kid, pem in entry["keys"].items()}
            state.service_accounts[account.email] = account
        state.default_account = state.service_accounts[f"default@{state.project_id}.iam.gserviceaccount.com"]
        state.token_creators = {email: set(members) for email, members in data.get("token_creators", {}).items()}
        state.lifetime_extension = set(data.get("lifetime_extension", []))
        if "oauth_client" in data:
            state.oauth_client = (data["oauth_client"][0], data["oauth_client"][1])
        state.users = {email: User(email, sub) for email, sub in data.get("users", {}).items()}
        state.refresh_tokens = {
            token: RefreshGrant(email, client, tuple(scopes))
            for token, (email, client, scopes) in data.get("refresh_tokens", {}).items()
        }
        return state
