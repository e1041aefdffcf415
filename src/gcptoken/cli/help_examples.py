"""The examples each command's ``--help`` ends with: real command lines to copy, each under a
short line saying what it does (tests run the cheap ones against the emulator)."""

from __future__ import annotations

import argparse
from collections.abc import Mapping

from gcptoken.cli.shell_install_lines import INSTALL_WHERE, install_line

__all__ = ["EXAMPLES", "NOTES", "add_examples"]

_RUN = "https://my-service-abc123-uc.a.run.app"
_SA = "runner@my-project.iam.gserviceaccount.com"

# command -> ((what it does, command line), ...)
EXAMPLES: dict[str, tuple[tuple[str, str], ...]] = {
    "id": (
        (
            "an ID token for a Cloud Run service, from the credential found as Google's libraries find it",
            f"gcptoken id {_RUN}",
        ),
        ("as a service account you may act as", f"gcptoken id {_RUN} --impersonate-service-account {_SA}"),
        ("a header for curl", f'curl -H "$(gcptoken id {_RUN} --format header)" {_RUN}'),
    ),
    "access": (
        ("an access token for Google APIs (scope cloud-platform)", "gcptoken access"),
        (
            "a narrower scope, as a header",
            "gcptoken access --scopes https://www.googleapis.com/auth/devstorage.read_only --format header",
        ),
        ("with its expiry, from a given key file", "gcptoken access --credentials key.json --format json"),
    ),
    "jwt": (
        (
            "a self-signed JWT for a Google API (no network call)",
            "gcptoken jwt --audience https://pubsub.googleapis.com/ --credentials key.json",
        ),
        (
            "one carrying scopes instead, for ten minutes",
            "gcptoken jwt --scopes https://www.googleapis.com/auth/cloud-platform --lifetime 600",
        ),
        (
            "checked as the service account that signed it",
            "gcptoken jwt --audience https://api.example.com"
            ' | gcptoken verify --service-account "$SA" --audience https://api.example.com',
        ),
    ),
    "sign-jwt": (
        (
            "a JWT for an API gateway, signed as the instance's service account (no key file)",
            'gcptoken sign-jwt --claims \'{"iss": "SA", "sub": "SA", "aud": "https://api.example.com"}\'',
        ),
        (
            "claims from a file, signed as a service account you may act as",
            f"gcptoken sign-jwt --claims @claims.json --impersonate-service-account {_SA}",
        ),
    ),
    "sign-blob": (
        ("the base64 signature of a file's bytes", "gcptoken sign-blob canonical-request.txt"),
        (
            "from stdin, with the key id",
            f'printf %s "$DATA" | gcptoken sign-blob - --format json --impersonate-service-account {_SA}',
        ),
    ),
    "call": (
        ("GET a private service's path", f"gcptoken call {_RUN}/health"),
        (
            "POST a file as JSON",
            f"gcptoken call POST {_RUN}/items --data @item.json -H 'Content-Type: application/json'",
        ),
    ),
    "curl": (
        ("curl with an ID token for the service", f"gcptoken curl {_RUN}/items"),
        (
            "curl's own options after --",
            f"gcptoken curl {_RUN}/items -- -X POST -d @item.json -H 'Content-Type: application/json'",
        ),
    ),
    "send": (
        (
            "your local handler, called as a Cloud Tasks task would call it",
            f"gcptoken send --as tasks --service-account {_SA} http://localhost:8080/tasks --data @task.json",
        ),
        (
            "a Cloud Scheduler job's call",
            f"gcptoken send --as scheduler --service-account {_SA} http://localhost:8080/cron --job nightly",
        ),
        (
            "an Eventarc Pub/Sub event, its message data from stdin",
            f"echo hello | gcptoken send --as eventarc --service-account {_SA} http://localhost:8080/ --data -",
        ),
    ),
    "whoami": (
        ("which credential would be used, and why", "gcptoken whoami"),
        ("what a given file is, as JSON", "gcptoken whoami --credentials key.json --format json"),
    ),
    "decode": (
        ("a fresh token's claims (unverified)", f"gcptoken id {_RUN} | gcptoken decode"),
        ("a token in a variable", 'gcptoken decode "$TOKEN"'),
    ),
    "verify": (
        ("check an ID token for your service", f"gcptoken id {_RUN} | gcptoken verify --audience {_RUN}"),
        (
            "IAP's signed header, only for your domain",
            'gcptoken verify "$ASSERTION" --preset iap --audience /projects/123/apps/my-project --hd example.com',
        ),
        (
            "a push from Pub/Sub, Cloud Tasks or Scheduler: Google-signed, for the account you chose",
            f'gcptoken verify "$TOKEN" --caller push@my-project.iam.gserviceaccount.com --audience {_RUN}/pubsub',
        ),
    ),
    "inspect": (
        ("open a fresh token in the browser", f"gcptoken id {_RUN} | gcptoken inspect -"),
        ("start empty, print the one-time address only", "gcptoken inspect --no-browser"),
    ),
    "info": (
        ("what Google's tokeninfo says about an access token", "gcptoken access | gcptoken info"),
        ("about an ID token", f"gcptoken id {_RUN} | gcptoken info"),
    ),
    "emulator": (
        ("serve on 127.0.0.1:8089 (clients: GCPTOKEN_EMULATOR_HOST=127.0.0.1:8089)", "gcptoken emulator"),
        ("keep state, and write credential files and env to a folder", "gcptoken emulator --state-dir .emulator"),
        (
            "a free port as Cloud Run's metadata server; Cloud Run's front door on :8080 before your app on :8000",
            "gcptoken emulator --port 0 --platform cloud-run --run api=http://127.0.0.1:8000 --run-port api=8080 "
            "--run-invoker api=serviceAccount:default@emulated-project.iam.gserviceaccount.com",
        ),
    ),
    "pubsub-emulator": (
        ("on 127.0.0.1:8085, minting through gcptoken emulator on 8089", "gcptoken pubsub-emulator"),
        ("a free port, log each push", "gcptoken pubsub-emulator --port 0 -v"),
        (
            "find unwrapped pushes' subscriptions in a project",
            "gcptoken pubsub-emulator --emulator 127.0.0.1:9000 --project my-project",
        ),
    ),
    "login": (
        (
            "sign in with your Desktop app OAuth client; writes gcloud's ADC file",
            "gcptoken login --client-id-file client.json",
        ),
        ("sign in from another machine's browser", "gcptoken login --client-id-file client.json --no-browser"),
        (
            "with a code entered on any device, into another file",
            "gcptoken login --client-id-file client.json --device --output user.json",
        ),
    ),
    "logout": (
        ("revoke and remove gcloud's ADC file", "gcptoken logout"),
        ("another file", "gcptoken logout --credentials user.json"),
    ),
    "metadata-server": (
        ("serve your credential as the GCE metadata server", "gcptoken metadata-server --port 8081"),
        (
            "as a service account you may act as",
            f"gcptoken metadata-server --port 8081 --impersonate-service-account {_SA}",
        ),
    ),
    "proxy": (
        ("http://127.0.0.1:8080 reaches the service with an ID token", f"gcptoken proxy {_RUN} --port 8080"),
        (
            "an app behind IAP: the audience is its OAuth client id",
            "gcptoken proxy https://app.example.com --audience 1234-abc.apps.googleusercontent.com --port 8080",
        ),
        ("curl and browsers too reach the service over HTTP/2", f"gcptoken proxy {_RUN} --http2 --port 8080"),
    ),
    "docker-config": (
        (
            "docker pulls from Artifact Registry in us and europe-west1 with gcptoken's tokens",
            "gcptoken docker-config us-docker.pkg.dev europe-west1-docker.pkg.dev",
        ),
        ("gcr.io and its regions (gcloud's default), replacing gcloud's entries", "gcptoken docker-config --force"),
        ("undo: remove every entry naming gcptoken", "gcptoken docker-config --remove"),
    ),
    "cache": (
        ("where the on-disk token cache is", "gcptoken cache path"),
        ("remove every cached token", "gcptoken cache clear"),
    ),
    "demo": (
        ("the whole flow, offline", "gcptoken demo"),
        ("with every HTTP exchange logged (redacted)", "gcptoken demo -v"),
    ),
    "kube-credential": (
        ("what kubectl reads: an ExecCredential with an access token (GKE)", "gcptoken kube-credential"),
        (
            "an ID token, for an API server that trusts Google as OIDC issuer",
            "gcptoken kube-credential --audience https://kube.example.com",
        ),
        (
            "the kubeconfig users: entry that runs it with a given key file, to paste",
            "gcptoken kube-credential --credentials key.json --print-kubeconfig-user",
        ),
    ),
    "keyring": (
        (
            "would pip and uv get a token for this index? (the token itself is never shown)",
            "gcptoken keyring check https://oauth2accesstoken@us-python.pkg.dev/my-project/my-repo/simple/",
        ),
        (
            "an index on a host of your own (pip's import provider: no user name needed)",
            "export GCPTOKEN_HELPER_HOSTS=pypi.example.com; gcptoken keyring check https://pypi.example.com/simple/",
        ),
    ),
    "key": (
        (
            "a key made in a SoftHSM2 token, its reference and its certificate for upload",
            "gcptoken key generate 'pkcs11:token=my-token;object=sa-key?module-path=/usr/lib/softhsm/libsofthsm2.so'"
            " --out sa-key.ref --cert sa-key.pem",
        ),
        ("a key made in the TPM, as a key file only this TPM can use", "gcptoken key generate tpm --out sa-key.tss2"),
        (
            "the credential file that names it (the key id from the upload)",
            "gcptoken key credentials @sa-key.ref --account sa@my-project.iam.gserviceaccount.com --key-id KEY_ID",
        ),
    ),
    "completion": (*((INSTALL_WHERE[shell], install_line(shell)) for shell in ("bash", "zsh", "fish")),),
}

