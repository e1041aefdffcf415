"""Signing: the jwt-bearer assertions gcptoken sends, a key file's sign_blob_async (local: no
transport, no thread) and the ID tokens the emulator issues, each against the raw RSA signature of
the same size of input."""

from __future__ import annotations

import asyncio

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from bench.timing import Contender, Row, interleaved
from gcptoken.credentials.service_account import ServiceAccountCredentials, ServiceAccountKey, assertion
from gcptoken.emulator.http.server import EmulatorServer
from gcptoken.jose import jws

__all__ = ["signing_rows"]

GOAL = 0.9


def signing_rows(emulator: EmulatorServer, count: int, rounds: int) -> list[Row]:
    key = ServiceAccountKey.from_info(emulator.key_file("bench-signer"), "bench key")
    private = key.signing_key.key
    assert isinstance(private, rsa.RSAPrivateKey)
    state = emulator.state
    account = state.default_account
    sample = jws.encode(
        {"iss": key.client_email, "aud": "x", "target_audience": "y", "iat": 1, "exp": 2}, key.signing_key
    )
    signing_input = sample.rpartition(".")[0].encode()
    pkcs1, sha256 = padding.PKCS1v15(), hashes.SHA256()

    def raw(chunk: range) -> int:
        for _ in chunk:
            private.sign(signing_input, pkcs1, sha256)
        return len(chunk)

    def assertions(chunk: range) -> int:
        for i in chunk:
            assertion(key, {"target_audience": f"https://svc-{i}.a.run.app"})
        return len(chunk)

    credentials = ServiceAccountCredentials(key, "bench key")
    loop = asyncio.new_event_loop()

    async def sign_many(chunk: range) -> None:
        for _ in chunk:
            await credentials.sign_blob_async(signing_input)

    def async_blobs(chunk: range) -> int:
        loop.run_until_complete(sign_many(chunk))
        return len(chunk)

    def issuance(chunk: range) -> int:
        for i in chunk:
            state.service_account_id_token(account, f"https://svc-{i}.a.run.app")
        return len(chunk)

    contenders: dict[str, Contender] = {
        "raw cryptography RSA sign": raw,
        "gcptoken jwt-bearer assertion": assertions,
        "gcptoken sign_blob_async (key file)": async_blobs,
        "emulator ID token issuance": issuance,
    }
    try:
        rates = interleaved(contenders, count, rounds, chunk=10)
    finally:
        loop.close()
    raw_rate = rates["raw cryptography RSA sign"]
    rows = []
    for name, rate in rates.items():
        ratio = rate / raw_rate
        row = Row("sign", name, round(rate), "tokens/s", round(ratio, 3), "raw RSA sign")
        if name != "raw cryptography RSA sign":
            row.goal, row.meets = f">= {GOAL}x raw", ratio >= GOAL
        rows.append(row)
    return rows
