"""What the emulated Google knows: a project, service accounts and their keys, its own signing
keys (signing), the access tokens it issued, users, bindings, providers and every request it
received. The data it keeps is in models; saving and restoring it in persistence (which imports this, not
the other way round)."""

from __future__ import annotations

import datetime
import secrets
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from gcptoken.emulator.keys import key_certificates
from gcptoken.emulator.keys.signing import SigningKeys
from gcptoken.emulator.oauth2.signin_state import SignIn
from gcptoken.emulator.state.models import (
    ACCESS_TOKEN_LIFETIME,
    ID_TOKEN_LIFETIME,
    ISSUER,
    USER_SCOPES,
    AccessTokenGrant,
    Fault,
    Instance,
    IssuerKey,
    Provider,
    RefreshGrant,
    ServiceAccount,
    User,
    WorkforceGrant,
    unique_id,
)
from gcptoken.emulator.sts.aws_world import AwsWorld
from gcptoken.jose import jws

if TYPE_CHECKING:
    from gcptoken.emulator.sts.mtls import WorkloadCa

__all__ = ["EmulatorState"]


class EmulatorState(SigningKeys):
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
        # roles/iam.serviceAccountKeyAdmin: email → members who may list, upload, disable and delete its keys.
        self.key_admins: dict[str, set[str]] = {}
        # Service agents (by their gcp-sa-… domain) whose project-level role was taken away: they
        # then mint ID tokens only for accounts that grant them roles/iam.serviceAccountTokenCreator.
        self.removed_agent_roles: set[str] = set()
        # Service accounts the org policy lets mint access tokens living longer than an hour.
        self.lifetime_extension: set[str] = set()
        # Domain-wide delegation, as a Workspace admin grants it (Admin console > Security > API
        # controls): a service account's OAuth client id (its unique id) → the scopes it may use for
        # any user of the domain.
        self.delegation_grants: dict[str, tuple[str, ...]] = {}
        # Regional access boundaries set by the admin: resource name → the allowedLocations answer.
        self.allowed_locations: dict[str, dict[str, Any]] = {}
        # People, the one OAuth client they sign in through, and the refresh tokens they hold.
        self.users: dict[str, User] = {}
        self.refresh_tokens: dict[str, RefreshGrant] = {}
        self.oauth_client = (
            f"{project_number}-emulated.apps.googleusercontent.com",
            "GOCSPX-" + secrets.token_urlsafe(21),
        )
        # Sign-in: registered OAuth clients, authorization and device codes, reauth demands.
        self.signin = SignIn(clock)
        # Workload identity pool providers by (pool, provider), and the OIDC issuer they trust.
        self.providers: dict[tuple[str, str], Provider] = {}
        self._oidc_key: IssuerKey | None = None
        # Signing keys of Google's other token issuers (IAP, Firebase), made on first use.
        self._side_keys: dict[str, IssuerKey] = {}
        # Workforce identity federation: the OAuth client gcloud's login config names, and the
        # refresh tokens of people signed in through a workforce pool.
        self.workforce_client = ("emulated-workforce-client", "wf-" + secrets.token_urlsafe(24))
        self.workforce_refresh: dict[str, WorkforceGrant] = {}
        # X.509 federation: the CA of workload certificates, where the mTLS port is (when it is
        # served), and what to tell it when a provider brings more trust anchors.
        self._workload_ca: WorkloadCa | None = None
        self.mtls_url: str | None = None
        self.tls_url: str | None = None  # the HTTPS port without client certificates (--tls-port)
        self.trust_hooks: list[Callable[[str], None]] = []
        # The AWS account and EC2 instance that AWS-federated workloads run in.
        self.aws = AwsWorld(clock)
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
            account = ServiceAccount(email, unique_id(), self.project_id, display_name)
            self.service_accounts[email] = account
            return account

    def create_key(self, email: str, universe_domain: str = "googleapis.com") -> dict[str, str]:
        """A new key for the account, as Google's console downloads it (token_uri → emulator);
        ``universe_domain`` makes it a key of another universe (e.g. endpoints.EMULATED_UNIVERSE)."""
        key = jws.generate_rsa_key()
        info = self.register_key(email, key)
        if universe_domain != "googleapis.com":
            info["universe_domain"] = universe_domain
            info["token_uri"] = f"https://oauth2.{universe_domain}/token"
        return info

    def register_key(self, email: str, key: jws.SigningKey, key_id: str | None = None) -> dict[str, str]:
        certificate = key_certificates.certificate(key_certificates.common_name(email), key, self._now())
        with self.lock:
            account = self.service_accounts[email]
            key_id = key_id or secrets.token_hex(20)
            account.keys[key_id] = key.public
            account.certificates[key_id] = certificate
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
            "client_x509_cert_url": self.certs_url(account.email),
            "universe_domain": "googleapis.com",
        }

    def certs_url(self, email: str) -> str:
        """Where the account's certificates are, at the emulator (Google's form, ``@`` as ``%40``)."""
        return f"{self.base_url}/robot/v1/metadata/x509/" + email.replace("@", "%40")

    def _now(self) -> datetime.datetime:
        return datetime.datetime.fromtimestamp(self.clock(), datetime.timezone.utc)

    def delete_key(self, email: str, key_id: str) -> None:
        with self.lock:
            account = self.service_accounts[email]
            if account.keys.pop(key_id, None) is None:
                del account.disabled_keys[key_id]
            account.certificates.pop(key_id, None)
            account.uploaded.discard(key_id)

    @property
    def oidc_key(self) -> IssuerKey:
        """The signing key of the emulator's stand-in external OIDC issuer, made on first use."""
        with self.lock:
            if self._oidc_key is None:
                self._oidc_key = IssuerKey.create()
            return self._oidc_key

    @property
    def workload_ca(self) -> WorkloadCa:
        with self.lock:
            if self._workload_ca is None:
                from gcptoken.emulator.sts.mtls import WorkloadCa

                self._workload_ca = WorkloadCa()
            return self._workload_ca

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

    def add_workforce_refresh_token(self, grant: WorkforceGrant) -> str:
        token = "wf1." + secrets.token_urlsafe(48)
        with self.lock:
            self.workforce_refresh[token] = grant
        return token

    def workforce_user_file(self, provider: Provider, refresh_token: str) -> dict[str, str]:
        """``external_account_authorized_user`` for a workforce user, endpoints at the emulator."""
        client_id, client_secret = self.workforce_client
        return {
            "type": "external_account_authorized_user",
            "audience": provider.resource(self.project_number),
            "refresh_token": refresh_token,
            "token_url": f"{self.base_url}/v1/oauth/token",
            "token_info_url": f"{self.base_url}/v1/introspect",
            "revoke_url": f"{self.base_url}/v1/revoke",
            "client_id": client_id,
            "client_secret": client_secret,
            "quota_project_id": self.project_id,
            "universe_domain": "googleapis.com",
        }

    # -- users ----------------------------------------------------------------------------------

    def create_user(self, email: str) -> User:
        with self.lock:
            if email not in self.users:
                self.users[email] = User(email, unique_id())
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

    def issue_user_access_token(
        self, user: User, scopes: tuple[str, ...], client_id: str | None = None
    ) -> AccessTokenGrant:
        return self._grant(user.email, user.sub, scopes, ACCESS_TOKEN_LIFETIME, "user", client_id)

    def find_user(self, email: str) -> User | None:
        """The user with ``email``; Google's addresses are case-insensitive."""
        found = self.users.get(email)
        if found is None:
            folded = email.casefold()
            found = next((user for key, user in self.users.items() if key.casefold() == folded), None)
        return found

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
        """The account's Google-managed key (signJwt, signBlob), published among its keys; made on
        first use, and again if an admin deleted it."""
        with self.lock:
            account = self.service_accounts[email]
            found = self.system_keys.get(email)
            if found is not None and found[0] in account.keys:
                return found
            key = jws.generate_rsa_key()
            found = self.system_keys[email] = (secrets.token_hex(20), key)
            account.keys[found[0]] = key.public
            account.certificates[found[0]] = key_certificates.certificate(
                key_certificates.common_name(email), key, self._now()
            )
            self.changed()  # saved at once: what it signs must verify after a restart
            return found

    # -- the emulator's own signing keys --------------------------------------------------------

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

    def _grant(
        self, email: str, unique_id: str, scopes: tuple[str, ...], lifetime: int, kind: str, client: str | None = None
    ) -> AccessTokenGrant:
        token = "ya29." + secrets.token_urlsafe(96)
        grant = AccessTokenGrant(token, email, unique_id, scopes, self.clock() + lifetime, kind, client_id=client)
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
