"""Uploading a certificate to a service account (IAM ``projects.serviceAccounts.keys.upload``), as
``gcloud iam service-accounts keys upload`` does: the key in hardware gets its key id, the
``private_key_id`` its credential file names. The caller's own credential authorizes it (it needs
``iam.serviceAccountKeys.create`` on the account: Service Account Key Admin)."""

from __future__ import annotations

import base64
import json
import re

from gcptoken import endpoints
from gcptoken.credentials.oauth2 import raise_for_refusal
from gcptoken.errors import TokenRequestError, then
from gcptoken.http.flows import Flow, HttpRequest, json_body

__all__ = ["IAM_ADMIN_BASE", "upload_flow"]

# POST https://iam.googleapis.com/v1/{name=projects/*/serviceAccounts/*}/keys:upload, body
# {"publicKeyData": base64 of the PEM certificate} (IAM REST reference, UploadServiceAccountKeyRequest).
IAM_ADMIN_BASE = "https://iam.googleapis.com/v1/projects/-/serviceAccounts/"
_KEY_NAME = re.compile(r"projects/[^/]+/serviceAccounts/[^/]+/keys/([A-Za-z0-9_-]{1,128})")


def upload_flow(access_token: str, email: str, certificate_pem: str) -> Flow[str]:
    """Upload ``certificate_pem`` to ``email``; the new key's id."""
    url = endpoints.resolve(f"{IAM_ADMIN_BASE}{email}/keys:upload")
    headers = {"Authorization": f"Bearer {access_token}", "Content-Type": "application/json"}
    body = {"publicKeyData": base64.b64encode(certificate_pem.encode("ascii")).decode("ascii")}
    response = yield HttpRequest(
        "POST", url, headers, json.dumps(body).encode("utf-8"), describe={"iam": "keys.upload", "target": email}
    )
    where = f"IAM keys.upload for {email}"
    answer = json_body(response, where)
    try:
        raise_for_refusal(response.status, answer, where)
    except TokenRequestError as exc:
        if exc.status != 403:
            raise
        hint = f"uploading a key needs Service Account Key Admin (roles/iam.serviceAccountKeyAdmin) on {email}"
        raise TokenRequestError(
            then(exc, hint), status=exc.status, error=exc.error, description=exc.description
        ) from None
    name = answer.get("name")
    matched = _KEY_NAME.fullmatch(name) if isinstance(name, str) else None
    if matched is None:
        raise TokenRequestError(f"{where} answered without a key name")
    return matched.group(1)
