"""Every service account's public keys where Google publishes them, over real HTTP: each path
form, plain and percent-encoded emails, Google's headers, the certificates' shape, keys appearing
and vanishing with the admin API, IAM's Google-managed keys, and --state-dir restarts."""

from __future__ import annotations

import base64
import datetime
import email.utils
import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from gcptoken.credentials.service_account import ServiceAccountKey, assertion_claims
from gcptoken.emulator import EmulatorServer
from gcptoken.jose import compact, jws
from gcptoken.testing import EmulatorClient

X509_FORMS = ("robot/v1/metadata/x509", "service_accounts/v1/metadata/x509")
JWK_FORMS = ("robot/v1/metadata/jwk", "service_accounts/v1/metadata/jwk", "service_accounts/v1/jwk")
RAW_FORM = "service_accounts/v1/metadata/raw"
FORMS = (*X509_FORMS, *JWK_FORMS, RAW_FORM)


def published(base: str, form: str, email: str) -> httpx.Response:
    return httpx.get(f"{base}/{form}/{email}")


def kids(response: httpx.Response, form: str) -> list[str]:
    """The key ids an answer lists, whatever its form."""
    body = response.json()
    if form in X509_FORMS:
        return list(body)
    if form == RAW_FORM:
        return [entry["keyid"] for entry in body["keyvalues"]]
    return [entry["kid"] for entry in body["keys"]]


def public_keys(response: httpx.Response, form: str) -> dict[str, jws.VerifyingKey]:
    body = response.json()
    if form in X509_FORMS:
        return {kid: jws.public_key_from_pem(pem) for kid, pem in body.items()}
    if form == RAW_FORM:
        keys = {}
        for entry in body["keyvalues"]:
            assert entry["algorithm"] == "RSA" and set(entry) == {"algorithm", "modulus", "exponent", "keyid"}
            n = int.from_bytes(base64.b64decode(entry["modulus"], validate=True), "big")
            e = int.from_bytes(base64.b64decode(entry["exponent"], validate=True), "big")
            keys[entry["keyid"]] = jws.verifying_key_for(rsa.RSAPublicNumbers(e, n).public_key())
        return keys
    return {entry["kid"]: jws.public_key_from_jwk(entry) for entry in body["keys"]}


@pytest.fixture
def account(emulator: EmulatorClient) -> dict[str, str]:
    return emulator.new_key("published")


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("encoded", [False, True])
def test_every_form_lists_the_same_keys_with_googles_headers(
    emulator: EmulatorClient, account: dict[str, str], form: str, encoded: bool
) -> None:
    address = account["client_email"].replace("@", "%40") if encoded else account["client_email"]
    before = time.time()
    response = published(emulator.url, form, address)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json; charset=utf-8"
    assert response.headers["cache-control"] == "public, max-age=21600, must-revalidate, no-transform"
    expires = email.utils.parsedate_to_datetime(response.headers["expires"]).timestamp()
    assert before + 21600 - 2 <= expires <= time.time() + 21600 + 2
    keys = public_keys(response, form)
    system_kid, _ = emulator.state.system_key(account["client_email"])
    # The key file's key and the account's Google-managed key (signJwt/signBlob), nothing else.
    assert set(keys) == {account["private_key_id"], system_kid}
    own = jws.load_private_key_pem(account["private_key"]).public
    assert keys[account["private_key_id"]].to_jwk("k") == own.to_jwk("k")


def test_the_raw_form_writes_numbers_as_google_does(emulator: EmulatorClient, account: dict[str, str]) -> None:
    (entry, *_) = published(emulator.url, RAW_FORM, account["client_email"]).json()["keyvalues"]
    assert entry["exponent"] == "AQAB"
    modulus = base64.b64decode(entry["modulus"])
    assert len(modulus) == 257 and modulus[0] == 0 and modulus[1] >= 0x80  # a 2048-bit key, sign byte first


