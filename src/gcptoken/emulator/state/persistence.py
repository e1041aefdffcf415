"""Saving and restoring the emulator's state for ``--state-dir``: accounts, their public keys and
the certificates they are published in, Google-managed keys, signing keys and the rotation
timeline, bindings, policies, regional access boundaries, users, OAuth clients and refresh tokens."""

from __future__ import annotations

import datetime
import json
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization

from gcptoken.emulator.keys import key_certificates
from gcptoken.emulator.oauth2.signin_state import OAuthClient
from gcptoken.emulator.state.models import IssuerKey, RefreshGrant, ServiceAccount, User
from gcptoken.emulator.state.state import EmulatorState
from gcptoken.errors import CredentialsError
from gcptoken.jose import jws

__all__ = ["load", "state_from_bytes", "to_json"]


def to_json(self: EmulatorState) -> dict[str, Any]:
    with self.lock:
        return {
            "version": 1,
            "project_id": self.project_id,
            "project_number": self.project_number,
            "issuer_keys": [key.key.private_pem() for key in self.issuer_keys],
            "signing_kid": self.signing_kid,
            "switch_at": self.switch_at,
            "token_creators": {email: sorted(members) for email, members in self.token_creators.items()},
            "key_admins": {email: sorted(members) for email, members in self.key_admins.items()},
            "lifetime_extension": sorted(self.lifetime_extension),
            "delegation_grants": {client: list(scopes) for client, scopes in self.delegation_grants.items()},
            "removed_agent_roles": sorted(self.removed_agent_roles),
            "allowed_locations": {name: dict(boundary) for name, boundary in self.allowed_locations.items()},
            "oauth_client": list(self.oauth_client),
            "users": {email: user.sub for email, user in self.users.items()},
            "oauth_clients": [
                [c.client_id, c.client_secret, c.kind, c.project_number, c.name] for c in self.signin.clients.values()
            ],
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
                        for kid, k in (a.keys | a.disabled_keys).items()
                    },
                    "certificates": {
                        kid: pem for kid, pem in a.certificates.items() if kid in a.keys or kid in a.disabled_keys
                    },
                    "disabled": sorted(a.disabled_keys),
                    "uploaded": sorted(a.uploaded),
                }
                for a in self.service_accounts.values()
            ],
            # The Google-managed keys that sign signJwt and signBlob: kept, so what they signed still verifies.
            "system_keys": {email: [kid, key.private_pem()] for email, (kid, key) in self.system_keys.items()},
        }


def load(path: Path, **options: Any) -> EmulatorState:
    """State saved by ``to_json``; a file of another version is refused with ValueError."""
    try:
        raw = path.read_bytes()
    except OSError:
        raise ValueError(f"{path} is not readable; remove it to start afresh") from None
    return state_from_bytes(raw, str(path), **options)


def state_from_bytes(raw: bytes, path: str, **options: Any) -> EmulatorState:
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise ValueError(f"{path} is not readable JSON; remove it to start afresh") from None
    if not isinstance(data, dict) or data.get("version") != 1:
        raise ValueError(f"{path} is not an emulator state file of version 1")
    try:
        return _from_json(data, **options)
    except (KeyError, TypeError, ValueError, CredentialsError) as exc:
        raise ValueError(f"{path} is damaged ({type(exc).__name__}); remove it to start afresh") from None


def _from_json(data: dict[str, Any], **options: Any) -> EmulatorState:
    state = EmulatorState(project_id=data["project_id"], project_number=data["project_number"], **options)
    state.issuer_keys = [IssuerKey.create(jws.load_private_key_pem(pem)) for pem in data["issuer_keys"]]
    state.signing_kid = data.get("signing_kid") or state.issuer_keys[0].kid
    state.switch_at = data.get("switch_at")
    state.service_accounts = {}
    for entry in data["service_accounts"]:
        account = ServiceAccount(entry["email"], entry["unique_id"], state.project_id, entry["display_name"])
        account.keys = {kid: jws.public_key_from_pem(pem) for kid, pem in entry["keys"].items()}
        account.certificates = _certificates(account, entry.get("certificates", {}))
        account.disabled_keys = {
            kid: account.keys.pop(kid) for kid in entry.get("disabled", [])
        }  # absent in older files
        account.uploaded = set(entry.get("uploaded", [])) & account.certificates.keys()
        state.service_accounts[account.email] = account
    for email, (kid, pem) in data.get("system_keys", {}).items():
        if kid in state.service_accounts[email].keys:
            state.system_keys[email] = (kid, jws.load_private_key_pem(pem))
    state.default_account = state.service_accounts[f"default@{state.project_id}.iam.gserviceaccount.com"]
    state.token_creators = {email: set(members) for email, members in data.get("token_creators", {}).items()}
    state.key_admins = {email: set(members) for email, members in data.get("key_admins", {}).items()}
    state.lifetime_extension = set(data.get("lifetime_extension", []))
    grants = data.get("delegation_grants", {})  # absent in older files
    state.delegation_grants = {client: tuple(scopes) for client, scopes in grants.items()}
    state.removed_agent_roles = set(data.get("removed_agent_roles", []))  # absent in older files
    state.allowed_locations = _allowed_locations(data.get("allowed_locations", {}))  # absent in older files
    if "oauth_client" in data:
        state.oauth_client = (data["oauth_client"][0], data["oauth_client"][1])
    state.users = {email: User(email, sub) for email, sub in data.get("users", {}).items()}
    for client_id, secret, kind, number, name in data.get("oauth_clients", []):
        state.signin.add(OAuthClient(client_id, secret, kind, number, name))
    state.refresh_tokens = {
        token: RefreshGrant(email, client, tuple(scopes))
        for token, (email, client, scopes) in data.get("refresh_tokens", {}).items()
    }
    return state


def _allowed_locations(saved: Any) -> dict[str, dict[str, Any]]:
    if not isinstance(saved, dict):
        raise TypeError("allowed_locations")
    boundaries = {}
    for name, boundary in saved.items():
        locations, value = boundary["locations"], boundary["encodedLocations"]
        if not (isinstance(locations, list) and all(isinstance(item, str) for item in locations)):
            raise TypeError("allowed_locations")
        if not isinstance(value, str) or not value.isprintable():  # it is sent as a header value
            raise TypeError("allowed_locations")
        boundaries[str(name)] = {"locations": list(locations), "encodedLocations": value}
    return boundaries


def _certificates(account: ServiceAccount, saved: dict[str, str]) -> dict[str, str]:
    """The saved certificate of each key; a state file from before certificates were saved gets
    one made now (and saved with the state, so it stays the same from then on)."""
    now = datetime.datetime.now(datetime.timezone.utc)
    name = key_certificates.common_name(account.email)
    certificates = {}
    for kid, public in account.keys.items():
        pem = saved.get(kid)
        if not isinstance(pem, str) or jws.public_key_from_pem(pem).to_jwk(kid) != public.to_jwk(kid):
            pem = key_certificates.reissued(name, public, now)
        certificates[kid] = pem
    return certificates
