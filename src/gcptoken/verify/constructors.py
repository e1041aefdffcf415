"""The Verifier's named constructors, one per kind of token: ``Verifier.google``, ``.iap``,
``.firebase``, ``.oidc``, ``.service_account``, ``.google_caller`` and ``.compute_engine``. Each
builds its preset (``presets``, ``callers``) and hands it to ``Verifier.from_preset``, which
checks the audience: every one of them needs it."""

from __future__ import annotations

from collections.abc import Collection
from typing import TYPE_CHECKING, Any

from gcptoken.verify import callers, presets
from gcptoken.verify.audience import Audience

if TYPE_CHECKING:
    from typing_extensions import Self

__all__ = ["NamedConstructors"]


class NamedConstructors:
    """Mixed into Verifier (which defines ``from_preset``)."""

    @classmethod
    def from_preset(cls, preset: presets.Preset, audience: Audience, **options: Any) -> Self:
        raise NotImplementedError  # pragma: no cover - Verifier's

    @classmethod
    def google(cls, audience: Audience, **options: Any) -> Self:
        """Google-signed ID tokens for ``audience`` (your service's URL, say)."""
        return cls.from_preset(presets.GOOGLE, audience, **options)

    @classmethod
    def iap(cls, audience: Audience, **options: Any) -> Self:
        """IAP's signed header, for ``/projects/NUMBER/apps/PROJECT_ID`` or
        ``/projects/NUMBER/global/backendServices/ID``."""
        return cls.from_preset(presets.IAP, audience, **options)

    @classmethod
    def firebase(cls, project_id: str, **options: Any) -> Self:
        """Firebase Authentication ID tokens of project ``project_id``."""
        return cls.from_preset(presets.firebase(project_id), project_id, **options)

    @classmethod
    def oidc(cls, issuer: str, audience: Audience, **options: Any) -> Self:
        """Tokens from any OpenID Connect ``issuer``; its keys are found by discovery."""
        return cls.from_preset(presets.oidc(issuer), audience, **options)

    @classmethod
    def service_account(cls, email: str, audience: Audience, **options: Any) -> Self:
        """JWTs service account ``email`` signed (self-signed with a key file, IAM signJwt), for
        ``audience``: its published keys, ``iss`` = ``sub`` = ``email`` (``issuer=``, ``subject=``:
        a string or list to accept instead)."""
        preset = presets.service_account(email, options.pop("issuer", None), options.pop("subject", None))
        return cls.from_preset(preset, audience, **options)

    @classmethod
    def google_caller(cls, audience: Audience, service_accounts: str | Collection[str], **options: Any) -> Self:
        """Calls from Google's products on behalf of ``service_accounts`` (the account a Pub/Sub
        push subscription, Cloud Tasks task, Scheduler job, Eventarc trigger or Workflows call
        names): Google-signed, for ``audience``, ``email`` one of them and ``email_verified``."""
        return cls.from_preset(callers.google_caller(service_accounts), audience, **options)

    @classmethod
    def compute_engine(
        cls,
        audience: Audience,
        projects: Collection[str | int] | str | int,
        *,
        zones: Collection[str] | str | None = None,
        instances: Collection[str | int] | str | int | None = None,
        licenses: Collection[str | int] | str | int | None = None,
        service_accounts: str | Collection[str] | None = None,
        **options: Any,
    ) -> Self:
        """A Compute Engine VM's ``format=full`` identity token for ``audience``, from one of
        ``projects`` (IDs or numbers); ``zones``, ``instances`` (IDs or names), ``licenses`` and
        ``service_accounts`` narrow it further (see ``callers.compute_engine``)."""
        preset = callers.compute_engine(projects, zones, instances, licenses, service_accounts)
        return cls.from_preset(preset, audience, **options)
