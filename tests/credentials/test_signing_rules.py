"""One rule for every signer, against the emulator over real HTTP: the claims a key file and IAM
sign (JSON, integer times, iat added), the size of what is signed, the subject of delegation
(signatures stay the service account's), the universe the metadata server signs in, and the
emulator's IAM as Google's answers it (integer exp, proto3 bytes, signBlob's body)."""

from __future__ import annotations

import asyncio
import base64
import math
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest

from gcptoken import (
    Credentials,
    ImpersonatedCredentials,
    InvalidArgumentError,
    MetadataCredentials,
    TokenRequestError,
    load_credentials,
)
from gcptoken.credentials.base import run_flow_sync
from gcptoken.credentials.impersonated import sign_jwt_flow
from gcptoken.jose import compact
from gcptoken.testing import EmulatorClient
from tests.credentials.test_signing import BLOB, assert_signed_by

MAX_BLOB = 1024 * 1024  # gcptoken.credentials.signing.MAX_BLOB, the limit of every signer

IAM = "/v1/projects/-/serviceAccounts/"


@pytest.fixture(autouse=True)
def _at_the_emulator(emulator: EmulatorClient, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GCPTOKEN_EMULATOR_HOST", emulator.host_port)


@pytest.fixture(autouse=True)
def _grants_restored(emulator: EmulatorClient) -> Iterator[None]:
    """The session's emulator is shared: the Token Creator grants made here end with the test."""
    saved = {email: set(members) for email, members in emulator.state.token_creators.items()}
    yield
    with emulator.state.lock:
        emulator.state.token_creators = saved


def signers(emulator: EmulatorClient, key_path: Path) -> list[tuple[str, Credentials, str]]:
    """A key file (signs here) and the metadata server (signs through IAM): name, credential, email."""
    email = emulator.state.default_account.email
    emulator.state.grant_token_creator(email, f"serviceAccount:{email}")
    key = load_credentials(key_path)
    return [("key file", key, key.key.client_email), ("IAM", MetadataCredentials(host=emulator.host_port), email)]  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("claims", "fragment"),
    [
        ({"exp": None}, "exp must be an integer"),
        ({"exp": time.time() + 600}, "exp must be an integer"),
        ({"iat": "now"}, "iat must be an integer"),
        ({"nbf": 1.5}, "nbf must be an integer"),
        ({"exp": 10**400}, "exp must be an integer"),
        ({"x": math.nan}, "not finite"),
        ({"x": [math.inf]}, "not finite"),
        ({"x": datetime.now(timezone.utc)}, "datetime"),
        ({"x": {1: "int key"}}, "not a string"),
        ({"x": b"bytes"}, "bytes"),
    ],
)
def test_claims_are_refused_alike_by_every_signer_before_any_request(
    emulator: EmulatorClient, key_path: Path, claims: dict[str, Any], fragment: str
) -> None:
    for name, credentials, _ in signers(emulator, key_path):
        before = len(emulator.requests())
        with pytest.raises(InvalidArgumentError, match=fragment):
            credentials.sign_jwt(claims)
        with pytest.raises(InvalidArgumentError, match=fragment):
            asyncio.run(credentials.sign_jwt_async(claims))
        assert len(emulator.requests()) == before, name


def test_every_signer_adds_iat_and_exp_and_keeps_the_callers(emulator: EmulatorClient, key_path: Path) -> None:
    for name, credentials, email in signers(emulator, key_path):
        now = int(time.time())
        bare = compact.parse(credentials.sign_jwt({"iss": email}).value).claims
        assert now - 5 <= bare["iat"] <= now + 5 and bare["exp"] - bare["iat"] in range(3595, 3606), name
        given = compact.parse(credentials.sign_jwt({"iat": now - 60, "exp": now + 60, "n": 1.5}).value).claims
        assert (given["iat"], given["exp"], given["n"]) == (now - 60, now + 60, 1.5), name


