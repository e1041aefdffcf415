"""Signing a jwt-bearer assertion with a key inside a TPM 2.0 (swtpm, through tpm2-pytss) against
the same assertion signed in-process with a key file's RSA key: what keeping the key in hardware
costs per token. Skipped, with the reason, where swtpm or tpm2-pytss is absent."""

from __future__ import annotations

import importlib.util
import tempfile
from pathlib import Path
from typing import cast

from tests.keys.tpm_sim import start_swtpm, swtpm_missing  # the harness the TPM tests use (no pytest)

from bench.timing import Contender, Row, interleaved
from gcptoken.credentials.service_account import ServiceAccountKey, assertion, assertion_claims
from gcptoken.emulator.http.server import EmulatorServer
from gcptoken.jose import jws

__all__ = ["tpm_signing_rows"]

IN_PROCESS = "assertion signed in-process (key file)"
IN_TPM = "assertion signed in swtpm (TPM 2.0)"


def unavailable() -> str | None:
    """Why the TPM row cannot run here, or None."""
    try:
        found = importlib.util.find_spec("tpm2_pytss") is not None
    except ValueError:  # blocked in sys.modules (as the extras tests do)
        found = False
    if not found:
        return "tpm2-pytss is not installed (pip install 'gcptoken[tpm]')"
    return swtpm_missing()


def tpm_signing_rows(emulator: EmulatorServer, count: int, rounds: int) -> list[Row]:
    reason = unavailable()
    if reason is not None:
        print(f"{'sign':<14}{IN_TPM}: skipped, {reason}", flush=True)
        return []
    from gcptoken.keys import tpm

    key = ServiceAccountKey.from_info(emulator.key_file("bench-tpm-signer"), "bench key")
    with tempfile.TemporaryDirectory(prefix="gcptoken-bench-swtpm-") as state, start_swtpm(Path(state)) as simulator:
        reference = tpm.generate_key(None, tcti=simulator.tcti)
        with tpm.open_key(reference, None, tcti=simulator.tcti) as in_tpm:
            # jws.encode needs only .alg and .sign, which every HardwareKey has.
            signer = cast("jws.SigningKey", in_tpm)

            def in_process(chunk: range) -> int:
                for i in chunk:
                    assertion(key, {"target_audience": f"https://svc-{i}.a.run.app"})
                return len(chunk)

            def in_swtpm(chunk: range) -> int:
                for i in chunk:
                    claims = assertion_claims(key, {"target_audience": f"https://svc-{i}.a.run.app"})
                    jws.encode(claims, signer, kid=key.private_key_id)
                return len(chunk)

            contenders: dict[str, Contender] = {IN_PROCESS: in_process, IN_TPM: in_swtpm}
            rates = interleaved(contenders, count, rounds, chunk=10)
    base = rates[IN_PROCESS]
    return [
        Row("sign", IN_PROCESS, round(base), "tokens/s"),
        Row("sign", IN_TPM, round(rates[IN_TPM]), "tokens/s", round(rates[IN_TPM] / base, 3), "in-process RSA"),
    ]
