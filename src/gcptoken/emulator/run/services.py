"""The emulated Cloud Run services: their names, their URLs and custom audiences, the local app
each fronts, and each one's invoker policy (the ``roles/run.invoker`` members).

Membership follows Cloud Run's IAM: ``allUsers`` (anyone, no token checked:
``gcloud run deploy --allow-unauthenticated`` binds it), ``allAuthenticatedUsers`` (any valid
Google-signed ID token for the service), ``user:EMAIL`` and ``serviceAccount:EMAIL``
(https://cloud.google.com/run/docs/securing/managing-access,
https://cloud.google.com/iam/docs/principal-identifiers). A new service has no invoker, as one
deployed without ``--allow-unauthenticated``: every call is refused until a member is bound."""

from __future__ import annotations

import re
import threading
import weakref
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from gcptoken.emulator.state.state import EmulatorState
from gcptoken.errors import InvalidArgumentError

__all__ = [
    "ALL_AUTHENTICATED",
    "ALL_USERS",
    "INVOKER",
    "RunService",
    "RunServices",
    "member_of",
    "missing_account",
    "run_services",
]

INVOKER = "roles/run.invoker"
ALL_USERS = "allUsers"
ALL_AUTHENTICATED = "allAuthenticatedUsers"
# Cloud Run service names: lowercase letters, digits and hyphens, a letter first, at most 49.
_NAME = re.compile(r"[a-z]([-a-z0-9]{0,47}[a-z0-9])?")
_MEMBER = re.compile(r"(user|serviceAccount|group|domain):[^\s:]+")


def check_name(name: str) -> str:
    if not _NAME.fullmatch(name):
        raise InvalidArgumentError(
            f"{name[:60]!r} is not a Cloud Run service name (lowercase letters, digits, hyphens; a letter first)"
        )
    return name


def check_member(member: str) -> str:
    if member in (ALL_USERS, ALL_AUTHENTICATED) or _MEMBER.fullmatch(member):
        return member
    raise InvalidArgumentError(
        f"{member[:80]!r} is not an IAM member (allUsers, allAuthenticatedUsers, user:EMAIL, serviceAccount:EMAIL)"
    )


def missing_account(members: Iterable[str], state: EmulatorState) -> str | None:
    """IAM's refusal of a policy naming a service account that does not exist, in its words
    (``INVALID_ARGUMENT: Service account EMAIL does not exist.``, as gcloud's
    ``add-iam-policy-binding`` and setIamPolicy answer it: GoogleCloudPlatform/generative-ai#944,
    hashicorp/terraform-provider-google's 400s); None when every one is known."""
    with state.lock:
        known = set(state.service_accounts)
    for member in members:
        kind, _, email = member.partition(":")
        if kind == "serviceAccount" and email not in known:
            return f"Service account {email[:80]} does not exist."
    return None


def member_of(claims: Mapping[str, Any], state: EmulatorState | None = None) -> str | None:
    """The IAM member a verified ID token stands for: ``serviceAccount:`` for a service account's
    email, ``user:`` for anyone else's; without an email (a metadata server's standard-format
    token has only ``aud``, ``azp``, ``sub``, ``iss``, ``exp``, ``iat``), the service account or
    person of ``state`` whose unique id is ``sub``, as IAM knows principals by id too; else None.
    Cloud Run admits such tokens: Google's own service-to-service recipe fetches
    ``…/identity?audience=AUD`` without ``format=full``
    (https://cloud.google.com/run/docs/securing/service-identity,
    https://cloud.google.com/run/docs/authenticating/service-to-service)."""
    email = claims.get("email")
    if isinstance(email, str) and email and claims.get("email_verified") is True:
        return f"serviceAccount:{email}" if email.endswith(".gserviceaccount.com") else f"user:{email}"
    subject = claims.get("sub")
    if email is not None or state is None or not isinstance(subject, str) or not subject:
        return None  # an unverified email is never looked past
    with state.lock:
        account = next((a for a in state.service_accounts.values() if a.unique_id == subject), None)
        if account is not None:
            return f"serviceAccount:{account.email}"
        user = next((u for u in state.users.values() if u.sub == subject), None)
    return f"user:{user.email}" if user is not None else None