# command -> what its usage line cannot say, shown above the examples
NOTES: dict[str, str] = {
    "call": "[METHOD] URL go before, after or around the options. A -- only ends gcptoken's options:\n"
    "nothing is passed on to another program (for curl's own options: gcptoken curl URL -- CURL_ARGS).",
    "curl": "Everything after the first -- goes to curl untouched (a later -- included); the token reaches\n"
    "curl through a private file, never its command line.",
    "proxy": "HTTP/2 clients (h2c with prior knowledge: gRPC's insecure channels) are recognised on the same\n"
    "port and relayed over HTTP/2 (TLS with ALPN h2 to https:// services), trailers, streams in both\n"
    "directions and cancellations included: point a gRPC client at 127.0.0.1:PORT, no code change.",
}


def add_examples(parsers: Mapping[str, argparse.ArgumentParser]) -> None:
    """Appends each command's examples (and note) to its epilog."""
    for name, parser in parsers.items():
        parts = [parser.epilog or "", NOTES.get(name, ""), _examples_text(EXAMPLES.get(name, ()))]
        parser.epilog = "\n".join(part.rstrip("\n") + "\n" for part in parts if part)


def _examples_text(examples: tuple[tuple[str, str], ...]) -> str:
    if not examples:
        return ""
    return "examples:\n" + "".join(f"  # {what}\n  {line}\n" for what, line in examples)
