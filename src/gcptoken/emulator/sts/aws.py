"""AWS in the emulator: the EC2 instance metadata service (IMDSv1 and v2) a workload reads its
region and role keys from, an admin API to shape it, and what Google's STS does with an AWS
subject token: parse the serialized ``GetCallerIdentity`` request, check its SigV4 signature with
the secret the emulated AWS issued, its date and target resource, and name the caller by ARN."""

from __future__ import annotations

import calendar
import hmac
import json
import re
import time
from urllib.parse import unquote, urlsplit

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from gcptoken.credentials import sigv4
from gcptoken.emulator.http.responses import GoogleJSONResponse as JSONResponse
from gcptoken.emulator.http.responses import api_error, json_object
from gcptoken.emulator.state.models import Provider
from gcptoken.emulator.state.state import EmulatorState

__all__ = ["aws_role_of", "routes", "verify_subject_token"]

TTL_HEADER = "x-aws-ec2-metadata-token-ttl-seconds"
TOKEN_HEADER = "x-aws-ec2-metadata-token"
MAX_SKEW = 15 * 60
_STS_HOST = re.compile(r"sts(?:-fips)?(?:\.([a-z0-9-]+))?\.amazonaws\.com")
_ROLE_NAME = re.compile(r"[\w+=,.@-]{1,64}")


# -- the instance metadata service ----------------------------------------------------------------


def _imds_refusal(request: Request) -> Response | None:
    """IMDS's 401 for a missing (v2 required) or unknown session token; 403 through a proxy."""
    state: EmulatorState = request.app.state.emulator
    if "x-forwarded-for" in request.headers:
        return PlainTextResponse("Forbidden", status_code=403)
    token = request.headers.get(TOKEN_HEADER)
    if token is not None and not state.aws.session_valid(token):
        return PlainTextResponse("Unauthorized", status_code=401)
    if token is None and state.aws.imdsv2_required:
        return PlainTextResponse("Unauthorized", status_code=401)
    return None


async def session_token(request: Request) -> Response:
    state: EmulatorState = request.app.state.emulator
    if "x-forwarded-for" in request.headers:
        return PlainTextResponse("Forbidden", status_code=403)
    ttl = request.headers.get(TTL_HEADER, "")
    if not (ttl.isdigit() and len(ttl) <= 5) or not 1 <= int(ttl) <= 21600:  # no 5,000-digit int()
        return PlainTextResponse("Bad Request", status_code=400)
    with state.lock:
        token = state.aws.open_session(int(ttl))
    return PlainTextResponse(token, headers={TTL_HEADER: ttl})


async def availability_zone(request: Request) -> Response:
    state: EmulatorState = request.app.state.emulator
    return _imds_refusal(request) or PlainTextResponse(state.aws.zone)


async def role_name(request: Request) -> Response:
    state: EmulatorState = request.app.state.emulator
    return _imds_refusal(request) or PlainTextResponse(state.aws.role)


async def role_credentials(request: Request) -> Response:
    state: EmulatorState = request.app.state.emulator
    refusal = _imds_refusal(request)
    if refusal is not None:
        return refusal
    if request.path_params["role"] != state.aws.role:
        return PlainTextResponse("Not Found", status_code=404)
    with state.lock:
        key = state.aws.role_key()
    expires = key.expires_at or state.clock()
    return JSONResponse(
        {
            "Code": "Success",
            "LastUpdated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(state.clock())),
            "Type": "AWS-HMAC",
            "AccessKeyId": key.access_key_id,
            "SecretAccessKey": key.secret_access_key,
            "Token": key.session_token,
            "Expiration": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(expires)),
        }
    )


# -- admin ----------------------------------------------------------------------------------------


async def configure(request: Request) -> Response:
    """Admin: ``{"role"?, "zone"?, "accountId"?, "imdsv2Required"?, "expireKey"?}`` → the emulated
    AWS as it now is (GET shows it)."""
    state: EmulatorState = request.app.state.emulator
    world = state.aws
    if request.method == "POST":
        body = await json_object(request)
        if not isinstance(body, dict):
            return api_error(400, "Request body must be a JSON object.")
        role, zone, account = body.get("role", world.role), body.get("zone", world.zone), body.get("accountId")
        if not isinstance(role, str) or not _ROLE_NAME.fullmatch(role):
            return api_error(400, "role must be an IAM role name.")
        if not isinstance(zone, str) or not re.fullmatch(r"[a-z]{2}(-[a-z]+)+-\d[a-z]", zone):
            return api_error(400, "zone must be an availability zone such as us-east-1a.")
        if account is not None and not (isinstance(account, str) and re.fullmatch(r"\d{12}", account)):
            return api_error(400, "accountId must be 12 digits.")
        required = body.get("imdsv2Required", world.imdsv2_required)
        if not isinstance(required, bool):
            return api_error(400, "imdsv2Required must be true or false.")
        expire = body.get("expireKey")
        with state.lock:
            if expire is not None and not (isinstance(expire, str) and world.expire(expire)):
                return api_error(404, "expireKey names no key the emulated AWS issued.")
            if role != world.role or account not in (None, world.account_id):
                world._role_key = None  # a new role (or account) gets new keys
            world.role, world.zone, world.imdsv2_required = role, zone, required
            world.account_id = account or world.account_id
    return JSONResponse(
        {
            "accountId": world.account_id,
            "role": world.role,
            "zone": world.zone,
            "region": world.region,
            "imdsv2Required": world.imdsv2_required,
            "instanceId": world.instance_id,
        }
    )


