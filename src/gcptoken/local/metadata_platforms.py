"""How each Google platform's metadata server answers, as data: one ``Platform`` per platform,
read by ``local.metadata_api`` for the emulator and for ``gcptoken metadata-server`` alike.

The real servers differ. Compute Engine (and App Engine flexible, whose instances are Compute
Engine VMs) runs "Metadata Server for VM"; GKE's Workload Identity runs its own, a subset of the VM
API; Cloud Run and Cloud Run functions run "Metadata Server for Serverless". They differ in the
``Server`` header, the ``Content-Type`` of an ID token, the paths served, whether ``format=full``
adds ``google.compute_engine``, and how they refuse. Each fact below names its source: Google's
documentation, a Google client that handles it, or a response captured on the platform and quoted
in a public issue. Where sources disagree the comment says so, and the captured response wins.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["PLATFORMS", "Platform", "Refusal", "platform_named", "runtime_environment"]

# Every platform: text values and listings, JSON, access tokens. Captured on GCE and GKE
# (googleapis/gcp-metadata#215, googleapis/gcp-metadata#657), on Cloud Run as emulated by
# kelseyhightower/container-instance-metadata-server; Google's clients parse JSON by this type
# (google-auth-python compute_engine/_metadata.py get()).
TEXT = "application/text"
JSON = "application/json"
MISSING_FLAVOR = 'Missing required header "Metadata-Flavor": "Google"'


@dataclass(frozen=True)
class Refusal:
    """One kind of refusal as a platform words it: the media type, the body (``{message}`` and
    ``{path}`` filled in, HTML-escaped where the type is HTML), whether it still carries
    ``Metadata-Flavor`` and ``Server``, and any further headers."""

    content_type: str
    body: str = "{message}\n"
    identified: bool = True
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Platform:
    name: str
    title: str
    server: str
    identity_type: str  # Content-Type of instance/service-accounts/*/identity
    entries: frozenset[str]  # the paths served, directories with a trailing "/"
    forbidden: Refusal  # no Metadata-Flavor: Google, or X-Forwarded-For
    not_found: Refusal
    error: Refusal  # 400 (no audience, a bad parameter) and the source's own refusals
    unknown_account: tuple[int, Refusal]  # instance/service-accounts/NOT-HERE/token
    compute_engine_claims: bool  # format=full adds google.compute_engine (and licenses=TRUE counts)
    root_needs_flavor: bool  # GET / refused without Metadata-Flavor: Google
    etag: bool = True
    headers: tuple[tuple[str, str], ...] = ()  # on every answer, besides Metadata-Flavor and Server
    # None: the instance's custom attributes; otherwise only these keys exist under attributes/.
    instance_attributes: frozenset[str] | None = None
    serverless_instance: bool = False  # instance/id is a long hex id, instance/zone is REGION-1
    runtime_env: tuple[tuple[str, str], ...] = ()  # set by the platform's runtime, not by its server

    def identity_headers(self) -> dict[str, str]:
        return {"Metadata-Flavor": "Google", "Server": self.server, **dict(self.headers)}


# The Google error page Google's front ends send for a 404; captured from GCE's metadata server
# with "Content-Type: text/html; charset=UTF-8" (googleapis/gcp-metadata#657, 2025-03).
_GOOGLE_404 = (
    "<!DOCTYPE html>\n<html lang=en>\n  <meta charset=utf-8>\n  <title>Error 404 (Not Found)!!1</title>\n"
    "  <p><b>404.</b> <ins>That\u2019s an error.</ins>\n  <p>The requested URL <code>{path}</code> was not found"
    " on this server.  <ins>That\u2019s all we know.</ins>\n"
)
_HTML = "text/html; charset=UTF-8"

_VM_ENTRIES = frozenset(
    {
        # https://cloud.google.com/compute/docs/metadata/predefined-metadata-keys (no instance/region:
        # a VM has a zone; instance/region is Cloud Run's)
        "instance/attributes/",
        "instance/cpu-platform",
        "instance/description",
        "instance/hostname",
        "instance/id",
        "instance/image",
        "instance/machine-type",
        "instance/maintenance-event",
        "instance/name",
        "instance/network-interfaces/",
        "instance/preempted",
        "instance/scheduling/",
        "instance/service-accounts/",
        "instance/zone",
        "project/attributes/",
        "project/numeric-project-id",
        "project/project-id",
        # Served by the VM server; a 404 here means googleapis.com to every Google client
        # (google-auth-python get_universe_domain, ComputeEngineCredentials.getUniverseDomain).
        "universe/universe-domain",
    }
)

# GCE's 403 keeps Metadata-Flavor (xelalexv/dregsy#82, GCE against Cloud Run); its wording and the
# 400's as salrashid123/gce_metadata_server emulates them.
_VM_REFUSAL = Refusal(_HTML)
_VM_NOT_FOUND = Refusal(_HTML, _GOOGLE_404)

GCE = Platform(
    name="gce",
    title="Compute Engine",
    # Captured: googleapis/gcp-metadata#657 (Server, X-XSS-Protection, X-Frame-Options, 404 page).
    server="Metadata Server for VM",
    headers=(("X-XSS-Protection", "0"), ("X-Frame-Options", "SAMEORIGIN")),
    # GCE's identity endpoint says text/html: the one type google-auth-library-ruby accepted for a
    # bare token until 0.17 (lib/googleauth/compute_engine.rb, c7f82f2), compared with ==, so no
    # charset parameter; 0.17+ also takes application/text (4948ebb).
    identity_type="text/html",
    entries=_VM_ENTRIES,
    # https://cloud.google.com/compute/docs/instances/verifying-instance-identity#payload
    compute_engine_claims=True,
    # GCE answers / without the header (Go's compute/metadata OnGCE pinged it bare and checked the
    # answer's Metadata-Flavor; googleapis/google-auth-library-java#282 captured "computeMetadata/").
    root_needs_flavor=False,
    forbidden=_VM_REFUSAL,
    not_found=_VM_NOT_FOUND,
    error=_VM_REFUSAL,
    unknown_account=(404, _VM_NOT_FOUND),
)

APP_ENGINE = Platform(
    name="app-engine",
    title="App Engine flexible",
    # Flexible instances are Compute Engine VMs: the VM's metadata server, its paths and full claims
    # (https://cloud.google.com/appengine/docs/flexible/an-overview-of-app-engine#instances;
    # GoogleCloudPlatform/php-docs-samples appengine/flexible/metadata reads it as on GCE).
    server=GCE.server,
    headers=GCE.headers,
    identity_type=GCE.identity_type,
    entries=_VM_ENTRIES,
    compute_engine_claims=True,
    root_needs_flavor=False,
    # https://cloud.google.com/appengine/docs/flexible/python/runtime#environment_variables; clients
    # detect App Engine by these, not by the server (google-auth-library-nodejs envDetect.ts GAE_SERVICE,
    # googleapis/ruby-cloud-env env.rb GAE_INSTANCE and GAE_ENV).
    runtime_env=(
        ("GAE_SERVICE", "default"),
        ("GAE_VERSION", "emulated-version"),
        ("GAE_INSTANCE", "emulated-instance"),
        ("GAE_MEMORY_MB", "614"),
        ("GOOGLE_CLOUD_PROJECT", "{project_id}"),
    ),
    forbidden=_VM_REFUSAL,
    not_found=_VM_NOT_FOUND,
    error=_VM_REFUSAL,
    unknown_account=(404, _VM_NOT_FOUND),
)

# GKE's Go server refuses in Go's http.Error shape, without Metadata-Flavor or Server: captured in
# googleapis/google-auth-library-ruby#228 and googleapis/google-api-dotnet-client#1409 (2019, body
# prefixed "GKE Metadata Server encountered an error: ") and google/kctf#194 (2021, bare message,
# which we follow as the newer).
_GKE_REFUSAL = Refusal("text/plain; charset=utf-8", identified=False, headers=(("X-Content-Type-Options", "nosniff"),))

GKE = Platform(
    name="gke",
    title="GKE (Workload Identity)",
    server="GKE Metadata Server",  # captured in googleapis/google-auth-library-ruby#228
    # Not captured; GKE's other text answers are application/text (googleapis/gcp-metadata#215).
    identity_type=TEXT,
    # The subset the GKE metadata server implements
    # (https://cloud.google.com/kubernetes-engine/docs/concepts/workload-identity#metadata_server):
    # no VM metadata, no project attributes; the cluster's attributes only.
    entries=frozenset(
        {
            "instance/attributes/",
            "instance/hostname",
            "instance/id",
            "instance/service-accounts/",
            "instance/zone",
            "project/numeric-project-id",
            "project/project-id",
            "universe/universe-domain",
        }
    ),
    # Node and Ruby tell GKE from GCE by this attribute answering 200 (google-auth-library-nodejs
    # envDetect.ts isKubernetesEngine, googleapis/ruby-cloud-env kubernetes_engine_cluster_name).
    instance_attributes=frozenset({"cluster-location", "cluster-name", "cluster-uid"}),
    # Tokens come from the bound Google service account: no google claim even with format=full
    # (gravitational/teleport#28636).
    compute_engine_claims=False,
    root_needs_flavor=True,  # GET / without the header: 403 (googleapis/google-auth-library-ruby#228)
    forbidden=_GKE_REFUSAL,
    not_found=_GKE_REFUSAL,  # not captured: Go's shape, as its 403
    error=_GKE_REFUSAL,
    unknown_account=(404, _GKE_REFUSAL),
    # Kubernetes sets these in every pod (https://kubernetes.io/docs/concepts/services-networking/
    # service/#environment-variables); Google's clients detect GKE by the metadata server instead.
    runtime_env=(("KUBERNETES_SERVICE_HOST", "10.0.0.1"), ("KUBERNETES_SERVICE_PORT", "443")),
)

_SERVERLESS_ENTRIES = frozenset(
    {
        # https://cloud.google.com/run/docs/container-contract#metadata-server (instance/zone is
        # projects/NUMBER/zones/REGION-1 there: Cloud Run does not tell the zone).
        "instance/id",
        "instance/region",
        "instance/service-accounts/",
        "instance/zone",
        "project/numeric-project-id",
        "project/project-id",
        "universe/universe-domain",  # not documented for Cloud Run; clients read a 404 as googleapis.com
    }
)
# Cloud Run's 403 carries no Metadata-Flavor (xelalexv/dregsy#82, Cloud Run jobs, 2022);
# kelseyhightower/container-instance-metadata-server sends one, with an empty text/html body: the
# type and body we take from it, the missing header from the capture.
_SERVERLESS_FORBIDDEN = Refusal(_HTML, "", identified=False)
_SERVERLESS_NOT_FOUND = Refusal(_HTML, "")  # "a bare 404", as reported from Cloud Run; headers not captured
_SERVERLESS_ERROR = Refusal(_HTML)
# An account not on the instance: 500 "Could not fetch URI …" (cloud-custodian/cloud-custodian#9405,
# on a function).
_SERVERLESS_UNKNOWN_ACCOUNT = (500, Refusal("text/plain; charset=utf-8", "Could not fetch URI {path}\n"))

CLOUD_RUN = Platform(
    name="cloud-run",
    title="Cloud Run",
    # Datadog's serverless mini-agent (env_verifier.rs) tells a function by this header; Kelsey
    # Hightower's Cloud Run emulator sends it on every answer, and no ETag.
    server="Metadata Server for Serverless",
    etag=False,
    # "On Cloud Run, the idtoken metadata endpoint has Content-Type application/text"
    # (googleapis/google-auth-library-ruby#305).
    identity_type=TEXT,
    entries=_SERVERLESS_ENTRIES,
    serverless_instance=True,
    # format=full adds email but no google claim on Cloud Run (googleapis/google-auth-library-php#526,
    # hashicorp/vault-plugin-auth-gcp#190).
    compute_engine_claims=False,
    root_needs_flavor=True,  # GET / without the header: 403 (xelalexv/dregsy#82)
    # https://cloud.google.com/run/docs/container-contract#env-vars; Node reads K_CONFIGURATION,
    # Ruby K_SERVICE (envDetect.ts isCloudRun, ruby-cloud-env knative?).
    runtime_env=(
        ("K_SERVICE", "emulated-service"),
        ("K_REVISION", "emulated-service-00001-abc"),
        ("K_CONFIGURATION", "emulated-service"),
    ),
    forbidden=_SERVERLESS_FORBIDDEN,
    not_found=_SERVERLESS_NOT_FOUND,
    error=_SERVERLESS_ERROR,
    unknown_account=_SERVERLESS_UNKNOWN_ACCOUNT,
)

FUNCTIONS = Platform(
    name="functions",
    title="Cloud Run functions",
    # Functions run on Cloud Run's infrastructure and its metadata server
    # (https://cloud.google.com/functions/docs/concepts/version-comparison); the 500 for an unknown
    # account above was captured on a function.
    server=CLOUD_RUN.server,
    etag=False,
    identity_type=TEXT,
    entries=_SERVERLESS_ENTRIES,
    serverless_instance=True,
    compute_engine_claims=False,
    root_needs_flavor=True,
    # https://cloud.google.com/functions/docs/configuring/env-var#runtime_environment_variables_set_automatically;
    # Node calls it Cloud Functions on FUNCTION_TARGET (envDetect.ts isCloudFunction).
    runtime_env=(
        ("FUNCTION_TARGET", "emulated_function"),
        ("FUNCTION_SIGNATURE_TYPE", "http"),
        ("K_SERVICE", "emulated-function"),
        ("K_REVISION", "emulated-function-00001-abc"),
    ),
    forbidden=_SERVERLESS_FORBIDDEN,
    not_found=_SERVERLESS_NOT_FOUND,
    error=_SERVERLESS_ERROR,
    unknown_account=_SERVERLESS_UNKNOWN_ACCOUNT,
)

PLATFORMS: dict[str, Platform] = {p.name: p for p in (GCE, GKE, CLOUD_RUN, FUNCTIONS, APP_ENGINE)}


def platform_named(name: str) -> Platform:
    """The platform called ``name``; KeyError names the choices."""
    try:
        return PLATFORMS[name]
    except KeyError:
        raise KeyError(f"unknown platform {name[:40]!r}; choose one of {', '.join(PLATFORMS)}") from None


def runtime_environment(name: str, project_id: str) -> dict[str, str]:
    """The variables platform ``name``'s runtime sets in an app's environment (the metadata server
    cannot set them): what a client that detects the platform by environment needs to see."""
    return {key: value.format(project_id=project_id) for key, value in platform_named(name).runtime_env}
