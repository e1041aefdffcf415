"""Verifying ID tokens: gcptoken against raw RSA, PyJWT, authlib and google-auth, distinct tokens
and a repeated one, keys from the emulator (google-auth's verify_token fetches them per call, as
it does against Google)."""

from __future__ import annotations

import time
import warnings
from typing import Any

import httpx
import jwt as pyjwt
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from bench.timing import Contender, Row, interleaved
from gcptoken import Verifier
from gcptoken.emulator.http.server import EmulatorServer
from gcptoken.jose import compact, jws
from gcptoken.jose.compact import TO_STANDARD, b64_decode_translated, json_loads

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # authlib.jose announces its own deprecation on import
    from authlib.jose import JsonWebToken

__all__ = ["verify_rows"]

AUD = "https://bench.a.run.app"
ISSUER = "https://accounts.google.com"
DISTINCT_GOAL = 0.8
REPEATED_GOAL = 10.0


def _tokens(emulator: EmulatorServer, count: int) -> list[str]:
    state = emulator.state
    now = int(time.time())
    key = state.current_key
    return [
        jws.encode(
            {
                "aud": AUD,
                "azp": "bench@p.iam.gserviceaccount.com",
                "email": "bench@p.iam.gserviceaccount.com",
                "email_verified": True,
                "exp": now + 3600,
                "iat": now,
                "iss": ISSUER,
                "sub": str(100000000000000000000 + i),
            },
            key.key,
            kid=key.kid,
        )
        for i in range(count)
    ]


def verify_rows(emulator: EmulatorServer, count: int, rounds: int) -> list[Row]:
    import google.auth.transport.requests
    from google.auth import jwt as google_jwt
    from google.oauth2 import id_token as google_id_token

    tokens = _tokens(emulator, count)
    public = emulator.state.current_key.key.key.public_key()
    assert isinstance(public, rsa.RSAPublicKey)
    v1_certs = httpx.get(f"{emulator.url}/oauth2/v1/certs").json()
    verifier = Verifier(AUD, certs=f"{emulator.url}/oauth2/v3/certs")
    split = []
    for token in tokens:
        head, _, signature = token.rpartition(".")
        split.append((head.encode(), compact.b64url_decode(signature)))
    pkcs1, sha256 = padding.PKCS1v15(), hashes.SHA256()
    authlib = JsonWebToken(["RS256"])
    claims_options: Any = {"iss": {"essential": True, "value": ISSUER}, "aud": {"essential": True, "value": AUD}}
    request: Any = google.auth.transport.requests.Request()
    certs_url = f"{emulator.url}/oauth2/v1/certs"

    def raw(chunk: range) -> int:
        for i in chunk:
            signing_input, signature = split[i]
            public.verify(signature, signing_input, pkcs1, sha256)
        return len(chunk)

    def python_floor(chunk: range) -> int:
        """What any Python verifier must at least do: decode the payload and signature, parse
        the JSON, call RSA. No checks at all: the ceiling for the row below."""
        for i in chunk:
            data = tokens[i].encode("ascii")
            first = data.find(b".")
            second = data.find(b".", first + 1)
            standard = data.translate(TO_STANDARD)
            json_loads(b64_decode_translated(standard[first + 1 : second]))
            public.verify(b64_decode_translated(standard[second + 1 :]), data[:second], pkcs1, sha256)
        return len(chunk)

    def ours(chunk: range) -> int:
        for i in chunk:
            verifier.verify(tokens[i])
        return len(chunk)

    def ours_repeated(chunk: range) -> int:
        token = tokens[0]
        for _ in chunk:
            verifier.verify(token)
        return len(chunk)

    def with_pyjwt(chunk: range) -> int:
        for i in chunk:
            pyjwt.decode(tokens[i], public, algorithms=["RS256"], audience=AUD, issuer=ISSUER)
        return len(chunk)

    def with_authlib(chunk: range) -> int:
        for i in chunk:
            authlib.decode(tokens[i], public, claims_options=claims_options).validate()
        return len(chunk)

    def google_auth_decode(chunk: range) -> int:
        picked = chunk[::5]  # ~20x slower: every fifth token keeps the run short
        for i in picked:
            google_jwt.decode(tokens[i], certs=v1_certs, audience=AUD)
        return len(picked)

    def google_auth_verify_token(chunk: range) -> int:
        picked = chunk[::25]  # fetches the certs over HTTP on every call
        for i in picked:
            google_id_token.verify_token(tokens[i], request, audience=AUD, certs_url=certs_url)
        return len(picked)

    contenders: dict[str, Contender] = {
        "raw cryptography RSA verify": raw,
        "Python floor: decode + RSA, no checks": python_floor,
        "gcptoken Verifier": ours,
        "gcptoken Verifier, repeated token": ours_repeated,
        "PyJWT jwt.decode": with_pyjwt,
        "authlib JsonWebToken.decode": with_authlib,
        "google-auth jwt.decode": google_auth_decode,
        "google-auth id_token.verify_token": google_auth_verify_token,
    }

    def forget_results() -> None:  # every chunk's tokens unseen: the distinct row is the full path
        verifier.results.clear()
        verifier.verify(tokens[0])

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # authlib's deprecation notices are not ours to fix
        rates = interleaved(contenders, count, rounds, chunk=50, before_chunk=forget_results)
    raw_rate = rates["raw cryptography RSA verify"]
    rows = []
    for name, rate in rates.items():
        ratio = rate / raw_rate
        row = Row("verify", name, round(rate), "tokens/s", round(ratio, 3), "raw RSA verify")
        if name == "gcptoken Verifier":
            row.goal, row.meets = f">= {DISTINCT_GOAL}x raw", ratio >= DISTINCT_GOAL
        elif name.endswith("repeated token"):
            row.goal, row.meets = f">= {REPEATED_GOAL:g}x raw", ratio >= REPEATED_GOAL
        rows.append(row)
    return rows