async def create_user_key(request: Request) -> Response:
    """Admin: ``{"user": NAME}`` → a long-lived IAM user key, for ``AWS_ACCESS_KEY_ID`` /
    ``AWS_SECRET_ACCESS_KEY``."""
    state: EmulatorState = request.app.state.emulator
    body = await json_object(request)
    user = body.get("user", "emulated-user") if isinstance(body, dict) else None
    if not isinstance(user, str) or not _ROLE_NAME.fullmatch(user):
        return api_error(400, "user must be an IAM user name.")
    with state.lock:
        key = state.aws.create_user_key(user)
    return JSONResponse(
        {"AccessKeyId": key.access_key_id, "SecretAccessKey": key.secret_access_key, "Arn": key.arn}, status_code=201
    )


# -- Google's STS, given an AWS subject token -----------------------------------------------------


def aws_role_of(arn: str) -> str:
    """Google's default ``attribute.aws_role``: an assumed role's ARN without its session name."""
    match = re.fullmatch(r"(arn:aws:sts::\d{12}:)assumed-role/([^/]+)/.*", arn)
    return f"{match.group(1)}assumed-role/{match.group(2)}" if match else arn


def _parse(token: str) -> tuple[str, str, dict[str, str]] | None:
    try:
        request = json.loads(unquote(token))
    except (ValueError, RecursionError):
        return None
    if not isinstance(request, dict):
        return None
    url, method, headers = request.get("url"), request.get("method"), request.get("headers")
    if not isinstance(url, str) or not isinstance(method, str) or not isinstance(headers, list):
        return None
    pairs: dict[str, str] = {}
    for header in headers:
        if not isinstance(header, dict) or not all(isinstance(header.get(k), str) for k in ("key", "value")):
            return None
        pairs[header["key"].lower()] = header["value"]
    return url, method, pairs


def verify_subject_token(state: EmulatorState, provider: Provider, token: str, audience: str) -> dict[str, str] | str:
    """The caller's identity as AWS's ``GetCallerIdentity`` would answer (``arn``, ``account``,
    ``userid``), or why STS refuses the token."""
    parsed = _parse(token)
    if parsed is None:
        return "The AWS subject token is not a serialized, URL-encoded GetCallerIdentity request."
    url, method, headers = parsed
    parts = urlsplit(url)
    host = _STS_HOST.fullmatch(parts.hostname or "")
    query = dict(sorted(p.split("=", 1) for p in parts.query.split("&") if "=" in p))
    if parts.scheme != "https" or host is None or method != "POST" or query.get("Action") != "GetCallerIdentity":
        return "The AWS subject token must be a POST to AWS STS GetCallerIdentity."
    target = headers.get("x-goog-cloud-target-resource", "")
    if target.removeprefix("https:") != audience.removeprefix("https:"):
        return "The x-goog-cloud-target-resource header does not match the audience."
    authorization = sigv4.parse_authorization(headers.get("authorization", ""))
    if authorization is None or headers.get("host") != parts.hostname:
        return "The AWS request is not signed with AWS Signature Version 4 over its host."
    if not {"host", "x-amz-date"} <= set(authorization.signed_headers) or any(
        name not in headers for name in authorization.signed_headers
    ):
        return "The AWS request does not sign host and x-amz-date."
    date = headers.get("x-amz-date", "")
    try:
        signed_at = calendar.timegm(time.strptime(date, "%Y%m%dT%H%M%SZ"))
    except ValueError:
        return "The AWS request has no valid x-amz-date."
    if abs(signed_at - state.clock()) > MAX_SKEW or date[:8] != authorization.date_stamp:
        return "AWS: Signature expired: the request's x-amz-date is more than 15 minutes from now."
    region = host.group(1) or "us-east-1"
    if authorization.region != region or authorization.service != "sts":
        return "AWS: Credential should be scoped to a valid region and the sts service."
    with state.lock:
        key = state.aws.keys.get(authorization.access_key_id)
    if key is None:
        return "AWS: The security token included in the request is invalid (InvalidClientTokenId)."
    if key.session_token is not None and headers.get("x-amz-security-token") != key.session_token:
        return "AWS: The security token included in the request is invalid (InvalidClientTokenId)."
    expected = sigv4.signature(
        key.secret_access_key, method, url, headers, authorization.signed_headers, date, region, "sts"
    )
    if not hmac.compare_digest(expected, authorization.signature):
        return "AWS: The request signature we calculated does not match the signature you provided."
    if key.expires_at is not None and key.expires_at < state.clock():
        return "AWS: The security token included in the request is expired (ExpiredToken)."
    account = key.arn.split(":")[4]
    if account != provider.aws_account_id:
        return f"The AWS account {account} is not the one this provider trusts."
    return {"arn": key.arn, "account": account, "userid": key.user_id}


routes = [
    Route("/latest/api/token", session_token, methods=["PUT"]),
    Route("/latest/meta-data/placement/availability-zone", availability_zone, methods=["GET"]),
    Route("/latest/meta-data/iam/security-credentials", role_name, methods=["GET"]),
    Route("/latest/meta-data/iam/security-credentials/", role_name, methods=["GET"]),
    Route("/latest/meta-data/iam/security-credentials/{role}", role_credentials, methods=["GET"]),
    Route("/emulator/v1/aws", configure, methods=["GET", "POST"]),
    Route("/emulator/v1/aws/users", create_user_key, methods=["POST"]),
]