@dataclass
class RunService:
    """One emulated service: ``name``, the local app it fronts (``upstream``, http(s)://HOST:PORT),
    the audiences Cloud Run's ``run.googleapis.com/custom-audiences`` would add
    (https://cloud.google.com/run/docs/configuring/custom-audiences), and its invokers."""

    name: str
    upstream: str
    custom_audiences: tuple[str, ...] = ()
    invokers: set[str] = field(default_factory=set)
    urls: tuple[str, ...] = ()  # set when its listener is bound: the service's URLs, as Cloud Run gives two
    port: int = 0  # where its front door listens (0: a free port)

    def __post_init__(self) -> None:
        from gcptoken import checks

        check_name(self.name)
        self.upstream = checks.http_url(self.upstream, f"the app behind {self.name}")
        self.custom_audiences = tuple(checks.audience(a, "a custom audience") for a in self.custom_audiences)
        self.invokers = {check_member(m) for m in self.invokers}
        if not 0 <= self.port <= 65535:
            raise InvalidArgumentError(f"the port of {self.name} must be 0-65535, not {self.port}")

    @property
    def url(self) -> str:
        return self.urls[0] if self.urls else ""

    @property
    def audiences(self) -> tuple[str, ...]:
        """What ``aud`` may be: the service's URLs (always kept, custom audiences or not) and its
        custom audiences."""
        return (*self.urls, *self.custom_audiences)

    def policy(self, etag: str) -> dict[str, Any]:
        """Its IAM policy, in the shape getIamPolicy answers (https://cloud.google.com/iam/docs/reference/rest/v1/Policy)."""
        bindings = [{"role": INVOKER, "members": sorted(self.invokers)}] if self.invokers else []
        return {"version": 1, "etag": etag, "bindings": bindings}


class RunServices:
    """Every emulated service of one emulator, by name; thread-safe (the emulator's loop, each
    front door's loop and in-process callers share it)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._services: dict[str, RunService] = {}
        self._version = 0

    def add(self, service: RunService) -> RunService:
        with self._lock:
            if service.name in self._services:
                raise InvalidArgumentError(f"a service named {service.name} is already fronted")
            self._services[service.name] = service
            self._version += 1
        return service

    def remove(self, name: str) -> None:
        with self._lock:
            self._services.pop(name, None)
            self._version += 1

    def get(self, name: str) -> RunService | None:
        with self._lock:
            return self._services.get(name)

    def names(self) -> list[str]:
        with self._lock:
            return sorted(self._services)

    def invokers(self, name: str) -> frozenset[str]:
        with self._lock:
            service = self._services.get(name)
            return frozenset(service.invokers) if service else frozenset()

    def etag(self) -> str:
        import base64

        return base64.b64encode(f"v{self._version}".encode()).decode()

    def policy(self, name: str) -> dict[str, Any] | None:
        with self._lock:
            service = self._services.get(name)
            return None if service is None else service.policy(self.etag())

    def set_invokers(self, name: str, members: Iterable[str]) -> None:
        """Replace the invokers (setIamPolicy)."""
        checked = {check_member(m) for m in members}
        with self._lock:
            self._services[name].invokers = checked
            self._version += 1

    def grant(self, name: str, members: Sequence[str]) -> None:
        """Add invokers (``add-iam-policy-binding``)."""
        checked = {check_member(m) for m in members}
        with self._lock:
            self._services[name].invokers |= checked
            self._version += 1


_REGISTRIES: weakref.WeakKeyDictionary[EmulatorState, RunServices] = weakref.WeakKeyDictionary()
_REGISTRIES_LOCK = threading.Lock()


def run_services(state: EmulatorState) -> RunServices:
    """The services fronted for ``state``'s emulator (kept beside the state, not in it: they live
    as long as their listeners, and are not written to a state dir)."""
    with _REGISTRIES_LOCK:
        registry = _REGISTRIES.get(state)
        if registry is None:
            registry = _REGISTRIES[state] = RunServices()
        return registry
