"""Async calls never hold the event loop for blocking work, against the emulator over real HTTP: a
credential that runs a program (an executable credential source; gcloud in the peers' tests) runs
every async path in a thread, and a key file signs without a transport, its first parse in a thread.

No timing is asserted: the executable waits for a file that only the event loop creates, so a
blocked loop makes the executable time out."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from gcptoken import Credentials, ImpersonatedCredentials, load_credentials
from gcptoken.credentials import base
from gcptoken.credentials.external_account import FederatedCredentials
from gcptoken.emulator import EmulatorServer
from gcptoken.jose import jws
from tests.credentials.test_signing import BLOB, assert_signed_by


@pytest.fixture(scope="module")
def state_dir(tmp_path_factory: pytest.TempPathFactory) -> Any:
    directory = tmp_path_factory.mktemp("async-state")
    with EmulatorServer(state_dir=directory) as server:
        yield server, directory


def executable_account(directory: Path, tmp_path: Path, flag: Path) -> Path:
    """The state dir's external account with an executable source that answers once ``flag`` exists."""
    response = {
        "version": 1,
        "success": True,
        "token_type": "urn:ietf:params:oauth:token-type:jwt",
        "id_token": (directory / "subject-token").read_text().strip(),
        "expiration_time": 4102444800,
    }
    script = tmp_path / "wait-for-flag.sh"
    wait = f"while [ ! -e '{flag}' ]; do sleep 0.02; done"
    script.write_text(f"#!/bin/sh\n{wait}\nprintf '%s' '{json.dumps(response)}'\n")
    script.chmod(0o700)
    info = json.loads((directory / "external-account.json").read_text())
    info["credential_source"] = {"executable": {"command": str(script), "timeout_millis": 5000}}
    path = tmp_path / "executable-account.json"
    path.write_text(json.dumps(info))
    return path


async def while_the_loop_runs(flag: Path, call: Awaitable[Any]) -> Any:
    """``call``, with the flag created by the event loop once the call is under way."""
    task = asyncio.ensure_future(call)
    await asyncio.sleep(0.1)
    flag.touch()
    return await task


@pytest.mark.parametrize(
    "call",
    [
        lambda c: c.sign_jwt_async({"aud": "x"}),
        lambda c: c.sign_blob_async(BLOB),
        lambda c: c.id_token_async("https://svc.example.com"),
        lambda c: c.access_token_async(refresh=True),
        lambda c: c.source.access_token_async(),  # the federated credential itself
    ],
)
def test_an_executable_source_runs_off_the_event_loop(
    state_dir: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    call: Callable[[ImpersonatedCredentials], Awaitable[Any]],
) -> None:
    server, directory = state_dir
    monkeypatch.setenv("GCPTOKEN_EMULATOR_HOST", server.url.removeprefix("http://"))
    monkeypatch.setenv("GOOGLE_EXTERNAL_ACCOUNT_ALLOW_EXECUTABLES", "1")
    flag = tmp_path / "flag"
    credentials = load_credentials(executable_account(directory, tmp_path, flag))
    assert isinstance(credentials, ImpersonatedCredentials) and isinstance(credentials.source, FederatedCredentials)
    assert credentials.runs_programs() and credentials.with_subject("u@example.com").runs_programs()
    assert asyncio.run(while_the_loop_runs(flag, call(credentials))) is not None


def test_a_key_file_signs_async_without_a_transport_and_parses_off_the_loop(
    emulator: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("GCPTOKEN_EMULATOR_HOST", emulator.host_port)
    info = emulator.new_key("async-signer")  # a key this process has never parsed
    path = tmp_path / "key.json"
    path.write_text(json.dumps(info))
    credentials: Credentials = load_credentials(path)
    parsed_on: list[threading.Thread] = []
    real_load = jws.load_private_key_pem

    def recording(pem: str) -> Any:
        parsed_on.append(threading.current_thread())
        return real_load(pem)

    def no_transport(timeout: float | None) -> Any:
        raise AssertionError("local signing built a transport")

    monkeypatch.setattr(jws, "load_private_key_pem", recording)
    monkeypatch.setattr(base, "_async_transport", no_transport)
    for delegated in (credentials, credentials.with_subject("u@example.com")):
        signature = asyncio.run(delegated.sign_blob_async(BLOB))
        assert_signed_by(emulator.url, info["client_email"], signature)
        assert asyncio.run(delegated.sign_jwt_async({"a": 1})).kind == "jwt"
    assert parsed_on[0] is not threading.main_thread()  # the first parse (jws caches it after) ran in a thread


def test_a_key_files_first_async_token_parses_off_the_loop(
    emulator: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("GCPTOKEN_EMULATOR_HOST", emulator.host_port)
    parsed_on: list[threading.Thread] = []
    real_load = jws.load_private_key_pem

    def recording(pem: str) -> Any:
        parsed_on.append(threading.current_thread())
        return real_load(pem)

    monkeypatch.setattr(jws, "load_private_key_pem", recording)
    for name, call in (
        ("direct", lambda c: c.access_token_async()),
        ("impersonating", lambda c: ImpersonatedCredentials(c, c.key.client_email).id_token_async("https://x.example")),
    ):
        info = emulator.new_key(f"first-parse-{name}")  # a key never parsed before
        emulator.state.grant_token_creator(info["client_email"], f"serviceAccount:{info['client_email']}")
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps(info))
        parsed_on.clear()
        assert asyncio.run(call(load_credentials(path))).value
        assert parsed_on and parsed_on[0] is not threading.main_thread(), name
