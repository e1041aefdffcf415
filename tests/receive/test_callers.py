"""The callers' presets against the emulator: Verifier.google_caller with real service-account ID
tokens (and forged ones no real flow gives), Verifier.compute_engine with the emulated VM's
format=full tokens; every preset and integration refusing a missing audience, and
ANY_AUDIENCE_INSECURE accepted only where it says what it does."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from gcptoken import Verifier
from gcptoken.emulator.metadata.server import LICENSE_ID
from gcptoken.errors import InvalidArgumentError, VerificationError
from gcptoken.integrations.asgi import IdTokenMiddleware, VerifiedClaims
from gcptoken.integrations.wsgi import IdTokenWSGIMiddleware, require_id_token
from gcptoken.receive import flask as flask_receive
from gcptoken.receive.asgi import GoogleCaller, PubSubPush
from gcptoken.testing import EmulatorClient
from gcptoken.verify import ANY_AUDIENCE_INSECURE, REASONS
from tests.receive.callers import AUD, DROP, forged, sa_token


@pytest.fixture(autouse=True)
def _google_is_the_emulator(emulator: EmulatorClient, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GCPTOKEN_EMULATOR_HOST", emulator.host_port)


def reason_of(verifier: Verifier, token: str) -> str:
    with pytest.raises(VerificationError) as refused:
        verifier.verify(token)
    assert refused.value.reason in REASONS
    return refused.value.reason


# -- Verifier.google_caller --------------------------------------------------------------------


def test_only_the_named_accounts_token_for_this_audience_passes(emulator: EmulatorClient) -> None:
    pusher, stranger = emulator.new_key("pusher"), emulator.new_key("stranger")
    verifier = Verifier.google_caller(AUD, service_accounts={pusher["client_email"].upper()})  # any case
    claims = verifier.verify(sa_token(pusher))
    assert claims["email"] == pusher["client_email"] and claims["email_verified"] is True
    assert reason_of(verifier, sa_token(stranger)) == "email_not_allowed"  # wrong account
    assert reason_of(verifier, sa_token(pusher, "https://another-service.a.run.app")) == "audience"
    email = pusher["client_email"]
    assert reason_of(verifier, forged(emulator, email, email_verified=False)) == "email_not_verified"
    assert reason_of(verifier, forged(emulator, email, email_verified=DROP)) == "email_not_verified"
    assert reason_of(verifier, forged(emulator, email, email_verified="true")) == "email_not_verified"
    assert reason_of(verifier, forged(emulator, "someone@gmail.com")) == "email_not_allowed"  # a person's token
    assert reason_of(verifier, forged(emulator, email, email=DROP)) == "missing_claim"
    assert reason_of(verifier, forged(emulator, email, iss="https://evil.example")) == "issuer"
    assert verifier.verify(forged(emulator, email, iss="accounts.google.com"))["email"] == email  # as google-auth


@pytest.mark.parametrize("accounts", [set(), "someone@gmail.com", ["ok@p.iam.gserviceaccount.com", ""], [None]])
def test_the_allowed_accounts_must_be_service_accounts(accounts: Any) -> None:
    with pytest.raises(InvalidArgumentError):
        Verifier.google_caller(AUD, service_accounts=accounts)


# -- Verifier.compute_engine -------------------------------------------------------------------


def vm_token(emulator: EmulatorClient, query: str) -> str:
    path = "/computeMetadata/v1/instance/service-accounts/default/identity"
    response = httpx.get(f"{emulator.url}{path}?audience={AUD}&{query}", headers={"Metadata-Flavor": "Google"})
    assert response.status_code == 200, response.text
    return response.text


def test_compute_engine_admits_the_emulated_vm_and_no_other(emulator: EmulatorClient) -> None:
    state = emulator.state
    full, licensed = vm_token(emulator, "format=full"), vm_token(emulator, "format=full&licenses=TRUE")
    project, number, instance = state.project_id, state.project_number, state.instance

    def admits(**rules: Any) -> Verifier:
        return Verifier.compute_engine(AUD, **{"projects": [project], **rules})

    everything = admits(
        zones=["us-central1-a"],
        instances=[instance.name],
        licenses=[LICENSE_ID],
        service_accounts=[state.default_account.email],
    )
    compute = everything.verify(licensed)["google"]["compute_engine"]
    assert compute["instance_id"] == instance.instance_id
    assert admits(projects=[int(number)], instances=[instance.instance_id]).verify(full)["aud"] == AUD
    assert admits(zones=[f"projects/{number}/zones/us-central1-a"]).verify(full)["aud"] == AUD
    assert reason_of(admits(projects=["another-project", 1]), full) == "project_not_allowed"
    assert reason_of(admits(zones=["europe-west1-b"]), full) == "zone_not_allowed"
    assert reason_of(admits(instances=["another-vm"]), full) == "instance_not_allowed"
    assert reason_of(admits(licenses=[LICENSE_ID]), full) == "license_not_allowed"  # asked without licenses=TRUE
    assert reason_of(admits(licenses=["999"]), licensed) == "license_not_allowed"
    assert reason_of(admits(service_accounts=["other@p.iam.gserviceaccount.com"]), full) == "email_not_allowed"
    with pytest.raises(VerificationError, match="format=full") as standard:
        admits().verify(vm_token(emulator, "format=standard"))
    assert standard.value.reason == "missing_claim"


def test_compute_engine_needs_the_projects() -> None:
    for projects in (None, [], "", [True]):
        with pytest.raises(InvalidArgumentError):
            Verifier.compute_engine(AUD, projects=projects)  # type: ignore[arg-type]


# -- the audience: mandatory everywhere, ANY_AUDIENCE_INSECURE the one way out -------------------

SA = "pusher@emulated-project.iam.gserviceaccount.com"
BUILDERS: dict[str, Callable[[Any], Verifier]] = {
    "constructor": lambda audience: Verifier(audience, certs={"keys": []}),
    "google": Verifier.google,
    "iap": Verifier.iap,
    "firebase": Verifier.firebase,
    "oidc": lambda audience: Verifier.oidc("http://127.0.0.1:9/issuer", audience),
    "service_account": lambda audience: Verifier.service_account(SA, audience),
    "google_caller": lambda audience: Verifier.google_caller(audience, service_accounts=[SA]),
    "compute_engine": lambda audience: Verifier.compute_engine(audience, projects=["emulated-project"]),
}


@pytest.mark.parametrize("preset", BUILDERS)
@pytest.mark.parametrize("audience", [None, "", "   ", [], ("",), "*", [" https://x.example"], b"https://x"])
def test_every_preset_refuses_a_missing_or_wildcard_audience(preset: str, audience: Any) -> None:
    with pytest.raises(InvalidArgumentError):
        BUILDERS[preset](audience)


def test_any_audience_insecure_skips_only_the_audience(emulator: EmulatorClient) -> None:
    pusher = emulator.new_key("any-audience")
    verifier = Verifier.google_caller(ANY_AUDIENCE_INSECURE, service_accounts=[pusher["client_email"]])
    assert verifier.any_audience and verifier.verify(sa_token(pusher, "https://anything.example"))
    assert reason_of(verifier, forged(emulator, pusher["client_email"], aud=DROP)) == "audience"  # still one
    assert reason_of(verifier, forged(emulator, "someone@gmail.com")) == "email_not_allowed"
    assert reason_of(Verifier.google(ANY_AUDIENCE_INSECURE), forged(emulator, SA, aud=[])) == "audience"


@pytest.mark.parametrize(
    "build",
    [
        lambda: Verifier.google([AUD, ANY_AUDIENCE_INSECURE]),  # type: ignore[list-item]  # beside others: meaningless
        lambda: Verifier.iap(ANY_AUDIENCE_INSECURE),  # IAP's audience names the app
        lambda: Verifier.firebase(ANY_AUDIENCE_INSECURE),  # type: ignore[arg-type]  # the project is the issuer
    ],
    ids=["in-a-list", "iap", "firebase"],
)
def test_any_audience_insecure_is_refused_where_it_would_surprise(build: Callable[[], Any]) -> None:
    with pytest.raises(InvalidArgumentError):
        build()
    # Its name as a string (from a configuration file, say) is an ordinary, literal audience.
    assert not Verifier.google("ANY_AUDIENCE_INSECURE").any_audience


async def app(scope: Any, receive: Any, send: Any) -> None:  # pragma: no cover - never served
    raise AssertionError


def wsgi(environ: Any, start_response: Any) -> list[bytes]:  # pragma: no cover - never served
    raise AssertionError


INTEGRATIONS: dict[str, Callable[[Verifier], Any]] = {
    "IdTokenMiddleware": lambda verifier: IdTokenMiddleware(app, verifier),
    "VerifiedClaims": VerifiedClaims,
    "IdTokenWSGIMiddleware": lambda verifier: IdTokenWSGIMiddleware(wsgi, verifier),
    "require_id_token": require_id_token,
    "GoogleCaller": GoogleCaller,
    "PubSubPush": PubSubPush,
    "flask.google_caller": flask_receive.google_caller,
    "flask.pubsub_push": flask_receive.pubsub_push,
}


@pytest.mark.parametrize("integration", INTEGRATIONS)
def test_no_integration_guards_a_service_with_any_audience(integration: str) -> None:
    with pytest.raises(InvalidArgumentError, match="ANY_AUDIENCE_INSECURE"):
        INTEGRATIONS[integration](Verifier.google(ANY_AUDIENCE_INSECURE))
    INTEGRATIONS[integration](Verifier.google(AUD))  # an audience: fine


@pytest.mark.parametrize(
    ("rules", "words"),
    [
        ({"projects": 1.5}, "projects must be a list of names or numbers, not float"),
        ({"projects": [1.5]}, "projects: float is not a project ID"),
        ({"projects": ["*"]}, "projects: '*' is not"),
        ({"projects": [0]}, "projects: 0 is not"),
        ({"zones": "us-central1"}, "zones: 'us-central1' is not a zone such as us-central1-a (not a region)"),
        ({"zones": "*"}, "zones: '*' is not"),
        ({"licenses": "TRUE"}, "licenses: 'TRUE' is not a license ID"),
        ({"licenses": [True]}, "licenses: bool is not"),
        ({"instances": 0}, "instances: 0 is not an instance ID or name"),
        ({"instances": ["Worker_1"]}, "instances: 'Worker_1' is not"),
        ({"instances": {"a": 1}}, "not dict"),
    ],
)
def test_compute_engine_refuses_values_that_can_never_match(rules: dict[str, Any], words: str) -> None:
    with pytest.raises(InvalidArgumentError) as refused:
        Verifier.compute_engine(AUD, **{"projects": ["my-project"], **rules})
    assert words in str(refused.value) and "\n" not in str(refused.value)
