"""Every benchmark, run against one emulator: rows printed as they come, then the JSON and the
chart written to the directory ``python -m bench`` chose."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.bridges_rows import bridges_rows
from bench.cached_kinds_rows import cached_kinds_rows
from bench.chart import draw
from bench.cli_rows import cli_rows
from bench.cold_rows import cold_rows, import_rows
from bench.docker_rows import docker_rows
from bench.grpc_auth_rows import grpc_auth_rows
from bench.grpc_proxy_rows import grpc_proxy_rows
from bench.hardware_cached_rows import hardware_cached_rows
from bench.keyring_rows import keyring_rows
from bench.kube_rows import kube_rows
from bench.needs import CLOSED_LOOPBACK
from bench.pkcs11_rows import pkcs11_rows
from bench.signing_rows import signing_rows
from bench.throughput_rows import throughput_rows
from bench.timing import Row, machine
from bench.token_rows import cached_token_rows, single_flight_rows
from bench.tpm_rows import tpm_signing_rows
from bench.trips_rows import trips_rows
from bench.verify_rows import verify_rows
from gcptoken.emulator.http.server import EmulatorServer


def _format(row: Row) -> str:
    value = f"{row.value:,.2f}".rstrip("0").rstrip(".") if isinstance(row.value, float) else f"{row.value:,}"
    ratio = f"{row.ratio:g}× {row.ratio_of}" if row.ratio is not None else ""
    if row.group == "round trips":
        ratio = "  ".join(f"{client} {'—' if count is None else count}" for client, count in row.notes.items())
    verdict = "" if row.meets is None else ("✓ " if row.meets else "✗ ") + row.goal
    return f"{row.group:<14}{row.name:<46}{value:>12} {row.unit:<18}{ratio:<40}{verdict}"


def run_suite(quick: bool, out: Path) -> int:
    """Runs every section (tiny sizes when ``quick``); writes ``out/latest.json`` and ``latest.png``."""
    # Nothing may reach a real metadata server or Google: every client is pointed at the emulator.
    os.environ.update(GCE_METADATA_HOST=CLOSED_LOOPBACK, GCE_METADATA_IP=CLOSED_LOOPBACK, NO_GCE_CHECK="true")
    rows: list[Row] = []
    with EmulatorServer() as emulator, tempfile.TemporaryDirectory(prefix="gcptoken-bench-") as scratch:
        sections: list[Callable[[], list[Row]]] = [
            lambda: verify_rows(emulator, 200 if quick else 2000, 2 if quick else 7),
            lambda: signing_rows(emulator, 20 if quick else 200, 2 if quick else 5),
            lambda: pkcs11_rows(Path(scratch), 20 if quick else 200, 2 if quick else 5),
            lambda: tpm_signing_rows(emulator, 20 if quick else 100, 2 if quick else 5),
            lambda: cached_token_rows(emulator, 1000 if quick else 20000, 2 if quick else 5),
            lambda: cli_rows(emulator, Path(scratch), 3 if quick else 15),
            lambda: cached_kinds_rows(emulator, Path(scratch), 3 if quick else 15),
            lambda: hardware_cached_rows(emulator, Path(scratch), 3 if quick else 15),
            lambda: kube_rows(emulator, Path(scratch), 3 if quick else 15),
            lambda: docker_rows(emulator, Path(scratch), 2 if quick else 9),
            lambda: cold_rows(emulator, Path(scratch), 2 if quick else 9),
            lambda: import_rows(3 if quick else 21),
            lambda: trips_rows(emulator, Path(scratch)),
            lambda: throughput_rows(emulator, 0.5 if quick else 3.0),
            lambda: single_flight_rows(emulator),
            lambda: bridges_rows(emulator, Path(scratch), 1.0 if quick else 8.0),
            lambda: grpc_auth_rows(emulator, 100 if quick else 600, 2 if quick else 7),
            lambda: grpc_proxy_rows(emulator, Path(scratch), 1.0 if quick else 8.0),
            lambda: keyring_rows(Path(scratch), 3 if quick else 10, 2 if quick else 9),
        ]
        for section in sections:
            produced = section()
            for row in produced:
                print(_format(row), flush=True)
            rows.extend(produced)
    about = machine()
    out.mkdir(parents=True, exist_ok=True)
    document: dict[str, Any] = {"machine": about, "quick": quick, "rows": [row.to_json() for row in rows]}
    (out / "latest.json").write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n")
    draw(document["rows"], about, out / "latest.png")
    missed = [row.name for row in rows if row.meets is False]
    print(f"\n{len(rows)} rows; goals missed: {', '.join(missed) or 'none'}; written to {out}/latest.json and .png")
    return 0