def test_the_certificates_look_like_googles(emulator: EmulatorClient, account: dict[str, str]) -> None:
    email_address = account["client_email"]
    certificates = published(emulator.url, X509_FORMS[0], email_address).json()
    assert certificates == published(emulator.url, X509_FORMS[1], email_address).json()
    for pem in certificates.values():
        cert = x509.load_pem_x509_certificate(pem.encode())
        name = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
        assert name == email_address.replace("@", ".") and cert.issuer == cert.subject
        assert cert.version == x509.Version.v3 and 0 < cert.serial_number < 2**63
        assert cert.not_valid_after_utc == datetime.datetime(9999, 12, 31, 23, 59, 59, tzinfo=datetime.timezone.utc)
        assert cert.not_valid_before_utc <= datetime.datetime.now(datetime.timezone.utc)
        extensions = {ext.oid: ext for ext in cert.extensions}
        assert all(ext.critical for ext in extensions.values()) and len(extensions) == 3
        assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
        assert cert.extensions.get_extension_for_class(x509.KeyUsage).value.digital_signature
        usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        assert list(usage) == [ExtendedKeyUsageOID.CLIENT_AUTH]
        public = cert.public_key()
        assert isinstance(public, rsa.RSAPublicKey)
        public.verify(cert.signature, cert.tbs_certificate_bytes, padding.PKCS1v15(), hashes.SHA256())  # self-signed


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize(
    "address",
    ["nobody@emulated-project.iam.gserviceaccount.com", "nobody%40emulated-project.iam.gserviceaccount.com", "x"],
)
def test_an_unknown_account_is_a_404(emulator: EmulatorClient, form: str, address: str) -> None:
    response = published(emulator.url, form, address)
    assert response.status_code == 404 and response.json()["error"]["status"] == "NOT_FOUND"
    assert "cache-control" not in response.headers


def test_the_key_files_cert_url_is_the_emulators(emulator: EmulatorClient, account: dict[str, str]) -> None:
    url = account["client_x509_cert_url"]
    assert url == f"{emulator.url}/robot/v1/metadata/x509/{account['client_email'].replace('@', '%40')}"
    assert account["private_key_id"] in httpx.get(url).json()
    other_universe = emulator.state.create_key(account["client_email"], universe_domain="universe.gcptoken.test")
    assert other_universe["client_x509_cert_url"] == url
    assert other_universe["private_key_id"] in httpx.get(url).json()


def test_keys_appear_when_created_and_vanish_when_deleted(emulator: EmulatorClient) -> None:
    admin = f"{emulator.url}/emulator/v1/serviceAccounts"
    made = httpx.post(admin, json={"accountId": "keys-come-and-go"}).json()["email"]
    first = published(emulator.url, JWK_FORMS[0], made)
    assert first.status_code == 200 and len(kids(first, JWK_FORMS[0])) == 1  # its Google-managed key
    key = httpx.post(f"{admin}/{made}/keys", json={}).json()
    for form in FORMS:
        assert key["private_key_id"] in kids(published(emulator.url, form, made), form)
    assert httpx.delete(f"{admin}/{made}/keys/{key['private_key_id']}").status_code == 200
    for form in FORMS:
        listed = kids(published(emulator.url, form, made), form)
        assert key["private_key_id"] not in listed and len(listed) == 1


def test_googles_own_key_sets_are_published_too(emulator: EmulatorClient) -> None:
    securetoken = published(emulator.url, X509_FORMS[0], "securetoken@system.gserviceaccount.com")
    token = emulator.firebase_token("uid-published")
    kid = compact.parse(token).header["kid"]
    assert list(securetoken.json()) == [kid]
    cert = x509.load_pem_x509_certificate(securetoken.json()[kid].encode())
    assert cert.subject.rfc4514_string() == "CN=securetoken.system.gserviceaccount.com"
    signon = published(emulator.url, RAW_FORM, "federated-signon@system.gserviceaccount.com")
    assert set(kids(signon, RAW_FORM)) == set(httpx.get(f"{emulator.url}/oauth2/v1/certs").json())
    assert signon.headers["cache-control"].startswith("public, max-age=")


def _iam_bearer(emulator: EmulatorClient, key: dict[str, str]) -> str:
    source = ServiceAccountKey.from_info(key, "caller")
    assertion = jws.encode(
        assertion_claims(source, {"scope": "https://www.googleapis.com/auth/cloud-platform"}),
        source.signing_key,
        kid=source.private_key_id,
    )
    grant = {"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": assertion}
    return str(httpx.post(f"{emulator.url}/token", data=grant).json()["access_token"])


