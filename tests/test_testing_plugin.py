"""The pytest plugin as a user's test suite uses it."""

from __future__ import annotations

import os

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from gcptoken import MetadataCredentials, ServiceAccountCredentials, Verifier, load_credentials
from gcptoken.senders import Sender, TaskOptions
from gcptoken.servers.serving import AsgiServer, bind
from gcptoken.testing import EmulatorClient

AUD = "https://svc-plugin.a.run.app"


def test_gcptoken_env_points_every_source_at_the_emulator(
    gcptoken_env: dict[str, str], gcptoken_emulator: EmulatorClient
) -> None:
    certs = f"{gcptoken_emulator.url}/oauth2/v3/certs"
    credentials = load_credentials()
    assert isinstance(credentials, ServiceAccountCredentials)
    assert Verifier(AUD, certs=certs).verify(credentials.id_token(AUD).value)["aud"] == AUD
    before = len(gcptoken_emulator.requests("/computeMetadata/v1/instance/service-accounts/default/identity"))
    assert Verifier(AUD, certs=certs).verify(MetadataCredentials().id_token(AUD).value)["aud"] == AUD
    after = len(gcptoken_emulator.requests("/computeMetadata/v1/instance/service-accounts/default/identity"))
    assert after == before + 1
    assert gcptoken_env["GCE_METADATA_HOST"] == gcptoken_emulator.host_port
    assert os.environ["GCE_METADATA_ROOT"] == gcptoken_env["GCE_METADATA_ROOT"] == gcptoken_emulator.host_port


def test_gcptoken_sender_calls_a_task_handler_as_cloud_tasks_would(
    gcptoken_sender: Sender, gcptoken_emulator: EmulatorClient
) -> None:
    invoker = gcptoken_emulator.new_key("tasks-invoker")["client_email"]
    verifier = Verifier(AUD, certs=f"{gcptoken_emulator.url}/oauth2/v3/certs")

    async def handler(request: Request) -> PlainTextResponse:  # a user's handler, as in production
        claims = verifier.verify(request.headers["authorization"].removeprefix("Bearer "))
        queue = request.headers["x-cloudtasks-queuename"]
        return PlainTextResponse(f"{claims['email']} {queue} {(await request.body()).decode()}")

    with AsgiServer(Starlette(routes=[Route("/work", handler, methods=["POST"])]), bind("127.0.0.1", 0)) as app:
        delivery = gcptoken_sender.send(
            "tasks", f"{app.url}/work", invoker, "job-1", TaskOptions(queue="jobs"), audience=AUD
        )
    assert delivery.acknowledged and delivery.body == f"{invoker} jobs job-1".encode()
