"""The emulated AWS: one account, an EC2 instance with an IAM role (whose temporary keys its
instance metadata service hands out), IAM users with long-lived keys, and the keys it issued, so
the emulated Google STS can check a SigV4 signature as AWS would."""

from __future__ import annotations

import secrets
import string
import time
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["AWS_KEY_LIFETIME", "AwsKey", "AwsWorld"]

AWS_KEY_LIFETIME = 3600
_UPPER = string.ascii_uppercase + string.digits


def _key_id(prefix: str) -> str:
    return prefix + "".join(secrets.choice(_UPPER) for _ in range(16))


@dataclass
class AwsKey:
    access_key_id: str
    secret_access_key: str = field(repr=False)
    arn: str
    user_id: str
    session_token: str | None = field(default=None, repr=False)
    expires_at: float | None = None  # None: a long-lived IAM user key


@dataclass
class AwsWorld:
    clock: Callable[[], float] = time.time
    account_id: str = "111122223333"
    role: str = "emulated-role"
    zone: str = "us-east-1a"
    imdsv2_required: bool = False
    instance_id: str = field(default_factory=lambda: "i-" + secrets.token_hex(9)[:17])
    keys: dict[str, AwsKey] = field(default_factory=dict)
    sessions: dict[str, float] = field(default_factory=dict)  # IMDSv2 token → expiry
    _role_key: AwsKey | None = None

    @property
    def region(self) -> str:
        return self.zone[:-1]

    def role_key(self) -> AwsKey:
        """The instance role's temporary keys, renewed five minutes before they expire (as EC2 does)."""
        key = self._role_key
        if key is None or key.expires_at is None or key.expires_at - self.clock() < 300:
            key = AwsKey(
                _key_id("ASIA"),
                secrets.token_urlsafe(30)[:40],
                f"arn:aws:sts::{self.account_id}:assumed-role/{self.role}/{self.instance_id}",
                f"AROA{secrets.token_hex(8).upper()}:{self.instance_id}",
                "IQoJ" + secrets.token_urlsafe(180),
                self.clock() + AWS_KEY_LIFETIME,
            )
            self.keys[key.access_key_id] = key
            self._role_key = key
        return key

    def expire(self, access_key_id: str) -> bool:
        """The key stops working now (IMDS hands out a new role key next time); False if unknown."""
        key = self.keys.get(access_key_id)
        if key is None:
            return False
        key.expires_at = self.clock() - 1
        return True

    def create_user_key(self, user: str) -> AwsKey:
        key = AwsKey(
            _key_id("AKIA"),
            secrets.token_urlsafe(30)[:40],
            f"arn:aws:iam::{self.account_id}:user/{user}",
            f"AIDA{secrets.token_hex(8).upper()}",
        )
        self.keys[key.access_key_id] = key
        return key

    def open_session(self, ttl: int) -> str:
        token = "AQAE" + secrets.token_urlsafe(42)
        self.sessions[token] = self.clock() + ttl
        return token

    def session_valid(self, token: str) -> bool:
        expiry = self.sessions.get(token)
        return expiry is not None and expiry > self.clock()
