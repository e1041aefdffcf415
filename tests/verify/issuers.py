"""The token issuers a Verifier preset can face, each backed by the emulator's real signing key
for it: Google (RS256), IAP (ES256), Firebase (RS256, securetoken) and the emulator's own OIDC
issuer (RS256, found by discovery). Shared by the preset, differential and middleware tests."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from gcptoken import Verifier
from gcptoken.emulator.keys import firebase, iap
from gcptoken.emulator.state.models import IssuerKey
from gcptoken.emulator.sts.federation import issuer_url
from gcptoken.jose import compact
from gcptoken.testing import EmulatorClient

NOW = 1_800_000_000
GOOGLE_AUDIENCE = "https://svc-presets.a.run.app"
IAP_AUDIENCE = "/projects/123456789012/global/backendServices/4242"
FIREBASE_PROJECT = "emulated-project"
OIDC_AUDIENCE = "https://oidc-audience.example"

DROP = object()


def b64json(value: Any) -> str:
    return compact.b64url_encode(json.dumps(value).encode())


@dataclass
class Issuer:
    """One kind of token: how to verify it (through the preset, keys fetched from the emulator),
    its signing key, and a valid set of claims at NOW."""

    name: str
    key: IssuerKey
    issuer: str
    audience: str
    lifetime: int
    make_verifier: Callable[..., Verifier]
    extra: dict[str, Any]

    def claims(self, **changes: Any) -> dict[str, Any]:
        claims: dict[str, Any] = {
            "aud": self.audience,
            "email": "someone@example.com",
            "email_verified": True,
            "exp": NOW + self.lifetime,
            "iat": NOW,
            "iss": self.issuer,
            "sub": "110169484474386276334",
            **self.extra,
        }
        for name, value in changes.items():
            if value is DROP:
                claims.pop(name, None)
            else:
                claims[name] = value
        return claims

    def sign(self, claims: dict[str, Any] | None = None, key: IssuerKey | None = None, **header: Any) -> str:
        key = key or self.key
        head = {"alg": key.key.alg, "kid": key.kid, "typ": "JWT", **header}
        head = {k: v for k, v in head.items() if v is not DROP}
        signing_input = f"{b64json(head)}.{b64json(self.claims() if claims is None else claims)}"
        return f"{signing_input}.{compact.b64url_encode(key.key.sign(signing_input.encode()))}"

    @property
    def alg(self) -> str:
        return self.key.key.alg


def issuers(emulator: EmulatorClient) -> dict[str, Issuer]:
    """Verifiers find their keys at Google's real URLs: GCPTOKEN_EMULATOR_HOST must point at the
    emulator while they are used."""
    state = emulator.state
    return {
        "google": Issuer(
            "google",
            state.current_key,
            "https://accounts.google.com",
            GOOGLE_AUDIENCE,
            3600,
            lambda **options: Verifier.google(GOOGLE_AUDIENCE, **options),
            {"azp": "someone@example.com"},
        ),
        "iap": Issuer(
            "iap",
            iap.iap_key(state),
            "https://cloud.google.com/iap",
            IAP_AUDIENCE,
            600,
            lambda **options: Verifier.iap(IAP_AUDIENCE, **options),
            {"hd": "example.com", "identity_source": "GOOGLE"},
        ),
        "firebase": Issuer(
            "firebase",
            firebase.firebase_key(state),
            f"https://securetoken.google.com/{FIREBASE_PROJECT}",
            FIREBASE_PROJECT,
            3600,
            lambda **options: Verifier.firebase(FIREBASE_PROJECT, **options),
            {"auth_time": NOW - 100, "user_id": "110169484474386276334"},
        ),
        "oidc": Issuer(
            "oidc",
            state.oidc_key,
            issuer_url(state),
            OIDC_AUDIENCE,
            3600,
            lambda **options: Verifier.oidc(issuer_url(state), OIDC_AUDIENCE, **options),
            {},
        ),
    }
