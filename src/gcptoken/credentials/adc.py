"""Application Default Credentials: which credential to use when none is named, as Google's
libraries decide, and a record of why.

Order: ``GOOGLE_APPLICATION_CREDENTIALS`` → gcloud's ``application_default_credentials.json``
→ the metadata server, detected by a fast ping. A credential that is found but broken is an error,
never a silent fall-through to the next source. The environment is read on every call.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from gcptoken import locations
from gcptoken.credentials.base import CREDENTIALS_ENV, Credentials
from gcptoken.credentials.files import load_file
from gcptoken.credentials.gcloud import GcloudCredentials
from gcptoken.credentials.metadata import MetadataCredentials, metadata_host
from gcptoken.endpoints import checked_host
from gcptoken.errors import CredentialsError, TransportError
from gcptoken.http.flows import Flow, HttpRequest, run_sync

__all__ = [
    "ADC_FILE",
    "DEFAULT_METADATA_IP",
    "Discovery",
    "Source",
    "adc_file_path",
    "default_credentials",
    "find_credentials",
    "metadata_server_answers",
]

ADC_FILE = locations.ADC_FILE
DEFAULT_METADATA_IP = "169.254.169.254"
# A metadata server answers a ping in milliseconds; two short tries keep "nothing found" under 3 s.
PING_TIMEOUT = 1.0
PING_RETRIES = 1

Source = Literal["file", "application-default", "metadata", "gcloud"]


@dataclass(frozen=True)
class Discovery:
    """The credential found, where it came from and why, and what was looked at before it."""

    credentials: Credentials
    source: Source
    location: str
    reason: str
    tried: tuple[str, ...] = field(default=())


def gcloud_config_dir() -> Path:
    return Path(locations.gcloud_config_dir())


def adc_file_path() -> Path:
    """Where ``gcloud auth application-default login`` writes its credentials."""
    return Path(locations.adc_file())


def metadata_ping_address() -> str:
    value = os.environ.get("GCE_METADATA_IP", "").strip()
    return checked_host(value, "GCE_METADATA_IP") if value else DEFAULT_METADATA_IP


def metadata_server_answers(timeout: float = PING_TIMEOUT) -> bool:
    """True when something at GCE_METADATA_IP answers as a metadata server (response header
    ``Metadata-Flavor: Google``); anything else there, or nothing, is False."""
    from gcptoken.http.light_transport import sync_transport

    request = HttpRequest(
        "GET",
        f"http://{metadata_ping_address()}/",
        {"Metadata-Flavor": "Google"},
        describe={"ping": "metadata"},
        retries=PING_RETRIES,
        timeout=timeout,
    )

    def ping() -> Flow[bool]:
        response = yield request
        return response.headers.get("metadata-flavor") == "Google"

    try:
        return run_sync(ping(), sync_transport(timeout))
    except TransportError:
        return False


def _from_file(path: str, source: Source, reason: str, tried: list[str]) -> Discovery:
    if source == "file" and not os.path.lexists(path):
        raise CredentialsError(f"{CREDENTIALS_ENV} names {path}, which does not exist")
    return Discovery(load_file(path), source, path, reason, tuple(tried))


def _metadata(tried: list[str], reason: str) -> Discovery:
    return Discovery(MetadataCredentials(), "metadata", metadata_host(), reason, tuple(tried))


def find_credentials(source: Source | None = None) -> Discovery:
    """The credential to use, as Google's libraries choose it; ``source`` forces one."""
    if source == "file":
        path = os.environ.get(CREDENTIALS_ENV, "").strip()
        if not path:
            raise CredentialsError(f"--source file: {CREDENTIALS_ENV} is not set (or pass --credentials FILE)")
        return _from_file(path, "file", f"{CREDENTIALS_ENV} is set (source forced)", [])
    if source == "application-default":
        path = str(adc_file_path())
        if not Path(path).exists():
            raise CredentialsError(
                f"no gcloud application default credentials at {path} (run 'gcloud auth application-default login')"
            )
        return _from_file(path, "application-default", "source forced", [])
    if source == "metadata":
        return _metadata([], "source forced")
    if source == "gcloud":
        import shutil  # only here: ADC's usual paths do not pay for it

        return Discovery(
            GcloudCredentials(), "gcloud", shutil.which("gcloud") or "gcloud (not on PATH)", "source forced"
        )

    tried: list[str] = []
    path = os.environ.get(CREDENTIALS_ENV, "").strip()
    if path:
        return _from_file(path, "file", f"{CREDENTIALS_ENV} is set", tried)
    tried.append(f"{CREDENTIALS_ENV} (not set)")

    adc = adc_file_path()
    if adc.exists():
        return _from_file(
            str(adc), "application-default", f"{CREDENTIALS_ENV} is not set; gcloud's ADC file exists", tried
        )
    tried.append(f"gcloud application default credentials ({adc}: no such file)")

    if os.environ.get("NO_GCE_CHECK", "").lower() in ("true", "1"):
        tried.append("the metadata server (skipped: NO_GCE_CHECK is set)")
    elif metadata_server_answers():
        reason = f"no credential file; the metadata server answered at {metadata_ping_address()}"
        return _metadata(tried, reason)
    else:
        tried.append(f"the metadata server ({metadata_ping_address()}: no answer)")
    raise CredentialsError(
        "no credentials found. Tried: "
        + "; ".join(tried)
        + f". Set {CREDENTIALS_ENV} to a key file, run 'gcloud auth application-default login', "
        "or pass --credentials FILE."
    )


def default_credentials() -> Credentials:
    """The credential Application Default Credentials would use."""
    return find_credentials().credentials