def _sign(emulator: EmulatorClient, bearer: str, target: str, method: str, payload: str) -> dict[str, Any]:
    url = f"{emulator.url}/v1/projects/-/serviceAccounts/{target}:{method}"
    response = httpx.post(url, json={"payload": payload}, headers={"Authorization": f"Bearer {bearer}"})
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def test_what_iam_signs_verifies_against_the_published_keys(emulator: EmulatorClient, account: dict[str, str]) -> None:
    target = emulator.new_key("iam-signer")["client_email"]
    emulator.state.grant_token_creator(target, f"serviceAccount:{account['client_email']}")
    bearer = _iam_bearer(emulator, account)
    signed = _sign(emulator, bearer, target, "signJwt", json.dumps({"iss": target, "sub": target}))
    blob = b"bytes to sign"
    signed_blob = _sign(emulator, bearer, target, "signBlob", base64.b64encode(blob).decode())
    assert signed["keyId"] == signed_blob["keyId"] == compact.parse(signed["signedJwt"]).header["kid"]
    for form in FORMS:
        key = public_keys(published(emulator.url, form, target), form)[signed["keyId"]]
        compact.parse(signed["signedJwt"]).verify_with(key)
        assert key.verify(blob, base64.b64decode(signed_blob["signedBlob"]))


def test_a_deleted_google_managed_key_is_replaced(emulator: EmulatorClient, account: dict[str, str]) -> None:
    state = emulator.state
    old, _ = state.system_key(account["client_email"])
    assert httpx.delete(f"{emulator.url}/emulator/v1/serviceAccounts/{account['client_email']}/keys/{old}").is_success
    listed = kids(published(emulator.url, JWK_FORMS[1], account["client_email"]), JWK_FORMS[1])
    new, _ = state.system_key(account["client_email"])
    assert new != old and new in listed and old not in listed


def test_keys_and_their_certificates_survive_a_restart(tmp_path: Path) -> None:
    directory = tmp_path / "state"
    with EmulatorServer(state_dir=directory) as first:
        key = json.loads((directory / "service-account.json").read_text())
        email_address = key["client_email"]
        assert key["client_x509_cert_url"] == first.state.certs_url(email_address)
        first.state.grant_token_creator(email_address, f"serviceAccount:{email_address}")
        signed = _sign(
            EmulatorClient(first), _iam_bearer(EmulatorClient(first), key), email_address, "signJwt", '{"a": 1}'
        )
        before = published(first.url, X509_FORMS[0], email_address).json()
    with EmulatorServer(state_dir=directory) as second:
        second.state.grant_token_creator(email_address, f"serviceAccount:{email_address}")
        reused = json.loads((directory / "service-account.json").read_text())
        assert (
            reused["client_x509_cert_url"] == f"{second.url}/robot/v1/metadata/x509/{email_address.replace('@', '%40')}"
        )
        after = httpx.get(reused["client_x509_cert_url"]).json()
        assert after == before  # the same keys, in the very same certificates
        again = _sign(
            EmulatorClient(second), _iam_bearer(EmulatorClient(second), reused), email_address, "signJwt", '{"a": 2}'
        )
        assert again["keyId"] == signed["keyId"]  # the Google-managed key was kept, private half too
        compact.parse(signed["signedJwt"]).verify_with(jws.public_key_from_pem(after[signed["keyId"]]))


def test_a_state_file_from_before_certificates_still_loads(tmp_path: Path) -> None:
    directory = tmp_path / "state"
    with EmulatorServer(state_dir=directory) as first:
        email_address = json.loads((directory / "service-account.json").read_text())["client_email"]
        first.state.system_key(email_address)
    saved = json.loads((directory / "state.json").read_text())
    for entry in saved["service_accounts"]:
        del entry["certificates"]
    del saved["system_keys"]
    (directory / "state.json").write_text(json.dumps(saved))
    with EmulatorServer(state_dir=directory) as second:
        made = published(second.url, X509_FORMS[0], email_address).json()
        new_system, _ = second.state.system_key(email_address)  # the old one's private half was never saved
        (entry,) = [e for e in saved["service_accounts"] if e["email"] == email_address]
        assert set(made) == set(entry["keys"]) | {new_system}
        for kid, public_pem in entry["keys"].items():
            assert jws.public_key_from_pem(made[kid]).to_jwk(kid) == jws.public_key_from_pem(public_pem).to_jwk(kid)
            issuer = x509.load_pem_x509_certificate(made[kid].encode()).issuer.rfc4514_string()
            assert issuer == "CN=gcptoken emulator (re-issued)"
    with EmulatorServer(state_dir=directory) as third:
        assert published(third.url, X509_FORMS[0], email_address).json() == made  # made once, then kept


def test_a_long_email_still_gets_a_certificate(emulator: EmulatorClient) -> None:
    made = emulator.server.key_file("a-thirty-character-account-id1")
    pem = httpx.get(made["client_x509_cert_url"]).json()[made["private_key_id"]]
    name = x509.load_pem_x509_certificate(pem.encode()).subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    assert len(made["client_email"]) > 64 and name == made["client_email"].replace("@", ".")[:64]
