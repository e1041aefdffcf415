"""The Google products that call a user's service with an ID token for a service account the user
chose (Pub/Sub push, Cloud Tasks, Cloud Scheduler, Eventarc, Workflows), and how the emulator mints
that token as they would.

Each product mints through its service agent, ``service-PROJECT_NUMBER@gcp-sa-PRODUCT.iam.
gserviceaccount.com``, which needs ``iam.serviceAccounts.getOpenIdToken`` on the account. Google
grants it through the agent's project-level role (roles/pubsub.serviceAgent and the like) in projects
set up since 2021; older projects, or one where that role was taken away, need
roles/iam.serviceAccountTokenCreator on the account for the agent
(https://cloud.google.com/pubsub/docs/authenticate-push-subscriptions, "Service agent"). Without
either, or for an account that does not exist, the product cannot mint: the user's service receives
nothing, and the product records a failed attempt (Pub/Sub retries the push; Cloud Tasks and Scheduler
log PERMISSION_DENIED). Eventarc delivers through Pub/Sub push subscriptions, so Pub/Sub's agent mints
for it (https://cloud.google.com/eventarc/docs/run/create-trigger-storage-gcloud, "Before you begin").

The token is the one IAM Credentials' generateIdToken makes with ``includeEmail``: ``azp`` and ``sub``
the account's unique ID, ``email`` and ``email_verified: true`` (the sample token on the page above).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from gcptoken.senders.refused import SenderRefusedError

if TYPE_CHECKING:
    from gcptoken.emulator.state.state import EmulatorState

__all__ = ["PRODUCTS", "Product", "sender_id_token", "service_agent"]


@dataclass(frozen=True)
class Product:
    name: str  # what the CLI and the admin API call it
    label: str  # what Google calls it
    agent_domain: str  # the service agent is service-NUMBER@AGENT_DOMAIN.iam.gserviceaccount.com


PRODUCTS = {
    product.name: product
    for product in (
        Product("pubsub", "Pub/Sub", "gcp-sa-pubsub"),
        Product("tasks", "Cloud Tasks", "gcp-sa-cloudtasks"),
        Product("scheduler", "Cloud Scheduler", "gcp-sa-cloudscheduler"),
        Product("eventarc", "Eventarc", "gcp-sa-pubsub"),  # delivered by a Pub/Sub push subscription
        Product("workflows", "Workflows", "gcp-sa-workflows"),
    )
}


def service_agent(state: EmulatorState, product: Product) -> str:
    return f"service-{state.project_number}@{product.agent_domain}.iam.gserviceaccount.com"


def _product(name: str) -> Product:
    try:
        return PRODUCTS[name]
    except KeyError:
        raise ValueError(f"unknown product {name[:40]!r}; one of {', '.join(PRODUCTS)}") from None


def sender_id_token(state: EmulatorState, product_name: str, email: str, audience: str) -> str:
    """The ID token ``product_name`` sends for ``email`` with audience ``audience``; ValueError for
    an unknown product or an empty audience, SenderRefusedError when Google would not mint it."""
    product = _product(product_name)
    if not isinstance(audience, str) or not audience:
        raise ValueError("the audience must not be empty")
    account = state.service_accounts.get(email.lower()) if isinstance(email, str) else None
    if account is None:
        raise SenderRefusedError(product.label, str(email), "the service account does not exist", 404)
    agent = service_agent(state, product)
    if product.agent_domain in state.removed_agent_roles and not state.may_act_as(
        f"serviceAccount:{agent}", account.email
    ):
        reason = (
            f"its service agent {agent} lacks roles/iam.serviceAccountTokenCreator on the account "
            "(and its project-level service agent role was removed)"
        )
        raise SenderRefusedError(product.label, account.email, reason, 403)
    claims = state.identity_claims(account, audience)
    claims.update({"email": account.email, "email_verified": True})
    return state.sign_id_token(dict(sorted(claims.items())))
