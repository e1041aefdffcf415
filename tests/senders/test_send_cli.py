"""``gcptoken send --as PRODUCT``, run in-process as a user runs it: against the emulator over real
HTTP, to a service on 127.0.0.1; the answer's status on stderr, its body on stdout, and the exit
status saying what happened (0 acknowledged, 1 another answer, 2 bad input, 3 unreachable, 4 Google
would not deliver)."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pytest

from gcptoken import Verifier
from gcptoken.cli.main import main
from gcptoken.senders.products import acknowledges
from gcptoken.testing import EmulatorClient
from tests.senders.receiver import Receiver


@pytest.fixture
def emulator_env(emulator: EmulatorClient, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GCPTOKEN_EMULATOR_HOST", emulator.host_port)


@pytest.fixture
def account(emulator: EmulatorClient, emulator_env: None) -> str:
    return emulator.new_key("cli-invoker")["client_email"]


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_a_cloud_tasks_task_reaches_the_handler(
    emulator: EmulatorClient, receiver: Receiver, account: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "task.json").write_text('{"to": "a@example.com"}')
    url = f"{receiver.url}/tasks/email"
    argv = ["send", "--as", "tasks", "--service-account", account, url, "--data", f"@{tmp_path / 'task.json'}"]
    argv += ["-H", "Content-Type: application/json", "--queue", "emails", "--retry-count", "1", "-v"]
    code, out, err = _run(argv, capsys)
    assert code == 0, err
    assert out == "handled 23 bytes\n"
    assert f"gcptoken: Cloud Tasks: POST {url}: HTTP 200 OK" in err.splitlines()
    arrived = receiver.only()
    assert arrived.body == b'{"to": "a@example.com"}' and arrived.headers["content-type"] == "application/json"
    assert arrived.headers["x-cloudtasks-queuename"] == "emails"
    assert arrived.headers["x-cloudtasks-taskretrycount"] == "1"
    assert Verifier(url, certs=f"{emulator.url}/oauth2/v3/certs").verify(arrived.token)["email"] == account
    assert arrived.token not in err + out and "Bearer <ID token, aud " in err  # -v shows the request, not the token


def test_an_eventarc_event_from_stdin(
    receiver: Receiver, account: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"hello")))
    argv = ["send", "--as", "eventarc", "--service-account", account, receiver.url + "/", "--data", "-"]
    code, _, err = _run([*argv, "--attribute", "kind=new", "--topic", "orders"], capsys)
    assert code == 0, err
    arrived = receiver.only()
    assert arrived.headers["ce-source"].endswith("/topics/orders")
    assert b'"data": "aGVsbG8="' in arrived.body and b'"attributes": {"kind": "new"}' in arrived.body


def test_an_answer_that_is_not_2xx_exits_1(
    receiver: Receiver, account: str, capsys: pytest.CaptureFixture[str]
) -> None:
    receiver.status = 500
    code, out, err = _run(["send", "--as", "scheduler", "--service-account", account, f"{receiver.url}/cron"], capsys)
    assert code == 1 and out == "handled 0 bytes\n"
    assert "HTTP 500" in err and "Cloud Scheduler would retry" in err


def test_each_product_acknowledges_what_it_counts_as_success(
    receiver: Receiver, account: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Eventarc delivers through Pub/Sub push, which acks only 102, 200, 201, 202, 204: a 203 is
    retried there, though it is 2xx; Cloud Tasks takes any 2xx, Workflows anything below 400."""
    receiver.status = 203
    code, _, err = _run(["send", "--as", "eventarc", "--service-account", account, f"{receiver.url}/e"], capsys)
    assert code == 1 and "not acknowledged (only 102, 200, 201, 202 or 204, as Pub/Sub push is)" in err
    assert _run(["send", "--as", "tasks", "--service-account", account, f"{receiver.url}/t"], capsys)[0] == 0
    table = {
        "eventarc": {102: True, 200: True, 204: True, 203: False, 206: False, 299: False, 302: False},
        "tasks": {200: True, 203: True, 299: True, 102: False, 302: False, 404: False},
        "scheduler": {200: True, 206: True, 299: True, 102: False, 302: False, 500: False},
        "workflows": {200: True, 203: True, 302: True, 399: True, 400: False, 503: False},
    }
    for product, statuses in table.items():
        assert {status: acknowledges(product, status) for status in statuses} == statuses, product


