"""AWS as a workload identity federation source (``credential_source.environment_id: "aws1"``).

The subject token is a SigV4-signed ``GetCallerIdentity`` request that Google's STS replays to AWS:
the region comes from ``AWS_REGION`` / ``AWS_DEFAULT_REGION`` or the instance's availability zone,
the keys from ``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY`` / ``AWS_SESSION_TOKEN`` or the
instance metadata service (IMDSv2 when ``imdsv2_session_token_url`` is set). Serialized exactly as
google-auth does, so Google's STS sees the same request from either library.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import gcptoken.credentials.fields as fields
from gcptoken.credentials import sigv4
from gcptoken.endpoints import safe_url
from gcptoken.errors import CredentialsError, TokenRequestError
from gcptoken.http.flows import Flow, HttpRequest, HttpResponse
from gcptoken.untrusted import UnreadableJson, is_token_text, json_object

__all__ = [
    "AWS_SUBJECT_TOKEN_TYPE",
    "DEFAULT_VERIFICATION_URL",
    "check_source",
    "environment_keys",
    "is_aws",
    "subject_token_flow",
]

AWS_SUBJECT_TOKEN_TYPE = "urn:ietf:params:aws:token-type:aws4_request"
DEFAULT_VERIFICATION_URL = "https://sts.{region}.amazonaws.com?Action=GetCallerIdentity&Version=2011-06-15"
IMDS_TOKEN_HEADER = "X-aws-ec2-metadata-token"
IMDS_TTL_HEADER = "X-aws-ec2-metadata-token-ttl-seconds"
_REGION = re.compile(r"[a-z]{2}(-[a-z]+)+-\d")
_ROLE = re.compile(r"[\w+=,.@-]{1,128}")


def is_aws(source: Mapping[str, Any]) -> bool:
    return str(source.get("environment_id", "")).startswith("aws")


def check_source(source: Mapping[str, Any], where: str) -> None:
    """What google-auth checks at load: ``aws1`` and a verification URL; URLs that parse."""
    environment = source.get("environment_id")
    match = re.fullmatch(r"aws(\d+)", environment) if isinstance(environment, str) else None
    if match is None:
        raise CredentialsError(f"{where}: environment_id must be 'aws1'")
    if match.group(1) != "1":
        raise CredentialsError(f"{where}: AWS environment version {match.group(1)} is not supported (only aws1)")
    verification = fields.text(source, "regional_cred_verification_url", where)
    assert verification is not None
    if not verification.startswith("https://"):
        raise CredentialsError(f"{where}: 'regional_cred_verification_url' must be an https URL")
    for name in ("region_url", "url", "imdsv2_session_token_url"):
        fields.url(source, name, where)


def environment_keys() -> sigv4.AwsKeys | None:
    """Keys from the environment, as AWS's SDKs read them (both id and secret, or none)."""
    key_id = os.environ.get("AWS_ACCESS_KEY_ID")
    secret = os.environ.get("AWS_SECRET_ACCESS_KEY")
    if not key_id or not secret:
        return None
    return sigv4.AwsKeys(key_id, secret, os.environ.get("AWS_SESSION_TOKEN") or None)


def _environment_region() -> str | None:
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or None


class _Imds:
    """The instance metadata service, with one IMDSv2 session for the whole exchange."""

    def __init__(self, source: Mapping[str, Any], where: str) -> None:
        self.source = source
        self.where = where
        self.session: str | None = None

    def session_flow(self) -> Flow[None]:
        url = self.source.get("imdsv2_session_token_url")
        if not url or self.session is not None:
            return
        response = yield HttpRequest("PUT", str(url), {IMDS_TTL_HEADER: "300"}, b"", describe={"aws": "imdsv2"})
        self._check(response, "the IMDSv2 session token", str(url))
        session = response.body.decode("ascii", "replace").strip()
        if not is_token_text(session):  # it goes into a header: no CR, LF or other controls
            raise TokenRequestError(
                f"{self.where}: AWS instance metadata ({safe_url(str(url))}) answered no session token"
            )
        self.session = session

    def get_flow(self, url: str, what: str) -> Flow[str]:
        yield from self.session_flow()
        headers = {IMDS_TOKEN_HEADER: self.session} if self.session else {}
        response = yield HttpRequest("GET", url, headers, describe={"aws": what})
        self._check(response, what, url)
        try:
            return response.body.decode("utf-8").strip()
        except UnicodeDecodeError:
            raise CredentialsError(f"{self.where}: AWS instance metadata's {what} is not UTF-8 text") from None

    def _check(self, response: HttpResponse, what: str, url: str) -> None:
        if response.status != 200:
            raise TokenRequestError(
                f"{self.where}: AWS instance metadata ({safe_url(url)}) answered HTTP {response.status} for {what}",
                status=response.status,
            )


def _region_flow(source: Mapping[str, Any], imds: _Imds, where: str) -> Flow[str]:
    region = _environment_region()
    if region is None:
        url = source.get("region_url")
        if not url:
            raise CredentialsError(
                f"{where}: the AWS region is unknown: set AWS_REGION (or AWS_DEFAULT_REGION), "
                "or give credential_source.region_url"
            )
        zone = yield from imds.get_flow(str(url), "the availability zone")
        region = zone[:-1]  # us-east-2b → us-east-2
    if not _REGION.fullmatch(region):
        raise CredentialsError(f"{where}: {fields.identifier(region)} is not an AWS region")
    return region


def _keys_flow(source: Mapping[str, Any], imds: _Imds, where: str) -> Flow[sigv4.AwsKeys]:
    keys = environment_keys()
    if keys is not None:
        return keys
    url = source.get("url")
    if not url:
        raise CredentialsError(
            f"{where}: no AWS keys: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
            "or give credential_source.url (the instance's security-credentials endpoint)"
        )
    role = yield from imds.get_flow(str(url), "the role name")
    if not _ROLE.fullmatch(role):
        raise CredentialsError(f"{where}: AWS instance metadata named no usable IAM role")
    text = yield from imds.get_flow(f"{str(url).rstrip('/')}/{role}", "the role's credentials")
    try:
        document = json_object(text)
    except UnreadableJson as exc:
        raise CredentialsError(f"{where}: AWS instance metadata's credentials for role {role} {exc}") from None
    if not all(isinstance(document.get(name), str) and document[name] for name in ("AccessKeyId", "SecretAccessKey")):
        raise CredentialsError(f"{where}: AWS instance metadata returned no usable credentials for role {role}")
    token = document.get("Token")
    session = token if isinstance(token, str) and token else None
    return sigv4.AwsKeys(document["AccessKeyId"], document["SecretAccessKey"], session)


def serialize(url: str, headers: Mapping[str, str], audience: str) -> str:
    """google-auth's form: URL-quoted compact JSON with sorted keys; headers in sending order, then
    ``x-goog-cloud-target-resource`` (added after signing, as Google's STS expects)."""
    listed = [{"key": k, "value": v} for k, v in {**headers, "x-goog-cloud-target-resource": audience}.items()]
    request = {"url": url, "method": "POST", "headers": listed}
    return quote(json.dumps(request, separators=(",", ":"), sort_keys=True))


def subject_token_flow(source: Mapping[str, Any], audience: str, where: str, now: float | None = None) -> Flow[str]:
    imds = _Imds(source, where)
    region = yield from _region_flow(source, imds, where)
    keys = yield from _keys_flow(source, imds, where)
    url = str(source["regional_cred_verification_url"]).replace("{region}", region)
    return serialize(url, sigv4.sign("POST", url, keys, region, now), audience)