def test_the_emulator_refuses_a_non_integer_exp_as_iam_does(emulator: EmulatorClient, key_path: Path) -> None:
    email = emulator.state.default_account.email
    emulator.state.grant_token_creator(email, f"serviceAccount:{email}")
    access = MetadataCredentials(host=emulator.host_port).access_token().value
    for exp in (time.time() + 600, None, str(int(time.time()) + 600)):
        with pytest.raises(TokenRequestError) as refused:  # the flow sends what it is given, unchecked
            run_flow_sync(sign_jwt_flow(access, email, {"exp": exp}), None)
        assert refused.value.status == 400


def test_one_size_limit_for_every_signer(emulator: EmulatorClient, key_path: Path) -> None:
    for name, credentials, email in signers(emulator, key_path):
        largest = b"\xff" * MAX_BLOB  # keyless: 1.4 MB of base64 in IAM's body, which the emulator takes
        assert_signed_by(emulator.url, email, credentials.sign_blob(largest), largest)
        before = len(emulator.requests())
        with pytest.raises(InvalidArgumentError, match=f"at most {MAX_BLOB} bytes"):
            credentials.sign_blob(largest + b"x")
        with pytest.raises(InvalidArgumentError, match=f"at most {MAX_BLOB} bytes"):
            asyncio.run(credentials.sign_blob_async(memoryview(largest + b"x")))  # type: ignore[arg-type]
        assert len(emulator.requests()) == before, name


def test_sign_blob_takes_proto3_bytes(emulator: EmulatorClient) -> None:
    email = emulator.state.default_account.email
    emulator.state.grant_token_creator(email, f"serviceAccount:{email}")
    access = MetadataCredentials(host=emulator.host_port).access_token().value
    url = f"{emulator.url}{IAM}{email}:signBlob"
    data = b"\xfb\xff\xfe?"  # standard base64 +//, URL-safe -_, padding
    signed = []
    for payload in (base64.b64encode(data).decode(), base64.urlsafe_b64encode(data).decode().rstrip("=")):
        answer = httpx.post(url, headers={"Authorization": f"Bearer {access}"}, json={"payload": payload})
        assert answer.status_code == 200, answer.text
        signed.append(answer.json()["signedBlob"])
    assert signed[0] == signed[1]
    bearer = {"Authorization": f"Bearer {access}"}
    empty = [httpx.post(url, headers=bearer, json=body) for body in ({}, {"payload": ""})]
    assert [e.status_code for e in empty] == [200, 200] and empty[0].json() == empty[1].json()


def test_a_subject_changes_access_tokens_not_signatures(emulator: EmulatorClient, key_path: Path) -> None:
    for name, credentials, email in signers(emulator, key_path):
        delegated = credentials.with_subject("someone@example.com")
        assert_signed_by(emulator.url, email, delegated.sign_blob(BLOB))
        assert_signed_by(emulator.url, email, asyncio.run(delegated.sign_blob_async(BLOB)))
        assert compact.parse(delegated.sign_jwt({"a": 1}).value).claims["a"] == 1, name
        other = "other@emulated-project.iam.gserviceaccount.com"
        impersonating = delegated.signer(other)
        assert isinstance(impersonating, ImpersonatedCredentials)
        assert getattr(impersonating.source, "subject", None) is None  # the account impersonates, not the user
        assert "delegat" not in impersonating.source.description, name


def test_the_metadata_server_signs_in_its_universe(emulator: EmulatorClient) -> None:
    metadata = MetadataCredentials(host=emulator.host_port)
    run_flow_sync(metadata.signer_email_flow(), None)  # reads the universe: googleapis.com here
    assert metadata.__dict__["_own_signer"].iam_base.startswith("https://iamcredentials.googleapis.com/")
    elsewhere = MetadataCredentials(host=emulator.host_port)
    elsewhere.universe_domain = "universe.example"  # as fetch_universe_domain() records another universe
    run_flow_sync(elsewhere.signer_email_flow(), None)  # no request leaves loopback: only the email is read
    assert elsewhere.__dict__["_own_signer"].iam_base.startswith("https://iamcredentials.universe.example/")
    with pytest.raises(InvalidArgumentError, match=r"not available in universe\.example"):  # before any signing
        elsewhere.with_subject("someone@example.com").access_token(["https://www.googleapis.com/auth/gmail.readonly"])