@pytest.mark.parametrize(
    ("product", "header", "words"),
    [
        ("eventarc", "X-Mine: 1", "Eventarc sends no headers of a trigger's own; the event is set by --event-type"),
        ("eventarc", "ce-type: evil", "Eventarc sends no headers"),
        ("tasks", "X-CloudTasks-QueueName: evil", "Cloud Tasks sets it itself; use --queue (TaskOptions.queue)"),
        ("tasks", "x-cloudtasks-taskretrycount: 9", "use --retry-count"),
        ("tasks", "X-CloudTasks-Whatever: 1", "X-CloudTasks-* are its service headers"),
        ("tasks", "User-Agent: mine", "it replaces a task's User-Agent with Google-Cloud-Tasks"),
        ("scheduler", "User-Agent: mine", "it replaces a job's User-Agent with Google-Cloud-Scheduler"),
        ("scheduler", "X-CloudScheduler: false", "Cloud Scheduler sets it itself; it is always true"),
        ("scheduler", "X-CloudScheduler-JobName: evil", "use --job (JobOptions.job)"),
        ("scheduler", "X-CloudScheduler-ScheduleTime: 0", "use --schedule-time"),
    ],
)
def test_a_header_the_product_sets_itself_is_refused_not_replaced(
    receiver: Receiver, account: str, capsys: pytest.CaptureFixture[str], product: str, header: str, words: str
) -> None:
    argv = ["send", "--as", product, "--service-account", account, f"{receiver.url}/x", "-H", header]
    code, out, err = _run(argv, capsys)
    assert code == 2 and out == "" and len(err.splitlines()) == 1 and words in err, err
    assert receiver.arrived == []


def test_when_google_would_not_deliver_nothing_is_sent(
    receiver: Receiver, account: str, capsys: pytest.CaptureFixture[str], tasks_agent_without_its_role: None
) -> None:
    code, out, err = _run(["send", "--as", "tasks", "--service-account", account, f"{receiver.url}/x"], capsys)
    assert code == 4 and out == ""
    assert err.startswith(f"gcptoken: not delivered: Cloud Tasks cannot mint an ID token for {account}: ")
    assert err.endswith("; the target receives nothing\n") and err.count("\n") == 1
    assert receiver.arrived == []


@pytest.mark.parametrize(
    ("words", "expected"),
    [
        (["--as", "tasks", "--service-account", "SA", "ftp://127.0.0.1/x"], "must start with http:// or https://"),
        (["--as", "tasks", "--service-account", "SA", "https://example.com/x"], "is not this machine"),
        (["--as", "pubsub", "--service-account", "SA", "URL"], "invalid choice: 'pubsub'"),
        (["--as", "tasks", "URL"], "required: --service-account"),
        (["--as", "tasks", "--service-account", "SA", "URL", "--data", "@/nonexistent/body"], "does not exist"),
        (["--as", "tasks", "--service-account", "SA", "URL", "--job", "nightly"], "--job is for --as scheduler"),
        (["--as", "tasks", "--service-account", "SA", "URL", "-H", "no colon"], "'Name: value'"),
        (["--as", "eventarc", "--service-account", "SA", "URL", "-X", "GET"], "Eventarc always sends POST"),
        (["--as", "workflows", "--service-account", "SA", "URL", "--data", "{"], "not JSON"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    receiver: Receiver, emulator_env: None, capsys: pytest.CaptureFixture[str], words: list[str], expected: str
) -> None:
    account = "invoker@emulated-project.iam.gserviceaccount.com"  # never reached: the input is refused first
    argv = ["send", *[account if w == "SA" else f"{receiver.url}/x" if w == "URL" else w for w in words]]
    try:
        code, _, err = _run(argv, capsys)
    except SystemExit as exited:  # argparse's own refusals
        code, err = int(str(exited.code)), capsys.readouterr().err
    assert code == 2 and expected in err and err.count("\n") == 1 and "Traceback" not in err
    assert receiver.arrived == []


def test_without_an_emulator_it_says_how_to_start_one(
    receiver: Receiver, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GCPTOKEN_EMULATOR_HOST")
    argv = ["send", "--as", "tasks", "--service-account", "a@b.iam.gserviceaccount.com", f"{receiver.url}/x"]
    code, _, err = _run(argv, capsys)
    assert code == 2 and "start 'gcptoken emulator'" in err
    code, _, err = _run([*argv, "--emulator", "127.0.0.1:9"], capsys)
    assert code == 3 and "the emulator: cannot reach 127.0.0.1:9" in err
    assert receiver.arrived == []


def test_a_redirect_is_shown_not_followed(receiver: Receiver, account: str, capsys: pytest.CaptureFixture[str]) -> None:
    receiver.status, receiver.answer_headers = 302, {"Location": "https://elsewhere.example/next"}
    code, _, err = _run(["send", "--as", "tasks", "--service-account", account, f"{receiver.url}/old"], capsys)
    assert code == 1 and "redirected to https://elsewhere.example/next: not followed here" in err
    assert len(receiver.arrived) == 1
