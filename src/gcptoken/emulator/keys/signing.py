"""Google's ID-token signing keys as the emulator keeps them: published before they sign, a
switch after the published max-age (or at once), old keys published until retired."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from gcptoken.emulator.state.models import PUBLISHED_KEYS, IssuerKey
from gcptoken.jose import jws

__all__ = ["SigningKeys"]


class SigningKeys:
    """The signing-key part of EmulatorState (a mixin: the state owns the attributes)."""

    issuer_keys: list[IssuerKey]
    signing_kid: str
    switch_at: float | None
    certs_max_age: int
    clock: Callable[[], float]
    lock: threading.RLock

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
